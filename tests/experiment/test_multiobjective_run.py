"""Multi-objective experiments: objectives, constraints, the retrained front, ``evonas front``."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from evonas.cli import main
from evonas.experiment import Experiment, InfeasibleError
from evonas.objectives import feasible, pareto_front, row_value
from evonas.store import History, load_model
from tests.experiment_configs import tiny_config

TWO = {"objectives": [{"name": "val_acc", "direction": "max"},
                      {"name": "params", "direction": "min"}]}
NSGA2 = {"name": "nsga2", "params": {}}
# A space whose parameter counts span 40x: 1-2 layers of 4..128 units on 64 digit pixels.
WIDE = {"name": "mlp", "options": {"max_layers": 2, "widths": [4, 16, 128]}}


def _rows(run_dir):
    with History(run_dir / "history.sqlite", readonly=True) as history:
        return history.rows()


@pytest.fixture(scope="module")
def nsga2_run(tmp_path_factory):
    """One NSGA-II run (accuracy against parameters), its report and its front, shared."""
    run_dir = tmp_path_factory.mktemp("mo") / "run"
    config = tiny_config(
        encoding=WIDE, strategy=NSGA2,
        search={"population_size": 8, "generations": 3, **TWO},
        final={"retrain": {"top_k": 1, "steps": 60}, "front": {"size": 4}},
        display={"progress": False, "report": True},
    )
    result = Experiment(config, run_dir=run_dir).run()
    return run_dir, result


def test_front_is_the_non_dominated_feasible_set_and_is_retrained(nsga2_run):
    run_dir, result = nsga2_run
    rows = _rows(run_dir)
    assert len(rows) == 24
    # Every feasible architecture's objectives, recomputed from the history by brute force.
    unique = {}
    for r in rows:
        if feasible(r):
            unique.setdefault(r["genome_key"], r)
    points = np.array([[row_value(r, "val_acc"), r["params"]] for r in unique.values()])
    ids = [r["id"] for r in unique.values()]
    expected = sorted(ids[i] for i in pareto_front(points, [True, False]))
    front = result.front
    assert front is not None and front["front_size"] == len(expected)
    members = front["members"]
    assert 1 <= len(members) <= 4
    assert {m["id"] for m in members} <= set(expected)
    for m in members:
        assert 0.0 <= m["test_acc"] <= 1.0
        module, params, architecture = load_model(run_dir / "front" / m["directory"])
        assert architecture["history_id"] == m["id"]
        assert architecture["test_acc"] == m["test_acc"]
    # The spread keeps both ends of the front (the cheapest and the most accurate).
    by_params = sorted(expected, key=lambda i: (unique_row(rows, i)["params"], i))
    assert {by_params[0], by_params[-1]} <= {m["id"] for m in members}
    assert front["hypervolume"] > 0.0


def unique_row(rows, id_):
    return next(r for r in rows if r["id"] == id_)


def test_report_shows_the_front(nsga2_run):
    run_dir, _ = nsga2_run
    page = (run_dir / "report" / "index.html").read_text()
    assert (run_dir / "report" / "front.png").stat().st_size > 10_000
    assert "Pareto front" in page and "test accuracy" in page
    front = json.loads((run_dir / "front" / "front.json").read_text())
    for m in front["members"]:
        assert f"<td class=num>{m['id']}</td>" in page


def test_front_cli_picks_the_best_within_each_budget(nsga2_run, capsys):
    run_dir, _ = nsga2_run
    rows = [r for r in _rows(run_dir) if feasible(r)]
    budgets = sorted({r["params"] for r in rows})
    low, high = budgets[0], budgets[-1]
    assert main([
        "front", str(run_dir), "--budget", f"params={low:g},{high:g},1", "--steps", "30",
        "--json",
    ]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    entries = {e["bound"]: e for e in out["budgets"]}
    for bound in (low, high):
        within = [r for r in rows if r["params"] <= bound]
        best = max(r["val_acc"] for r in within)
        arch = entries[bound]["architecture"]
        assert arch["params"] <= bound
        assert math.isclose(arch["objectives"]["val_acc"], best)
        assert 0.0 <= arch["test_acc"] <= 1.0
        exported = run_dir / "budgets" / entries[bound]["directory"] / "architecture.json"
        assert json.loads(exported.read_text())["budget"] == {"metric": "params",
                                                              "bound": bound}
    assert entries[1.0]["architecture"] is None  # nothing has one parameter
    # The table form says so plainly, without retraining.
    assert main(["front", str(run_dir), "--budget", "params=1", "--no-export"]) == 0
    text = capsys.readouterr().out
    assert "params <= 1: none found" in text and "Pareto front of" in text


def test_front_cli_rejects_a_metric_the_run_did_not_record(nsga2_run, capsys):
    run_dir, _ = nsga2_run
    assert main(["front", str(run_dir), "--budget", "latency=2,4", "--no-export"]) == 2
    err = capsys.readouterr().err
    assert "latency" in err and "did not record" in err and "params" in err
    assert main(["front", str(run_dir), "--budget", "params=abc"]) == 2
    assert "METRIC=V1,V2" in capsys.readouterr().err


def test_an_unknown_objective_is_named_with_the_allowed_ones(tmp_path):
    config = tiny_config(strategy=NSGA2, search={
        "objectives": [{"name": "val_acc"}, {"name": "speed", "direction": "min"}]})
    with pytest.raises(ValueError, match=r"'speed'.*allowed.*latency.*params"):
        Experiment(config, run_dir=tmp_path / "run").run()
    assert not (tmp_path / "run").exists()


def test_an_impossible_cost_constraint_fails_before_anything_is_trained(tmp_path):
    config = tiny_config(search={"constraints": ["params <= 10"]})
    with pytest.raises(ValueError, match=r"no architecture of the 'mlp' space meets params <= 10"):
        Experiment(config, run_dir=tmp_path / "run").run()
    assert not (tmp_path / "run").exists()


def test_an_unreachable_metric_constraint_stops_after_the_first_generation(tmp_path):
    config = tiny_config(search={"constraints": ["val_acc >= 1.5"]})
    with pytest.raises(InfeasibleError, match=r"first generation.*val_acc >= 1.5 \(closest"):
        Experiment(config, run_dir=tmp_path / "run").run()
    rows = _rows(tmp_path / "run")
    assert len(rows) == 4 and {r["generation"] for r in rows} == {0}  # kept, not lost
    assert all(r["failed"] and "constraint val_acc >= 1.5" in r["reason"] for r in rows)


def test_infeasible_architectures_never_become_best(tmp_path):
    # Half the space is over the bound: those fail untrained and are never the best.
    config = tiny_config(encoding=WIDE, search={"constraints": ["params <= 3000"],
                                                "generations": 2})
    result = Experiment(config, run_dir=tmp_path / "run").run()
    rows = _rows(tmp_path / "run")
    over = [r for r in rows if r["params"] > 3000]
    assert over and all(r["failed"] and r["fitness"] is None for r in over)
    assert all(r["train_seconds"] == 0.0 for r in over if not r["cached"])
    assert result.best is not None and result.best["params"] <= 3000


@pytest.mark.parametrize("strategy,search,match", [
    ({"name": "regularized_evolution", "params": {}}, TWO, r"optimises one objective.*nsga2"),
    (NSGA2, {}, r"multi-objective but search.objectives lists one"),
    ({"name": "map_elites", "params": {"descriptors": ["params"]}}, {}, r"bins"),
    ({"name": "map_elites", "params": {"descriptors": ["width"], "bins": [[100]]}}, {},
     r"descriptors names 'width'.*allowed.*depth"),
])
def test_strategy_and_objectives_must_agree(tmp_path, strategy, search, match):
    config = tiny_config(strategy=strategy, search=search)
    with pytest.raises(ValueError, match=match):
        Experiment(config, run_dir=tmp_path / "run").run()


def test_map_elites_runs_on_params_and_depth_descriptors(tmp_path):
    config = tiny_config(encoding=WIDE, strategy={"name": "map_elites", "params": {
        "descriptors": ["params", "depth"], "bins": [[500, 3000], [1.5]]}},
        search={"population_size": 4, "generations": 3, **TWO})
    Experiment(config, run_dir=tmp_path / "run").run()
    rows = _rows(tmp_path / "run")
    assert all(r["metrics"]["depth"] in (1.0, 2.0) for r in rows)
    assert any(r["parents"] for r in rows if r["generation"] > 0)  # elites were varied


def test_measured_latency_is_an_objective_and_a_constraint(tmp_path):
    config = tiny_config(
        strategy=NSGA2,
        search={"objectives": [{"name": "val_acc"}, {"name": "latency", "direction": "min"}],
                "constraints": ["latency <= 1000"], "generations": 2},
        evaluator={"latency": {"repeats": 3, "warmup": 1}},
        final={"retrain": {"top_k": 0}, "front": {"size": 0}},
    )
    Experiment(config, run_dir=tmp_path / "run").run()
    rows = _rows(tmp_path / "run")
    assert all(r["metrics"]["latency"] > 0 for r in rows)
    # A cached genome reuses its stored latency; one genome is timed once.
    by_key = {}
    for r in rows:
        by_key.setdefault(r["genome_key"], set()).add(r["metrics"]["latency"])
    assert all(len(v) == 1 for v in by_key.values())


@pytest.mark.slow
def test_mnist1d_front_spans_ten_times_the_parameters(tmp_path):
    """The shipped example, shortened: a front of >= 5 retrained, tested architectures whose
    parameter counts span at least 10x, shown in the report."""
    from pathlib import Path

    from evonas.experiment import ExperimentConfig

    example = Path(__file__).parents[2] / "examples" / "multiobjective.yaml"
    config = ExperimentConfig.from_yaml(example).with_overrides([
        "search.generations=2", "train.steps=30", "final.retrain.steps=60",
        "final.front.size=6", "dataset.limit=1000", "display.progress=false",
    ])
    result = Experiment(config, run_dir=tmp_path / "run").run()
    members = result.front["members"]
    assert len(members) >= 5
    params = [m["objectives"]["params"] for m in members]
    assert max(params) >= 10 * min(params)
    assert all(0.1 < m["test_acc"] <= 1.0 for m in members)  # 10 classes: above chance
    page = (tmp_path / "run" / "report" / "index.html").read_text()
    assert all(f"<td class=num>{m['id']}</td>" in page for m in members)
