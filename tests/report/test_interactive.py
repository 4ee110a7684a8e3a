"""The report's interactive views: gene names from the space, gene importance, the offline page
(no network, every value escaped) in a real browser."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import sys

import numpy as np
import pytest

from evonas.report import read_evaluations, write_report
from evonas.report.genes import run_genes
from evonas.report.importance import gene_importance
from evonas.report.plots import gene_effects
from evonas.report.views import importance_json, read_config, script_json
from tests.browser import PARCOORDS_DRAWN, chromium, console_errors, require_chromium, wait_for
from tests.growing_run import HOSTILE, LABELS, NAMES, GrowingRun

CONFIG = re.compile(r'<script type="application/json" id="evonas-config">(.*?)</script>', re.S)


def _views(page: str) -> dict:
    return json.loads(CONFIG.search(page).group(1))


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    run = GrowingRun(tmp_path_factory.mktemp("interactive") / "run", per_generation=8,
                     hostile=True)
    for _ in range(4):
        run.commit()
    run.close()
    paths = write_report(run.path)
    return run.path, paths, paths["html"].read_text(encoding="utf-8")


def test_the_report_names_genes_as_the_space_does(report):
    run_dir, _, page = report
    data = _views(page)["runs"][0]
    assert data["genes_source"] == "space"
    assert [g["name"] for g in data["genes"]] == list(NAMES)
    assert [tuple(g["labels"]) for g in data["genes"]] == list(LABELS)
    ranked = data["importance"]["objectives"][0]["genes"]
    assert {g["name"] for g in ranked} == set(NAMES)
    # The PNG of gene effects too: one panel per gene, titled by its name.
    evaluations = read_evaluations(run_dir)
    figure = gene_effects(evaluations, run_genes(evaluations, read_config(run_dir)[1]))
    assert [ax.get_title() for ax in figure.axes] == list(NAMES)
    labels = [t.get_text().split("\n")[0] for t in figure.axes[2].get_xticklabels()]
    assert set(labels) <= {"relu", "gelu", "tanh"} and labels


def test_names_without_a_buildable_space_fall_back_to_the_descriptions(report, tmp_path):
    evaluations = read_evaluations(report[0])
    genes = run_genes(evaluations, {"encoding": {"name": "not-installed-plugin"}})
    assert genes.source == "index" and genes.names == tuple(f"gene_{i}" for i in range(5))
    # A foreign config can't make the report build a space of a billion genes.
    huge = {"encoding": {"name": "mlp", "options": {"max_layers": 10**9, "widths": [16, 32]}}}
    assert run_genes(evaluations, huge).source == "index"


def test_importance_puts_the_deciding_gene_first_by_a_wide_margin():
    rng = np.random.default_rng(3)
    cards = (2, 3, 5, 4, 2, 3)
    genomes = np.stack([rng.integers(0, c, 300) for c in cards], axis=1)
    effect = np.array([0.10, 0.55, 0.30, 0.90, 0.20])
    fitness = effect[genomes[:, 2]] + rng.normal(0, 0.01, 300)  # gene "c" alone decides
    names = list("abcdef")
    result = gene_importance(genomes, fitness, names, objective="val_acc")
    top, second = result.genes[:2]
    assert top.name == "c"
    assert top.importance > 0.8 and result.r2 > 0.9  # nearly all of the variance, out of bag
    assert second.importance < 0.02
    assert top.importance - 2 * top.std > 10 * (second.importance + 2 * second.std)
    # By value: the surrogate's effect of each value of "c" follows the true effect.
    effects = [v.effect for v in top.values]
    assert np.argsort(effects).tolist() == np.argsort(effect).tolist()
    assert effects[3] - effects[0] == pytest.approx(0.8, abs=0.05)


def test_importance_per_objective_of_a_multi_objective_run(report):
    evaluations = [e for e in read_evaluations(report[0])]
    genes = run_genes(evaluations, read_config(report[0])[1])
    out = importance_json(evaluations, genes, [("val_acc", True), ("params", False)])
    first = [o["genes"][0]["name"] for o in out["objectives"]]
    # val_acc and params are both decided by width_0 in this history.
    assert first == ["width_0", "width_0"]
    assert [o["objective"] for o in out["objectives"]] == ["val_acc", "params"]


def test_the_report_says_importance_needs_scikit_learn_without_it(report, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "sklearn.tree", None)  # import fails as if not installed
    paths = write_report(report[0], out_dir=tmp_path / "out")
    importance = _views(paths["html"].read_text(encoding="utf-8"))["runs"][0]["importance"]
    assert importance == {"unavailable": "gene importance needs scikit-learn: pip install "
                                         "'evonas[sklearn]'"}
    assert paths["genes"].stat().st_size > 1000  # the rest of the report is there


def test_the_page_loads_nothing_and_escapes_every_value(report):
    _, _, page = report
    assert HOSTILE not in page
    assert "<img src=x" not in page and "</script><script>window" not in page
    data = _views(page)["runs"][0]
    failed = next(r for r in data["rows"] if r["failed"])
    assert failed["reason"] == HOSTILE  # escaped in the page, intact as data
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, re.S)
    assert [attrs for attrs, _ in scripts] == [' type="application/json" id="evonas-config"',
                                               "", ""]
    policy = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)">',
                       page).group(1)
    assert "default-src 'none'" in policy and "connect-src 'none'" in policy
    for _, body in scripts[1:]:  # exactly the two inline scripts may run
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in policy
    outside = re.sub(r"<script[^>]*>.*?</script>", "", page, flags=re.S)
    assert "http://" not in outside and "https://" not in outside
    links = re.findall(r'(?:src|href)="([^"]*)"', outside)
    assert links and all(link.startswith("data:") for link in links)


def test_script_json_cannot_close_its_element():
    text = script_json({"a": "</script><!-- & -->", "b": "\u2028"})
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == {"a": "</script><!-- & -->", "b": "\u2028"}


def test_the_report_in_a_browser(report):
    require_chromium()
    run_dir, paths, _ = report
    with chromium() as driver:
        driver.get(paths["html"].as_uri())
        assert wait_for(driver, "return document.getElementById('ev-table')"
                                ".getAttribute('data-total') === '32'")
        wait_for(driver, "return document.querySelector('#ev-importance .main-svg')")
        wait_for(driver, "return document.querySelector('#ev-parcoords .main-svg')")
        assert driver.execute_script(PARCOORDS_DRAWN)
        # Plots drawn, the best selected, and nothing fetched from anywhere.
        for view in ("ev-progress", "ev-scatter", "ev-front", "ev-lineage", "ev-values"):
            assert driver.execute_script(f"return !!document.querySelector('#{view} .main-svg')")
        assert driver.execute_script(
            "return performance.getEntriesByType('resource').length") == 0
        details = driver.find_element("id", "ev-details").text
        assert "width_0" in details and "activation_0" in details
        # The failed row's hostile reason shows as text and runs nothing.
        row = driver.find_element("css selector", "#ev-table tr[data-id='1']")
        row.click()
        wait_for(driver, "return document.getElementById('ev-details').textContent"
                         ".indexOf('onerror') >= 0")
        assert driver.execute_script("return window.__pwned === undefined")
        assert driver.execute_script("return document.querySelectorAll('img[src=x]').length") == 0
        assert HOSTILE in driver.find_element("id", "ev-details").text
        assert console_errors(driver) == []


def test_a_large_history_keeps_the_best_the_front_and_every_count(report):
    from evonas.report.history import read_snapshot
    from evonas.report.views import run_data

    run_dir = report[0]
    snap = read_snapshot(run_dir)
    data = run_data(run_dir, snap.evaluations, snap.generations, max_rows=12)
    ids = {r["id"] for r in data["rows"]}
    assert len(ids) == 12 and data["best"] in ids and set(data["front"]["ids"][:6]) <= ids
    assert data["summary"] == {"evaluations": 32, "failed": 4, "generations": 4,
                               "shown": len(ids), "described": len(data["details"])}
    assert [p[0] for p in data["progress"]] == [0, 1, 2, 3]  # of every row, not the sample
    best = max(e.fitness for e in snap.evaluations if e.ok)
    assert max(p[1] for p in data["progress"]) == pytest.approx(best)
