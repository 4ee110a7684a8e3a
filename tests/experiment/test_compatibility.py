"""Run directories and configs written before the config had a section per stage.

``tests/fixtures/run_before_sections`` was written by evonas at commit b9c84a1 (the last before
the sections): ``evonas run`` of a small experiment with the flat keys of its time
(``final.retrain_top_k``, ``final.distil``, ``final.prune``, ...) interrupted after its second
generation. The expected rows and ``final.json`` are that evonas's uninterrupted run of the same
experiment (latencies left out: a measurement, not a number the seed fixes).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from evonas.experiment.loading import check_fingerprint, run_config
from evonas.store import RunDir

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "run_before_sections"
EXPECTED = json.loads(FIXTURE.with_suffix(".expected.json").read_text())


def _rows(run_dir: Path) -> list[dict]:
    with sqlite3.connect(f"file:{run_dir / 'history.sqlite'}?mode=ro", uri=True) as db:
        columns = [c[1] for c in db.execute("PRAGMA table_info(evaluations)")]
        rows = [dict(zip(columns, r)) for r in db.execute(
            "SELECT * FROM evaluations ORDER BY id")]
    for row in rows:
        row.pop("train_seconds")  # wall time
    return rows


def _same(got, want) -> bool:
    """Equal, except that floats (also inside JSON text) may differ in their last bits: the
    fixture was written on another CPU, and XLA:CPU's vectorised kernels (AVX2 against AVX-512)
    round a log or an exp differently (seen: a val_loss 1 ulp apart, every genome, parent and
    fitness equal). Anything a change of behaviour would move is still compared exactly."""
    if isinstance(want, float) and isinstance(got, float):
        return math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-7)
    if isinstance(want, str) and isinstance(got, str) and want[:1] in "{[":
        try:
            return _same(json.loads(got), json.loads(want))
        except json.JSONDecodeError:
            return got == want
    if isinstance(want, dict) and isinstance(got, dict):
        return got.keys() == want.keys() and all(_same(got[k], want[k]) for k in want)
    if isinstance(want, list) and isinstance(got, list):
        return len(got) == len(want) and all(_same(g, w) for g, w in zip(got, want))
    return got == want


def _without_latency(value):
    if isinstance(value, dict):
        return {k: _without_latency(v) for k, v in value.items() if k != "latency_ms"}
    if isinstance(value, list):
        return [_without_latency(v) for v in value]
    return value


def test_its_config_loads_under_the_new_names_with_the_fingerprint_it_recorded():
    run = RunDir(FIXTURE, readonly=True)
    config = run_config(run)
    assert run.fingerprint_version == 2
    check_fingerprint(run, config)  # raises if the recomputed fingerprint differed
    assert config.final.retrain.top_k == 2 and config.final.retrain.steps == 40
    assert config.final.distil.steps == 20 and config.final.prune.mode == "structured"
    assert config.fingerprint(2) == run.fingerprint


@pytest.mark.slow
def test_a_run_directory_from_before_the_sections_resumes_and_finishes_identically(tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(FIXTURE, run_dir)
    assert len(_rows(run_dir)) == 8  # two generations of four committed
    # As a user resumes it: XLA's own compile options (the test session's fast-compile flags
    # would round the numbers differently from the run that wrote the fixture).
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    done = subprocess.run([sys.executable, "-m", "evonas.cli", "resume", str(run_dir)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "read under their new names" not in done.stderr  # its own layout: quiet
    rows = _rows(run_dir)
    assert [r["genome"] for r in rows] == [r["genome"] for r in EXPECTED["rows"]]
    assert _same(rows, EXPECTED["rows"])
    final = json.loads((run_dir / "best" / "final.json").read_text())
    assert _same(_without_latency(final), EXPECTED["final"])
    assert (run_dir / "distilled" / "distil.json").is_file()
    assert (run_dir / "pruned" / "prune.json").is_file()
