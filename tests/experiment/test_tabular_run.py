"""evonas run with a tabular evaluator: NAS-Bench-201 searched by the experiment runner, with
history, final stage, resume and checks of what a table allows."""

from __future__ import annotations

import json
import shutil

import jax.numpy as jnp
import numpy as np
import pytest

from evonas.benchmarks import nb201
from evonas.experiment import Experiment, ExperimentConfig
from tests.experiment_configs import evaluations


def _config(**search):
    return ExperimentConfig.from_dict({
        "encoding": {"name": "nb201"},
        "evaluator": {"name": "tabular", "options": {"dataset": "cifar100"}},
        "strategy": {"name": "regularized_evolution",
                     "params": {"population_size": 8, "sample_size": 3}},
        "search": {"population_size": 8, "generations": 4, "seed": 1,
                   "objectives": [{"name": "test_acc"}], **search},
        "final": {"retrain": {"top_k": 3}},
        "display": {"progress": False, "report": False},
    })


def test_a_tabular_run_records_the_table_and_reads_its_final_stage(tmp_path):
    result = Experiment(_config(constraints=["edgegpu_latency <= 6 ms"]),
                        run_dir=tmp_path / "run").run()
    table = nb201.table(dataset="cifar100")
    rows = evaluations(tmp_path / "run")
    assert len(rows) == 32 and result.generations == 4
    from evonas.store import History

    with History(tmp_path / "run" / "history.sqlite", readonly=True) as history:
        full = history.rows()
    canonical = table.encoding.canonical
    for row in full:
        if row["cached"]:  # an isomorphic cell seen before: its first row's values, reused
            first = next(r for r in full if r["id"] < row["id"] and not r["cached"] and (
                np.asarray(canonical(jnp.asarray(r["genome"]))).tolist()
                == np.asarray(canonical(jnp.asarray(row["genome"]))).tolist()))
            assert row["fitness"] == first["fitness"] and row["metrics"] == first["metrics"]
            continue
        genome = jnp.asarray([row["genome"]])
        latency = float(table.lookup(genome, "edgegpu_latency")[0])
        assert row["metrics"]["edgegpu_latency"] == pytest.approx(latency)
        if latency > 6:
            assert row["failed"] and row["reason"].startswith("constraint edgegpu_latency")
        else:
            assert row["fitness"] == pytest.approx(float(table.lookup(genome, "test_acc")[0]))
    assert sum(r["cached"] for r in full) > 0
    final = result.final
    assert final["protocol"] == "oracle tabular" and final["benchmark"] == "nb201"
    ranked = sorted((r for r in full if not r["failed"] and not r["cached"]),
                    key=lambda r: (-r["fitness"], r["id"]))[:3]
    assert [m["id"] for m in final["models"]] == [r["id"] for r in ranked]
    assert [m["test_acc"] for m in final["models"]] == pytest.approx([r["fitness"]
                                                                       for r in ranked])
    info = json.loads((tmp_path / "run" / "best" / "architecture.json").read_text())
    assert info["encoding"] == "nb201" and info["benchmark"] == "nb201"
    assert not (tmp_path / "run" / "best" / "params").exists()  # nothing was trained


def test_a_tabular_run_resumes_to_the_same_rows(tmp_path):
    config = _config()
    Experiment(config, run_dir=tmp_path / "a").run()
    expected = evaluations(tmp_path / "a")
    shutil.rmtree(tmp_path / "a" / "checkpoints" / "3")
    shutil.rmtree(tmp_path / "a" / "best")
    Experiment.resume(tmp_path / "a").run()
    assert evaluations(tmp_path / "a") == expected
    assert np.isfinite([r[3] for r in expected if r[3] is not None]).all()


def test_what_a_tabular_run_may_search_on_is_checked_before_it_starts(tmp_path):
    with pytest.raises(ValueError, match=r"search.objectives\[0\].name names the metric "
                       r"'val_acc'; allowed: \['test_acc', 'edgegpu_latency'"):
        Experiment(_config(objectives=[{"name": "val_acc"}]), run_dir=tmp_path / "x").run()
    with pytest.raises(ValueError, match=r"encoding.options .* can't be used with a tabular "
                       r"evaluator"):
        Experiment(ExperimentConfig.from_dict({
            "encoding": {"name": "nb201", "options": {"channels": 8}},
            "evaluator": {"name": "tabular"},
            "search": {"objectives": [{"name": "test_acc"}]}}), run_dir=tmp_path / "y").run()
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
