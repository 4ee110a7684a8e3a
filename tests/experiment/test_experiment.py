"""The experiment runner: determinism, de-duplication, lineage, constraints, export and load."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evonas.experiment import Experiment, evaluate_model
from evonas.experiment.callbacks import EarlyStopping
from evonas.store import load_model
from tests.experiment_configs import evaluations, tiny_config


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One tiny run (with final retraining and export), shared by the tests that only read it."""
    run_dir = tmp_path_factory.mktemp("run") / "a"
    result = Experiment(tiny_config(), run_dir=run_dir).run()
    return run_dir, result


def test_same_seed_gives_identical_rows(finished, tmp_path):
    run_dir, first = finished
    again = Experiment(tiny_config(), run_dir=tmp_path / "b").run()
    rows = evaluations(run_dir)
    assert len(rows) == 12 and [r[0] for r in rows] == list(range(12))
    assert rows == evaluations(tmp_path / "b")
    assert first.best["genome"] == again.best["genome"]
    # Another seed asks other genomes.
    other = Experiment(tiny_config(search={"seed": 8}), run_dir=tmp_path / "c").run()
    assert [r[2] for r in evaluations(tmp_path / "c")] != [r[2] for r in rows]
    assert other.evaluations == 12


def test_duplicates_reuse_the_first_evaluation_and_parents_are_earlier_ids(finished):
    rows = evaluations(finished[0])
    first: dict[tuple, tuple] = {}
    for row in rows:
        _, generation, genome, fitness, _, cached, parents = row[:7]
        if genome in first:
            assert cached and fitness == first[genome][3]
        else:
            assert not cached
            first[genome] = row
        if generation == 0:
            assert parents == ()  # the warm-up population is random
        else:  # a regularized-evolution child descends from an earlier evaluation
            assert len(parents) == 1 and parents[0] < 4 * generation
    # 2 genes of width x 2 of layers... the space is small: the search revisits genomes.
    assert any(r[5] for r in rows)


def test_exported_model_reproduces_the_reported_test_accuracy(finished):
    run_dir, result = finished
    assert result.final is not None and len(result.final["models"]) == 2
    module, variables, info = load_model(run_dir)
    assert info["genome"] == result.final["models"][0]["genome"]
    assert info["history_id"] == result.best["id"]
    x = np.zeros((3, 8, 8, 1), np.float32)
    assert module.apply(variables, x).shape == (3, 10)
    assert evaluate_model(run_dir) == pytest.approx(result.final["best_test_acc"], abs=1e-9)
    assert 0.5 < result.final["best_test_acc"] <= 1.0
    assert 0.5 < result.final["ensemble_test_acc"] <= 1.0


def test_load_model_refuses_parameters_of_another_architecture(finished, tmp_path):
    import json
    import shutil

    run_dir, result = finished
    copy = tmp_path / "copy"
    shutil.copytree(run_dir / "best", copy)
    info = json.loads((copy / "architecture.json").read_text())
    info["genome"][0] = 1 - info["genome"][0]  # one layer more or less: other parameters
    (copy / "architecture.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match=r"the parameters in .*params (lack|hold) \[.*\], "
                       r"which the architecture in architecture.json"):
        load_model(copy)
    info["genome"][0] = 1 - info["genome"][0]
    info["genome"][1] = 1 - info["genome"][1]  # another width: the same leaves, other shapes
    (copy / "architecture.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match=r"as float32\[.*\], but the architecture in "
                       r"architecture.json needs float32\[.*\]: they are not this model's"):
        load_model(copy)


def test_infeasible_architectures_fail_untrained_and_are_never_best(tmp_path):
    # Only 1-layer MLPs of width 16 fit: 64*16+16 + 16*10+10 = 1210 parameters.
    config = tiny_config(search={"constraints": ["params <= 1300"], "generations": 2},
                         final={"retrain": {"top_k": 0}})
    result = Experiment(config, run_dir=tmp_path / "r").run()
    rows = evaluations(tmp_path / "r")
    infeasible = [r for r in rows if r[4]]
    assert infeasible and all(r[3] is None for r in infeasible)
    from evonas.store import History

    with History(tmp_path / "r" / "history.sqlite", readonly=True) as history:
        for row in history.rows():
            assert (row["params"] > 1300) == row["failed"]
            if row["failed"]:
                assert row["reason"].startswith("constraint params <= 1300 violated")
    assert result.best is None or result.best["params"] <= 1300
    assert result.final is None


def test_early_stopping_replays_the_history_on_resume():
    stop = EarlyStopping(patience=2, maximize=True)
    stop.on_start(None, [{"best": 0.5}, {"best": 0.7}, {"best": 0.6}])
    assert stop.stale == 1 and not stop.should_stop()
    stop.on_start(None, [{"best": 0.5}, {"best": 0.7}, {"best": 0.6}, {"best": None}])
    assert stop.should_stop()
    minimize = EarlyStopping(patience=1, maximize=False)
    minimize.on_start(None, [{"best": 0.5}, {"best": 0.4}])
    assert not minimize.should_stop() and math.isclose(-minimize.best, 0.4)
