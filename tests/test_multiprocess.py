"""Multi-process runs (``jax.distributed`` over gloo): 2 local processes with 2 CPU devices each
stand in for 2 hosts.

The history of a 2 x 2 run equals the single-process run's over 4 devices, row for row: the same
genomes, parents and cache hits, and the same metrics up to float rounding (the programs are
compiled for different device assignments, so a loss sum may differ in its 7th digit). Killing
one process stops the other with a one-line error within the peer timeout, and ``resume`` on 2
processes completes the run with the same rows.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.experiment_configs import committed_generations

ROOT = Path(__file__).resolve().parents[1]
# The final stage on, as users run it: the top 2 retrained, their ensemble, the best exported,
# the report.
SETTINGS = ["--set", "search.generations=3", "--set", "search.population_size=4",
            "--set", "train.steps=10", "--set", "train.batch_size=32", "--set",
            "train.plan=masked", "--set", "dataset.limit=600", "--set", "final.retrain.top_k=2",
            "--set", "final.retrain.steps=30", "--set", "display.progress=false",
            "--set", "search.seed=3", "--set", "encoding.name=mlp"]
PEER_TIMEOUT = 4.0


def _env(devices: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "JAX_PLATFORMS"}
    # The session's compile flags (conftest.py), with this many host devices.
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}"
    env["XLA_FLAGS"] = flags.strip()
    env["JAX_PLATFORMS"] = "cpu"
    return env


def _evonas(*args: str, devices: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "evonas.cli", *args], cwd=ROOT,
                            env=_env(devices), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _processes(command: list[str], port: int, n: int = 2) -> list[subprocess.Popen]:
    return [_evonas(*command, "--coordinator", f"127.0.0.1:{port}", "--num-processes", str(n),
                    "--process-id", str(i), "--peer-timeout", str(PEER_TIMEOUT),
                    "--coordinator-timeout", "60", devices=2) for i in range(n)]


def _rows(run_dir: Path) -> list[dict]:
    with sqlite3.connect(f"file:{run_dir / 'history.sqlite'}?mode=ro", uri=True) as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT * FROM evaluations ORDER BY id")]


def _same_final_stage(run_dir: Path, reference: Path) -> None:
    """The same final.json (up to float rounding), report, and the same exported model: its
    predictions on the test inputs agree."""
    import evonas

    mine = json.loads((run_dir / "best" / "final.json").read_text())
    theirs = json.loads((reference / "best" / "final.json").read_text())
    assert [m["id"] for m in mine["models"]] == [m["id"] for m in theirs["models"]]
    for key in ("best_test_acc", "ensemble_test_acc"):
        assert np.isclose(mine[key], theirs[key], atol=2e-3), key
    assert (run_dir / "report" / "index.html").is_file()
    (module, variables, info), (ref_module, ref_variables, _) = (
        evonas.load_model(run_dir), evonas.load_model(reference))
    shape = info["encoding_options"]["input_shape"]
    x = np.random.default_rng(0).normal(size=(16, *shape)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(module.apply(variables, x)),
                               np.asarray(ref_module.apply(ref_variables, x)), rtol=1e-4,
                               atol=1e-4)


def _same_rows(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b) > 0
    for x, y in zip(a, b):
        for field in ("id", "generation", "genome", "parents", "cached", "failed", "params",
                      "flops", "fidelity", "estimate"):
            assert x[field] == y[field], (field, x["id"], x[field], y[field])
        for field in ("fitness", "val_acc", "val_loss"):
            assert np.isclose(x[field], y[field], rtol=1e-5, atol=1e-6), (field, x["id"])
        mx, my = json.loads(x["metrics"]), json.loads(y["metrics"])
        assert mx.keys() == my.keys()
        for k in mx:
            assert np.isclose(mx[k], my[k], rtol=1e-5, atol=1e-6), (k, x["id"])


@pytest.mark.slow
def test_two_processes_match_one_and_a_killed_one_resumes_to_the_same_rows(tmp_path):
    reference = tmp_path / "one"
    single = _evonas("run", "--run-dir", str(reference), *SETTINGS, devices=4)
    out, err = single.communicate(timeout=300)
    assert single.returncode == 0, err[-2000:]

    # 2 processes x 2 devices to the end, the final stage on process 0 included.
    whole = tmp_path / "whole"
    procs = _processes(["run", "--run-dir", str(whole), *SETTINGS], _free_port())
    results = [p.communicate(timeout=300) for p in procs]
    for p, (_out, err) in zip(procs, results):
        assert p.returncode == 0, err[-2000:]
        assert "Traceback" not in err, err[-2000:]
    assert "retrained top 2" in results[0][0] and "process 1 of 2: done" in results[1][0]
    _same_rows(_rows(whole), _rows(reference))
    _same_final_stage(whole, reference)

    # 2 processes x 2 devices; process 1 is killed once the first generation is committed.
    run_dir = tmp_path / "two"
    procs = _processes(["run", "--run-dir", str(run_dir), *SETTINGS], _free_port())
    deadline = time.monotonic() + 240
    while committed_generations(run_dir) < 1 and time.monotonic() < deadline:
        assert procs[0].poll() is None, procs[0].communicate()[1][-2000:]
        time.sleep(0.1)
    assert committed_generations(run_dir) >= 1
    if committed_generations(run_dir) >= 3:
        pytest.fail("the run ended before process 1 could be killed; make it longer")
    procs[1].kill()
    killed = time.monotonic()
    _, err0 = procs[0].communicate(timeout=120)
    stopped_in = time.monotonic() - killed
    procs[1].communicate()
    assert procs[0].returncode == 1, err0[-2000:]
    lines = [line for line in err0.splitlines() if line.startswith("evonas: error:")]
    assert len(lines) == 1 and "process 1 of 2 stopped answering" in lines[0], err0[-2000:]
    assert "evonas resume" in lines[0]
    assert "Traceback" not in err0 and "Check failure" not in err0
    assert stopped_in < PEER_TIMEOUT + 15, stopped_in
    kept = committed_generations(run_dir)
    assert 1 <= kept < 3
    _same_rows(_rows(run_dir), _rows(reference)[:len(_rows(run_dir))])

    procs = _processes(["resume", str(run_dir)], _free_port())
    results = [p.communicate(timeout=300) for p in procs]
    for p, (_out, err) in zip(procs, results):
        assert p.returncode == 0, err[-2000:]
    assert "process 1 of 2: done" in results[1][0]
    assert "search: 3 generations" in results[0][0]
    _same_rows(_rows(run_dir), _rows(reference))
    _same_final_stage(run_dir, reference)


def _one_line(args: list[str], fragment: str, devices: int = 1, timeout: float = 60) -> float:
    start = time.monotonic()
    p = _evonas(*args, devices=devices)
    _, err = p.communicate(timeout=timeout)
    seconds = time.monotonic() - start
    assert p.returncode != 0
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("evonas: error:"), err[-2000:]
    assert fragment in lines[0], lines[0]
    return seconds


def test_bad_distributed_settings_are_one_line_errors(tmp_path):
    run = ["run", "--run-dir", str(tmp_path / "r"), *SETTINGS]
    _one_line([*run, "--coordinator", "127.0.0.1:1234", "--num-processes", "2",
               "--process-id", "2"], "--process-id must be in 0..1")
    _one_line([*run, "--coordinator", "localhost", "--num-processes", "2", "--process-id", "0"],
              "--coordinator must look like HOST:PORT")
    _one_line([*run, "--coordinator", "127.0.0.1:1234", "--num-processes", "2"],
              "missing --process-id")
    # Nobody serves the coordinator: a follower says so within its timeout.
    seconds = _one_line([*run, "--coordinator", f"127.0.0.1:{_free_port()}", "--num-processes",
                         "2", "--process-id", "1", "--coordinator-timeout", "2"],
                        "can't reach the coordinator")
    assert seconds < 30
    # The coordinator's port is taken on process 0's host.
    with socket.socket() as taken:
        taken.bind(("", 0))
        taken.listen()
        port = taken.getsockname()[1]
        _one_line([*run, "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
                   "--process-id", "0"], f"port {port} is in use")
    assert not (tmp_path / "r").exists()


def test_run_searches_across_two_processes_gives_the_same_regret_table():
    bench = ["bench", "nb201", "--runs", "6", "--budget", "60", "--noise", "0.5", "--compact"]
    one = _evonas(*bench, devices=1)
    procs = _processes(bench, _free_port())
    outs = [p.communicate(timeout=240) for p in [one, *procs]]
    for p, (_, err) in zip([one, *procs], outs):
        assert p.returncode == 0, err[-2000:]
    single, leader = json.loads(outs[0][0]), outs[1][0].splitlines()
    assert len(leader) == 1  # gloo's notes go to stderr; stdout holds the JSON line alone
    assert json.loads(leader[0]) == single
    assert single["runs"] == 6 and set(single["regret"]) == {"10", "30"}
    assert outs[2][0] == ""  # process 1 computes its share of the runs and prints nothing
