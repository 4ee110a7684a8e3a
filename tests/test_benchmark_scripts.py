"""The benchmark scripts run and print what their docstrings promise (tiny sizes)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import jax
import numpy as np
import pytest

ROOT = Path(__file__).parent.parent


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def restore_jax_config():
    """Benchmark scripts set process-wide JAX options in ``main``; other tests must not see them."""
    saved = jax.config.jax_threefry_partitionable
    yield
    jax.config.update("jax_threefry_partitionable", saved)


def test_nb201_multiobjective_reports_hypervolume_gaps(capsys, restore_jax_config):
    bench = _load("nb201_multiobjective")
    out = bench.main(["--runs", "2", "--budget", "300", "--strategies", "random_search,nsga2"])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == out
    assert out["benchmark"] == "nb201_multiobjective" and out["runs"] == 2
    for strategy in ("random_search", "nsga2"):
        pairs = out["results"][strategy]
        assert len(pairs) == 18 and "cifar10_edgegpu" in pairs and "imagenet16_edgetpu" in pairs
        for gaps in pairs.values():
            # More evaluations never lose volume: the gap only shrinks, and stays in [0, 1].
            assert 0.0 <= gaps["300"] <= gaps["100"] <= 1.0


def test_true_front_volume_is_the_largest_any_subset_reaches():
    bench = _load("nb201_multiobjective")
    from evonas.benchmarks.nb201 import load_table
    from evonas.objectives import hypervolume

    acc, lat = bench.columns(load_table())
    refs, volumes = bench.true_front_volumes(acc[:1], lat[:1])
    rng = np.random.default_rng(0)
    subset = rng.choice(acc.shape[1], 500, replace=False)
    points = np.stack([acc[0, subset], lat[0, subset]], axis=1).astype(np.float64)
    assert 0.0 < hypervolume(points, refs[0], (True, False)) < volumes[0]


def test_report_scale_writes_the_report_of_a_synthetic_history(capsys):
    bench = _load("report_scale")
    assert bench.main(["--rows", "1500", "--per-generation", "50"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["benchmark"] == "report_scale" and out["rows"] == 1500
    assert out["generations"] == 30 and out["report_s"] > 0 and out["html_mb"] > 0
