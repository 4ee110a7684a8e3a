"""Tests for evonas.report: the Pareto front, reading a history, and the written report."""

from __future__ import annotations

import base64
import json
import math
import re
import sqlite3

import numpy as np
import pytest
from matplotlib import image as mpimg

from evonas.objectives import pareto_front
from evonas.report import read_evaluations, write_report
from evonas.report.drawings import ancestry
from evonas.report.html import summarize
from evonas.report.plots import best_of, gene_names
from evonas.report.write import FIGURES

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
GENERATIONS, PER_GENERATION = 5, 8
OPS = ("conv3", "conv5", "sep3")

SCHEMA = """
CREATE TABLE evaluations (
    id INTEGER PRIMARY KEY, generation INTEGER, genome TEXT, genome_key TEXT, description TEXT,
    parents TEXT, fitness REAL, metrics TEXT, val_acc REAL, val_loss REAL, params INTEGER,
    flops INTEGER, executed_flops INTEGER, failed INTEGER, reason TEXT, train_seconds REAL,
    cached INTEGER);
CREATE TABLE generations (
    generation INTEGER PRIMARY KEY, evaluations INTEGER, best REAL, median REAL, worst REAL,
    wall_seconds REAL, finished_at TEXT);
"""

CONFIG_YAML = "search:\n  objectives:\n  - name: val_acc\n    direction: max\n"


def _row(i: int, generation: int, parents: list[int]) -> tuple:
    """A synthetic evaluation whose fitness grows with gene 0 and with the generation."""
    genome = [i % 3, (i // 3) % 2, (i * 7) % 4]
    failed = i == 13
    fitness = None if failed else 0.5 + 0.1 * genome[0] + 0.01 * generation - 0.001 * i
    params = 1000 * (1 + genome[0]) * (1 + genome[2])
    description = {
        "encoding": "toy",
        "genes": {"op": OPS[genome[0]], "residual": bool(genome[1]), "width": 8 * (1 + genome[2])},
        "input_shape": [40, 1],
        "layers": [{"index": 0, "op": OPS[genome[0]], "width": 8 * (1 + genome[2]),
                    "activation": "relu", "residual": bool(genome[1])}],
        "num_classes": 10,
    }
    return (i, generation, json.dumps(genome), f"k{i}", json.dumps(description),
            json.dumps(parents), fitness, json.dumps({"val_acc": fitness}), fitness, 1.0,
            params, 50 * params, 60 * params, int(failed), "diverged" if failed else None, 0.5, 0)


def _write_history(run_dir, generations: int = GENERATIONS, *, config: bool = True) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    if config:
        (run_dir / "config.yaml").write_text(CONFIG_YAML)
    conn = sqlite3.connect(run_dir / "history.sqlite")
    conn.executescript(SCHEMA)
    i = 0
    for g in range(generations):
        for k in range(PER_GENERATION):
            # Two parents from the previous generation (both the same for a mutation).
            base = (g - 1) * PER_GENERATION
            parents = [] if g == 0 else sorted({base + (k + 1) % PER_GENERATION, base + k})
            conn.execute(f"INSERT INTO evaluations VALUES ({','.join('?' * 17)})",
                         _row(i, g, parents))
            i += 1
        conn.execute("INSERT INTO generations VALUES (?, ?, ?, ?, ?, ?, ?)",
                     (g, PER_GENERATION, 0.9, 0.7, 0.5, 1.0, "2024-01-01T00:00:00"))
    conn.commit()
    conn.close()


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("finished")
    _write_history(run_dir)
    before = (run_dir / "history.sqlite").read_bytes()
    paths = write_report(run_dir)
    return run_dir, paths, before


def _check_png(path, min_pixels: int = 100) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, path
    pixels = mpimg.imread(path)
    assert pixels.shape[0] > min_pixels and pixels.shape[1] > min_pixels, (path, pixels.shape)
    assert np.ptp(pixels[..., :3]) > 0, f"{path} is a blank image"


def _embedded(page: str, path) -> bool:
    return base64.b64encode(path.read_bytes()).decode("ascii") in page


def _markup(page: str) -> str:
    """The page without its inline scripts (plotly.js, the views' script and their data)."""
    return re.sub(r"<script[^>]*>.*?</script>", "", page, flags=re.S)


# -- pareto_front -------------------------------------------------------------------------------


def test_pareto_front_max_fitness_min_cost():
    points = [[0.9, 100], [0.8, 50], [0.85, 200], [0.7, 10], [0.9, 100], [0.6, 60]]
    # 2 is beaten by 0 (better and cheaper), 5 by 1; 0 and 4 are equal, so both stay.
    assert pareto_front(points, [True, False]).tolist() == [0, 1, 3, 4]
    assert pareto_front(points, [False, True]).tolist() == [2, 5]
    assert pareto_front(points, [True, True]).tolist() == [0, 2, 4]


def test_pareto_front_skips_nan_and_handles_edges():
    assert pareto_front([[1.0, math.nan], [0.5, 1.0]], [True, False]).tolist() == [1]
    assert pareto_front(np.zeros((0, 2)), [True, False]).tolist() == []
    assert pareto_front([[3.0]], [True]).tolist() == [0]
    with pytest.raises(ValueError, match=r"shape \[N, M\].*got \(2, 2\) and \(3,\)"):
        pareto_front([[1, 2], [3, 4]], [True, False, True])


def test_pareto_front_matches_brute_force():
    rng = np.random.default_rng(0)
    points = rng.integers(0, 6, size=(300, 3)).astype(float)  # many ties on purpose
    mask = np.array([True, False, True])
    cost = np.where(mask, -points, points)
    expected = [i for i in range(len(points)) if not any(
        np.all(cost[j] <= cost[i]) and np.any(cost[j] < cost[i]) for j in range(len(points)))]
    assert pareto_front(points, mask).tolist() == expected


# -- reading the history ---------------------------------------------------------------------


def test_read_evaluations_parses_every_row(finished):
    run_dir, _, _ = finished
    evaluations = read_evaluations(run_dir)
    assert [e.id for e in evaluations] == list(range(GENERATIONS * PER_GENERATION))
    e = evaluations[9]
    assert (e.generation, e.genome, e.parents) == (1, (0, 1, 3), (1, 2))
    assert e.params == 4000 and e.flops == 200000 and e.ok
    failed = evaluations[13]
    assert failed.failed and not failed.ok and math.isnan(failed.fitness)
    assert failed.reason == "diverged"
    assert gene_names(evaluations, 3) == ["op", "residual", "width"]
    assert gene_names(evaluations, 4) == ["gene_0", "gene_1", "gene_2", "gene_3"]


def test_best_and_its_ancestry(finished):
    evaluations = read_evaluations(finished[0])
    best = best_of(evaluations)
    ok = [e for e in evaluations if e.ok]
    assert best.fitness == max(e.fitness for e in ok)
    assert best_of(evaluations, maximize=False).fitness == min(e.fitness for e in ok)
    levels = ancestry(best, evaluations)
    assert levels[0] == [best]
    assert len(levels) == best.generation + 1  # back to generation 0
    by_id = {e.id: e for e in evaluations}
    for child_level, parent_level in zip(levels, levels[1:]):
        wanted = {p for c in child_level for p in c.parents}
        assert {e.id for e in parent_level} == wanted  # every parent of the fixture is recorded
        assert all(by_id[e.id].generation == child_level[0].generation - 1 for e in parent_level)


# -- the written report ---------------------------------------------------------------------


def test_report_writes_every_plot_as_a_real_png(finished):
    run_dir, paths, _ = finished
    assert set(paths) == {key for key, _, _ in FIGURES} | {"html"}
    for key, name, _ in FIGURES:
        assert paths[key] == run_dir / "report" / name
        _check_png(paths[key])
    assert paths["html"] == run_dir / "report" / "index.html"
    assert not list((run_dir / "report").glob(".*tmp"))


def test_html_is_self_contained_and_embeds_every_plot(finished):
    run_dir, paths, _ = finished
    page = _markup(paths["html"].read_text(encoding="utf-8"))
    for key, _, caption in FIGURES:
        assert _embedded(page, paths[key]), key
        assert caption in page
    assert page.count('src="data:image/png;base64,') == len(FIGURES)
    # Scripts are inline only (tests/report/test_interactive.py checks them and the policy).
    assert "<script src" not in paths["html"].read_text(encoding="utf-8")
    assert "http://" not in page and "https://" not in page
    assert re.findall(r"<link[^>]*>", page) == ['<link rel="icon" href="data:,">']
    assert "direction: max" in page  # the config
    assert "<b>evaluations</b>: 40" in page and "<b>failed</b>: 1" in page


def test_html_top_table_lists_the_ten_best(finished):
    run_dir, paths, _ = finished
    page = _markup(paths["html"].read_text(encoding="utf-8"))
    ok = sorted((e for e in read_evaluations(run_dir) if e.ok), key=lambda e: -e.fitness)
    start = page.index("<table>")  # the top table (the views' table is filled by the script)
    table = page[start:page.index("</table>", start)]
    assert table.count("<tr><td") == 10
    ids = [int(cell.split("<")[0]) for cell in table.split("<tr><td class=num>")[1:]]
    assert ids == [e.id for e in ok[:10]]
    assert "conv5 × 24" not in table or "conv5" in table  # summaries come from descriptions
    assert summarize(ok[0].description) in table


def test_report_leaves_the_history_untouched(finished):
    run_dir, _, before = finished
    assert (run_dir / "history.sqlite").read_bytes() == before
    assert not (run_dir / "history.sqlite-journal").exists()


def test_report_on_an_empty_history(tmp_path):
    _write_history(tmp_path / "empty", generations=0, config=False)
    (tmp_path / "bare").mkdir()  # the store has not even created history.sqlite
    sqlite3.connect(tmp_path / "no_tables.sqlite").close()
    (tmp_path / "no_tables").mkdir()
    (tmp_path / "no_tables.sqlite").rename(tmp_path / "no_tables" / "history.sqlite")
    for name in ("empty", "bare", "no_tables"):
        paths = write_report(tmp_path / name)
        for key, _, _ in FIGURES:
            _check_png(paths[key])
        page = paths["html"].read_text(encoding="utf-8")
        assert "No successful evaluation yet." in page
        assert "No config.yaml in this run directory." in page
        assert all(_embedded(page, paths[key]) for key, _, _ in FIGURES)


def test_report_while_a_run_is_writing(tmp_path):
    run_dir = tmp_path / "running"
    _write_history(run_dir, generations=2)
    conn = sqlite3.connect(run_dir / "history.sqlite")
    try:
        # Generation 2 half written and not yet committed; its parents reference a missing id.
        conn.execute("BEGIN")
        for i in range(16, 20):
            conn.execute(f"INSERT INTO evaluations VALUES ({','.join('?' * 17)})",
                         _row(i, 2, [i - 8, 999]))
        conn.execute("INSERT INTO evaluations (id, generation, genome, description) "
                     "VALUES (20, 2, '[1, 2', '{broken')")
        paths = write_report(run_dir)
        page = paths["html"].read_text(encoding="utf-8")
        assert "<b>evaluations</b>: 16" in page and "<b>generations</b>: 2" in page
        conn.commit()
    finally:
        conn.close()
    with pytest.warns(UserWarning, match="history row 20 genome is not JSON"):
        evaluations = read_evaluations(run_dir)  # a row evonas would not write: left out
    assert len(evaluations) == 20 and evaluations[-1].id == 19
    with pytest.warns(UserWarning, match="history row 20"):
        paths = write_report(run_dir)
    page = paths["html"].read_text(encoding="utf-8")
    assert "<b>evaluations</b>: 20" in page and "<b>generations</b>: 3" in page
    assert "<b>rows left out</b>" in page and "history row 20 genome" in page
    for key, _, _ in FIGURES:
        _check_png(paths[key])
    best = best_of(evaluations)
    assert best.generation == 2 and ancestry(best, evaluations)[1][0].id == best.id - 8


def test_minimised_fitness_ranks_lowest_first(tmp_path):
    run_dir = tmp_path / "min"
    _write_history(run_dir, generations=1)
    (run_dir / "config.yaml").write_text(CONFIG_YAML.replace("max", "min"))
    page = write_report(run_dir, out_dir=tmp_path / "out")["html"].read_text(encoding="utf-8")
    ok = [e for e in read_evaluations(run_dir) if e.ok]
    lowest = min(ok, key=lambda e: e.fitness)
    assert f"{lowest.fitness:.4g} (#{lowest.id})" in page
    assert not (run_dir / "report").exists()


def test_report_of_a_missing_directory_says_so(tmp_path):
    with pytest.raises(ValueError, match="run directory .*nope.* does not exist"):
        write_report(tmp_path / "nope")


@pytest.mark.parametrize(
    "description, expected",
    [
        ({"input_shape": [40, 1], "stem": {"op": "conv5", "width": 32, "activation": "relu"},
          "layers": [{"op": "conv3", "width": 16, "residual": True}, {"op": "identity"}],
          "num_classes": 10},
         ["input [40, 1]", "stem: conv5  × 32  activation relu", "conv3  × 16  residual",
          "identity", "classifier → 10 classes"]),
        ({"arch_str": "|conv3x3~0|+|none~0|skip~1|",
          "nodes": {"node_1": {"node_0": "conv3x3"},
                    "node_2": {"node_0": "none", "node_1": "skip"}}},
         ["node_0", "node_1", "node_2", "conv3x3", "skip"]),
        ({"blocks": 3, "kernel": [3, 5]}, ["blocks: 3", "kernel: [3, 5]"]),
    ],
)
def test_architecture_drawing_by_layout(tmp_path, description, expected):
    from evonas.report.drawings import architecture
    from evonas.report.history import Evaluation
    from evonas.report.plots import save_figure

    best = Evaluation(7, 1, (0, 1), description, (), 0.8, 1234.0, 5e6, False)
    fig = architecture(best)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert (texts if "layers" in description else sorted(texts)) == (
        expected if "layers" in description else sorted(expected))
    assert "none" not in texts  # absent edges of a cell are not drawn
    assert "#7" in fig.axes[0].get_title() and "5M" in fig.axes[0].get_title()
    _check_png(save_figure(fig, tmp_path / "arch.png"))
