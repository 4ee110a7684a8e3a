"""Continual optimisation (``evonas continual``): a chain of runs over new data and a new budget,
each warm-started from the one before, resumable, with one report of how the front moved."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from sklearn.datasets import load_digits

from evonas.cli import main
from evonas.objectives import pareto_front
from evonas.store import History
from tests.experiment_configs import evaluations, write_yaml

BUDGET = 2500  # flops of the third step's budget: some architectures of the space are above it


def _npz(path, x, y):
    np.savez(path, x_train=x[:-80], y_train=y[:-80], x_test=x[-80:], y_test=y[-80:])
    return path


def _rows(run_dir):
    with History(run_dir / "history.sqlite", readonly=True) as history:
        return history.rows()


def _front(run_dir):
    """The non-dominated (fitness, params) architectures of a run, computed here."""
    ok, seen = [], set()
    for r in _rows(run_dir):
        if not r["failed"] and tuple(r["genome"]) not in seen:
            seen.add(tuple(r["genome"]))
            ok.append(r)
    points = np.asarray([[r["fitness"], r["params"]] for r in ok])
    return {tuple(ok[i]["genome"]) for i in pareto_front(points, [True, False])}


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """Three steps: digits, the same digits with noise and shuffled features (a shifted task),
    then the shifted task under a FLOPs budget; run once through the command line."""
    root = tmp_path_factory.mktemp("continual")
    x, y = load_digits(return_X_y=True)
    x, y = x[:400].astype(np.float32), y[:400]
    rng = np.random.default_rng(0)
    shifted = x[:, rng.permutation(64)] + rng.normal(0, 4.0, x.shape).astype(np.float32)
    clean, noisy = _npz(root / "clean.npz", x, y), _npz(root / "noisy.npz", shifted, y)
    common = {"search": {"generations": 2}, "final": {"retrain": {"top_k": 1, "steps": 30}}}
    files = [
        write_yaml(root / "clean.yaml", dataset={"name": "npz", "path": str(clean)}, **common),
        write_yaml(root / "noisy.yaml", dataset={"name": "npz", "path": str(noisy)}, **common),
        write_yaml(root / "budget.yaml", dataset={"name": "npz", "path": str(noisy)},
                   search={"generations": 2, "constraints": [f"flops <= {BUDGET}"]},
                   final=common["final"]),
    ]
    argv = ["continual", *map(str, files), "--root", str(root / "chain"),
            "--set", "display.report=true"]
    assert main(argv) == 0
    return root, files, argv


def test_each_run_starts_from_the_one_before_and_evaluates_it_anew(chain):
    root, _, _ = chain
    runs = [root / "chain" / name for name in ("1-clean", "2-noisy", "3-budget")]
    assert not (runs[0] / "warm_start.json").exists()
    for before, run in zip(runs, runs[1:]):
        kept = json.loads((run / "warm_start.json").read_text())
        assert kept["source"] == str(before)
        old = {(tuple(r["genome"]), r["fitness"]) for r in _rows(before)}
        new = _rows(run)
        first = [tuple(r["genome"]) for r in new if r["generation"] == 0]
        assert first[:len(kept["genomes"])] == [tuple(g) for g in kept["genomes"]]
        # re-evaluated on the new data: the scores are not the earlier run's
        assert sum((tuple(r["genome"]), r["fitness"]) in old for r in new) < len(first)
    # the budget holds in the last run: its over-budget architectures failed
    last = _rows(runs[2])
    assert all(r["flops"] <= BUDGET for r in last if not r["failed"])
    assert any(r["failed"] for r in last)


def test_the_last_report_shows_how_the_front_moved(chain):
    root, _, _ = chain
    runs = [root / "chain" / name for name in ("1-clean", "2-noisy", "3-budget")]
    table = json.loads((runs[2] / "report" / "continual.json").read_text())
    rows = table["runs"]
    assert [r["run"] for r in rows] == ["1-clean", "2-noisy", "3-budget"]
    fronts = [_front(run) for run in runs]
    for i, (row, run) in enumerate(zip(rows, runs)):
        assert {tuple(m["genome"]) for m in row["front"]} == fronts[i]
        final = json.loads((run / "best" / "final.json").read_text())
        assert row["test_acc"] == pytest.approx(final["best_test_acc"])
        if i:
            assert row["kept"] == len(fronts[i] & fronts[i - 1])
            seeded = {tuple(g) for g in json.loads((run / "warm_start.json").read_text())[
                "genomes"]}
            assert row["from_warm_start"] == len(fronts[i] & seeded)
    assert rows[0]["kept"] is None and rows[2]["constraints"] == [f"flops <= {BUDGET}"]
    assert all(r["hypervolume"] is not None and r["hypervolume"] > 0 for r in rows)
    page = (runs[2] / "report" / "index.html").read_text()
    assert "Continual optimisation: how the front moved" in page and "1-clean" in page
    assert (runs[2] / "report" / "continual.png").stat().st_size > 1000
    # an earlier run's report shows its own part of the chain only
    second = json.loads((runs[1] / "report" / "continual.json").read_text())
    assert [r["run"] for r in second["runs"]] == ["1-clean", "2-noisy"]


def test_the_same_command_again_continues_and_changes_nothing(chain, capsys):
    root, _, argv = chain
    runs = sorted((root / "chain").iterdir())
    before = [evaluations(run) for run in runs]
    capsys.readouterr()
    assert main(argv) == 0
    assert "3 runs" in capsys.readouterr().out
    assert [evaluations(run) for run in runs] == before


def test_a_missing_earlier_run_shortens_the_chain_with_a_note(chain, tmp_path):
    from evonas.report.continual import read_chain

    root, _, _ = chain
    copy = tmp_path / "chain"
    shutil.copytree(root / "chain", copy)
    # the copies still point at the originals; move the first original away
    stages, why = read_chain(copy / "3-budget")
    assert [s.path.name for s in stages] == ["1-clean", "2-noisy", "3-budget"]
    (copy / "3-budget" / "warm_start.json").write_text(json.dumps(
        {"format": 1, "source": str(tmp_path / "nowhere"), "genomes": [[0, 0, 0]],
         "probabilities": None}))
    stages, why = read_chain(copy / "3-budget")
    assert [s.path.name for s in stages] == ["3-budget"]
    assert "is not there" in why
    # a cycle ends the chain too
    (copy / "2-noisy" / "warm_start.json").write_text(json.dumps(
        {"format": 1, "source": str(copy / "3-budget"), "genomes": [[0, 0, 0]],
         "probabilities": None}))
    (copy / "3-budget" / "warm_start.json").write_text(json.dumps(
        {"format": 1, "source": str(copy / "2-noisy"), "genomes": [[0, 0, 0]],
         "probabilities": None}))
    stages, why = read_chain(copy / "3-budget")
    assert [s.path.name for s in stages] == ["2-noisy", "3-budget"] and "after it" in why


@pytest.mark.parametrize("case, message", [
    ("one", "continual needs two experiments or more"),
    ("space", "a chain searches one space"),
    ("warm", "sets search.warm_start"),
    ("missing", "nowhere.yaml"),
    ("typo", "strategy.name"),
])
def test_a_bad_chain_is_one_line_before_anything_is_created(tmp_path, capsys, case, message):
    a = write_yaml(tmp_path / "a.yaml")
    b = {"one": lambda: None,
         "space": lambda: write_yaml(tmp_path / "b.yaml", encoding={"name": "mlp", "options": {
             "max_layers": 3, "widths": [16, 32]}}),
         "warm": lambda: write_yaml(tmp_path / "b.yaml",
                                    search={"warm_start": str(tmp_path / "x")}),
         "missing": lambda: tmp_path / "nowhere.yaml",
         "typo": lambda: write_yaml(tmp_path / "b.yaml",
                                    strategy={"name": "regularised_evolution"}),
         }[case]()
    argv = ["continual", str(a), *([str(b)] if b is not None else []), "--root",
            str(tmp_path / "chain")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "chain").exists()
