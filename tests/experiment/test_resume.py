"""Resume: a run killed with SIGKILL at random moments and resumed writes exactly the same rows
as the same run left alone; a corrupt newest checkpoint falls back to the previous one."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from evonas.experiment import Experiment
from tests.experiment_configs import committed_generations, evaluations, tiny_config, write_yaml

EVONAS = [sys.executable, "-m", "evonas.cli"]
# Four generations of 4 and no final stage: long enough to be killed inside a generation.
SECTIONS = {"search": {"generations": 4}, "final": {"retrain": {"top_k": 0}}}
# Cheap evaluation keeps state between generations too (survivors, parents' weights, supernet).
# A plainly trained run is killed at seeded moments in every stage by tests/test_faults.py.
METHODS = {
    "halving": {"evaluator": {"halving": {"rungs": [5, 10], "eta": 2}}},
    "inherit": {"evaluator": {"inherit": {"steps": 5}}},
    "oneshot": {"evaluator": {"name": "oneshot", "supernet_steps": 200},
                "train": {"steps_per_call": 10}},
    # A differentiable search keeps its supernet, both optimisers and the learned distribution.
    "drnas": {"strategy": {"name": "drnas", "params": {"arch_learning_rate": 0.05}}},
    # A warm start: its first population is an earlier run's best (the path is filled in).
    "warm": {"search": {"warm_start": None}},
}


def _evonas(*args: str) -> subprocess.Popen:
    return subprocess.Popen([*EVONAS, *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=Path(__file__).parents[2])


def _generation_seconds(run_dir: Path) -> list[float]:
    import sqlite3

    with sqlite3.connect(f"file:{run_dir / 'history.sqlite'}?mode=ro", uri=True) as db:
        return [r[0] for r in db.execute(
            "SELECT wall_seconds FROM generations ORDER BY generation")]


def _has_checkpoint(run_dir: Path) -> bool:
    steps = run_dir / "checkpoints"
    return steps.is_dir() and any(p.name.isdigit() for p in steps.iterdir())


@pytest.mark.slow
@pytest.mark.parametrize("method", list(METHODS))
def test_sigkill_at_random_moments_then_resume_gives_identical_rows(tmp_path, method):
    sections = {**SECTIONS}
    for name, values in METHODS[method].items():
        sections[name] = {**sections.get(name, {}), **values}
    if method == "warm":
        earlier = write_yaml(tmp_path / "earlier.yaml", search={"generations": 2},
                             final={"retrain": {"top_k": 0}})
        assert _evonas("run", str(earlier), "--run-dir", str(tmp_path / "earlier")).wait() == 0
        sections["search"] = {**sections["search"], "warm_start": str(tmp_path / "earlier")}
    config = write_yaml(tmp_path / "tiny.yaml", **sections)
    assert _evonas("run", str(config), "--run-dir", str(tmp_path / "alone")).wait() == 0
    expected = evaluations(tmp_path / "alone")
    assert len(expected) == 16
    trained = [row for row in expected if not row[5]]
    estimates = {row[-1] for row in trained}
    assert estimates == {"inherit": {"trained", "inherited"}, "oneshot": {"oneshot"}}.get(
        method, {"trained"})
    if method == "oneshot":  # no architecture trains on its own
        assert {row[-2] for row in trained} == {0}
    elif method in ("halving", "inherit"):  # some stopped early, or trained 5 steps from a parent
        assert {row[-2] for row in trained} >= {5, 20}

    run_dir = tmp_path / "killed"
    rng = np.random.default_rng(0)
    # A later generation's own seconds (the first one's include its compiles).
    per_generation = float(np.median(_generation_seconds(tmp_path / "alone")[1:]))
    kills = 0
    for fraction in rng.uniform(0.1, 0.8, size=2):
        # Resume when there is a checkpoint; a run killed in its first generation starts again.
        args = (["resume", str(run_dir)] if _has_checkpoint(run_dir)
                else ["run", str(config), "--run-dir", str(run_dir)])
        done = committed_generations(run_dir, timeout=0.1)
        process = _evonas(*args)
        # A seeded moment inside the next generation: wait for this process to commit one (its
        # start-up and compiles may take any time on a busy machine), then kill a fraction of a
        # generation later.
        while (process.poll() is None
               and committed_generations(run_dir, timeout=0.1) <= done):
            time.sleep(0.02)
        try:
            process.wait(timeout=fraction * per_generation)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            kills += 1
    assert kills >= 2  # the moments fall inside the runs, or the test proves little
    args = (["resume", str(run_dir)] if _has_checkpoint(run_dir)
            else ["run", str(config), "--run-dir", str(run_dir)])
    assert _evonas(*args).wait() == 0
    assert evaluations(run_dir) == expected


def test_corrupt_newest_checkpoint_falls_back_to_the_previous_one(tmp_path):
    config = tiny_config(**SECTIONS)
    Experiment(config, run_dir=tmp_path / "a").run()
    expected = evaluations(tmp_path / "a")
    newest = tmp_path / "a" / "checkpoints" / "3"
    # Damage the newest checkpoint's state: its checksum (or orbax) now rejects it.
    for path in sorted((newest / "state").rglob("*")):
        if path.is_file() and path.stat().st_size > 0 and "metadata" not in path.name:
            path.write_bytes(b"\0" * path.stat().st_size)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Experiment(config, run_dir=tmp_path / "a").run()
    assert any("falling back to the previous checkpoint" in str(w.message) for w in caught)
    assert evaluations(tmp_path / "a") == expected
    # A half-written newest checkpoint (no commit marker) is skipped the same way.
    shutil.rmtree(tmp_path / "a" / "checkpoints" / "3")
    (tmp_path / "a" / "checkpoints" / "3").mkdir()
    Experiment(config, run_dir=tmp_path / "a").run()
    assert evaluations(tmp_path / "a") == expected


def test_a_run_directory_from_before_fingerprint_versions_still_resumes(tmp_path):
    """run.json without a version holds the version-1 fingerprint (plan, steps per call and
    memory budget left out); such a directory resumes, to the same rows."""
    import json

    config = tiny_config(**SECTIONS)
    Experiment(config, run_dir=tmp_path / "a").run()
    expected = evaluations(tmp_path / "a")
    info_path = tmp_path / "a" / "run.json"
    info = json.loads(info_path.read_text())
    info.pop("fingerprint_version")
    info["fingerprint"] = config.fingerprint(1)
    info_path.write_text(json.dumps(info))
    shutil.rmtree(tmp_path / "a" / "checkpoints" / "3")
    Experiment.resume(tmp_path / "a").run()
    assert evaluations(tmp_path / "a") == expected
