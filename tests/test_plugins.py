"""A plug-in package installed with pip, found through its entry points, that also registers
itself on import: listed, benchmarked and searched by ``evonas run`` with a tabular evaluator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

PACKAGE = Path(__file__).parent / "plugins" / "toy_table"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The package installed (by pip, into a directory of its own) and an environment that sees
    it, as ``pip install evonas-toy-table`` would."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--no-index", "--target", str(target),
                    str(PACKAGE)], check=True, capture_output=True, timeout=300)
    assert (target / "evonas_toy_table").is_dir()
    assert list(target.glob("evonas_toy_table-0.1.0.dist-info/entry_points.txt"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), str(ROOT)]),
           "JAX_PLATFORMS": "cpu"}
    return env


def _evonas(env, *args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evonas.cli", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def test_list_shows_the_plugin_encoding_and_benchmark(installed):
    out = _evonas(installed, "list", "--json")
    assert out.returncode == 0, out.stderr
    listing = json.loads(out.stdout)
    assert "toytable" in listing["encodings"] and "toytable" in listing["benchmarks"]
    assert "nb201" in listing["benchmarks"]


def test_bench_searches_the_plugin_table(installed):
    out = _evonas(installed, "bench", "toytable", "--runs", "16", "--budget", "60",
                  "--strategy", "regularized_evolution", "--set", "population_size=10",
                  "--set", "sample_size=3", "--set", "batch_size=5", "--compact")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["benchmark"] == "toytable" and result["protocol"] == "tabular"
    assert result["count"] == "queries" and result["runs"] == 16
    # Regret is measured on the report-only test accuracy of what the validation score selected.
    code = ("import json, numpy as np, evonas_toy_table as t; test = t.toy_table()"
            ".column('test_acc'); print(json.dumps([float(test.max()), float(test.mean())]))")
    facts = subprocess.run([sys.executable, "-c", code], env=installed, capture_output=True,
                           text=True, check=True)
    best, mean = json.loads(facts.stdout)
    assert result["optimum"] == pytest.approx(best, abs=1e-4)
    assert set(result["regret"]) == {"10", "30"}
    # After 30 evaluations the search selects far better than a random architecture would.
    assert 0.0 <= result["regret"]["30"] < 0.3 * (best - mean)
    assert result["final_mean"] <= best


def test_run_with_a_tabular_evaluator_writes_history_report_and_front(installed, tmp_path):
    config = {
        "encoding": {"name": "toytable"},
        "evaluator": {"name": "tabular", "benchmark": "toytable"},
        "strategy": {"name": "nsga2"},
        "search": {"population_size": 8, "generations": 3, "seed": 3,
                   "objectives": [{"name": "val_acc"}, {"name": "cpu_latency"}],
                   "constraints": ["cpu_latency <= 10 ms"]},
        "final": {"retrain": {"top_k": 2}, "front": {"size": 3}},
        "display": {"progress": False},
    }
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(config))
    run_dir = tmp_path / "run"
    out = _evonas(installed, "run", str(path), "--run-dir", str(run_dir))
    assert out.returncode == 0, out.stderr
    assert "read from the tabular table 'toytable'" in out.stdout
    import sqlite3

    with sqlite3.connect(run_dir / "history.sqlite") as db:
        rows = db.execute("SELECT fitness, metrics, failed, reason FROM evaluations"
                          ).fetchall()
    assert len(rows) == 24
    for fitness, metrics, failed, reason in rows:
        metrics = json.loads(metrics)
        assert "test_acc" not in metrics  # report-only: never in what the search saw
        if failed:
            assert reason.startswith("constraint cpu_latency <= 10 violated")
            assert metrics["cpu_latency"] > 10
        else:
            assert metrics["cpu_latency"] <= 10 and fitness == pytest.approx(metrics["val_acc"])
    final = json.loads((run_dir / "best" / "final.json").read_text())
    assert final["benchmark"] == "toytable" and len(final["models"]) == 2
    assert all("test_acc" in m and np.isfinite(m["test_acc"]) for m in final["models"])
    front = json.loads((run_dir / "front" / "front.json").read_text())
    assert 1 <= len(front["members"]) <= 3 and all("test_acc" in m for m in front["members"])
    assert (run_dir / "report" / "index.html").is_file()
    assert "toytable" in (run_dir / "best" / "architecture.json").read_text()
