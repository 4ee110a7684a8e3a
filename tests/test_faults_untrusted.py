"""Faults a run directory meets when it is moved while it runs, or comes from someone else:
planted SQL, YAML bombs, special files, rows evonas would not have written, an export that can't
be written. Each ends in a one-line error within seconds or in an exact resume, and no committed
row is lost or replaced."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evonas.cli import main
from tests.experiment_configs import committed_generations, evaluations, write_yaml

pytestmark = pytest.mark.faults

ROOT = Path(__file__).resolve().parents[1]
EVONAS = [sys.executable, "-c", "import sys, runpy; sys.argv[0] = 'evonas'; "
          "runpy.run_module('evonas.cli', run_name='__main__')"]
SEARCH = {"search": {"generations": 4}, "final": {"retrain": {"top_k": 0}}}


def _evonas(*args: str, timeout: float = 120.0, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return subprocess.run([*EVONAS, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def _one_line(proc: subprocess.CompletedProcess, fragment: str) -> str:
    lines = [line for line in proc.stderr.strip().splitlines()
             if not line.startswith("evonas: note")]
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("evonas: error: "), proc.stderr[-3000:]
    assert fragment in lines[0], lines[0]
    return lines[0]


def _raw_rows(run_dir: Path) -> list[tuple]:
    """Every stored row, read with sqlite alone (evonas refuses some of these files)."""
    db = sqlite3.connect(f"file:{run_dir / 'history.sqlite'}?mode=ro", uri=True)
    try:
        return db.execute("SELECT * FROM evaluations ORDER BY id").fetchall()
    finally:
        db.close()


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def search_run(tmp_path, capsys):
    """A finished 4-generation search (no final stage), and its rows."""
    config = write_yaml(tmp_path / "tiny.yaml", **SEARCH)
    run_dir = tmp_path / "run"
    assert main(["run", str(config), "--run-dir", str(run_dir)]) == 0
    capsys.readouterr()
    return config, run_dir, evaluations(run_dir)


# -- someone else's history ----------------------------------------------------------------


def test_a_planted_trigger_is_refused_and_never_runs(search_run):
    _, run_dir, _ = search_run
    shutil.rmtree(run_dir / "checkpoints" / "3")  # the resume would write generation 3 again
    rows = _raw_rows(run_dir)
    db = sqlite3.connect(run_dir / "history.sqlite")
    db.execute("CREATE TRIGGER planted AFTER INSERT ON evaluations BEGIN "
               "UPDATE evaluations SET fitness = 0.99 WHERE id = NEW.id; END")
    db.commit()
    db.close()
    line = _one_line(_evonas("resume", str(run_dir)), "trigger")
    assert "planted" in line
    assert _raw_rows(run_dir) == rows  # nothing ran, nothing was changed
    for command in (["report", str(run_dir)], ["front", str(run_dir), "--no-export"]):
        proc = _evonas(*command)  # read-only: the report reads it, front refuses it
        assert proc.returncode == 0 or "trigger" in proc.stderr, proc.stderr[-2000:]
        assert "Traceback" not in proc.stderr
    assert _raw_rows(run_dir) == rows


def test_a_foreign_history_is_not_switched_to_wal(search_run):
    """A history whose columns are not evonas's is refused, and left exactly as it was: not
    switched to WAL (which the message promises)."""
    _, run_dir, _ = search_run
    history = run_dir / "history.sqlite"
    db = sqlite3.connect(history)
    db.execute("PRAGMA journal_mode=DELETE")
    db.execute("ALTER TABLE evaluations RENAME COLUMN metrics TO measured")
    db.commit()
    db.close()
    before = history.read_bytes()
    _one_line(_evonas("resume", str(run_dir)), "history")
    db = sqlite3.connect(f"file:{history}?mode=ro", uri=True)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    db.close()
    assert history.read_bytes() == before


def test_a_lost_write_ahead_log_is_named_as_such(search_run, tmp_path):
    """A history whose tables were still in its write-ahead log when the log was lost (copied
    without its -wal file) reads as an empty file: the message says so, not "a newer version"."""
    _, run_dir, _ = search_run
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("history.sqlite*"))
    db = sqlite3.connect(run_dir / "history.sqlite")  # held open: the log stays unmerged
    db.execute("PRAGMA wal_autocheckpoint=0")
    fresh = sqlite3.connect(copy / "history.sqlite")
    fresh.execute("PRAGMA journal_mode=WAL")
    fresh.execute("PRAGMA wal_autocheckpoint=0")
    fresh.close()
    db.close()
    (copy / "history.sqlite-wal").unlink(missing_ok=True)
    line = _one_line(_evonas("resume", str(copy)), "write-ahead log")
    assert "evonas version that wrote it" not in line


@pytest.mark.parametrize("column, value, fragment", [
    ("genome", "[1e999, 0, 0, 0, 0]", "genome"),
    ("metrics", "[" * 100_000 + "]" * 100_000, "metrics"),
    ("description", "[" * 100_000 + "]" * 100_000, "description"),
])
def test_a_row_evonas_would_not_write_is_left_out_and_named(search_run, tmp_path, column,
                                                           value, fragment):
    _, run_dir, rows = search_run
    db = sqlite3.connect(run_dir / "history.sqlite")
    db.execute(f"UPDATE evaluations SET {column} = ? WHERE id = 5", (value,))
    db.commit()
    db.close()
    for command in (["report", str(run_dir)], ["front", str(run_dir), "--no-export"]):
        proc = _evonas(*command)
        assert proc.returncode == 0, proc.stderr[-2000:]
        if column != "description":  # a description is decoded only where it is shown
            assert "history row 5" in proc.stderr and fragment in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    if column != "description":
        assert "history row 5" in (run_dir / "report" / "index.html").read_text()
    from evonas.dashboard.server import RunView

    view = RunView(0, run_dir)
    view.refresh(force=True)  # the dashboard starts, the other rows shown
    assert view.rows(0, None)["total"] >= len(rows) - 1
    if column != "description":
        assert "history row 5" in (view.error or "")
        shutil.rmtree(run_dir / "checkpoints" / "3")
        _one_line(_evonas("resume", str(run_dir)), "history row 5")


# -- files that are not what they seem ------------------------------------------------------


def test_a_yaml_alias_bomb_is_one_line_in_seconds(search_run):
    _, run_dir, rows = search_run
    bomb = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    bomb += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    (run_dir / "config.yaml").write_text("\n".join(bomb) + "\n")
    start = time.perf_counter()
    _check_bad_config(run_dir, "more than 100,000 values")
    assert time.perf_counter() - start < 60
    assert evaluations(run_dir) == rows


def _check_bad_config(run_dir: Path, fragment: str) -> None:
    """resume and front (which need the config) refuse in one line; report shows the history
    and notes that it shows the config as text only."""
    for command in ("resume", "front"):
        proc = _evonas(command, str(run_dir))
        _one_line(proc, "config.yaml")
        assert fragment in proc.stderr and "Error" not in proc.stderr, proc.stderr
    proc = _evonas("report", str(run_dir))
    assert proc.returncode == 0 and "config.yaml" in proc.stderr, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "Error" not in proc.stderr


def test_yaml_nested_deep_is_one_line(search_run):
    _, run_dir, _ = search_run
    for depth in (500, 1000):
        (run_dir / "config.yaml").write_text("a: " + "[" * depth + "]" * depth + "\n")
        _check_bad_config(run_dir, "deep")


@pytest.mark.parametrize("name", ["config.yaml", "best/final.json"])
def test_special_files_are_refused_not_read(search_run, name):
    """A link to /dev/zero and a FIFO: neither is read without bound, neither hangs."""
    _, run_dir, rows = search_run
    target = run_dir / name
    target.parent.mkdir(exist_ok=True)
    original = target.read_bytes() if target.is_file() else None
    target.unlink(missing_ok=True)
    target.symlink_to("/dev/zero")
    proc = _evonas("resume", str(run_dir), timeout=60)
    assert "MemoryError" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    if name == "config.yaml":
        _one_line(proc, "config.yaml")
    target.unlink()
    os.mkfifo(target)
    proc = _evonas("resume", str(run_dir), timeout=60)  # a hang fails here
    assert "Traceback" not in proc.stderr, proc.stderr
    if name == "config.yaml":
        _one_line(proc, "config.yaml")
    target.unlink()
    if original is not None:
        target.write_bytes(original)
    assert evaluations(run_dir)[:len(rows)] == rows


def test_a_fifo_lock_file_names_its_path(search_run):
    _, run_dir, _ = search_run
    lock = run_dir / ".evonas.lock"
    lock.unlink(missing_ok=True)
    os.mkfifo(lock)
    _one_line(_evonas("resume", str(run_dir), timeout=60), str(lock))


# -- an export that can't be written ----------------------------------------------------------


def _limit_file_size(limit: int):
    def limited():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return limited


@pytest.mark.parametrize("limit", [48_000, 70_000])
def test_an_export_that_cannot_be_written_fails_in_seconds(tmp_path, capsys, limit):
    """Files may not grow past ``limit`` bytes (48 kB: the export's probe fails before orbax
    starts; 70 kB: orbax's own write fails): one line within seconds, then a resume with room
    finishes the run as one left alone."""
    config = write_yaml(tmp_path / "tiny.yaml",
                        encoding={"name": "mlp", "options": {"max_layers": 2,
                                                             "widths": [256, 512]}},
                        search={"generations": 1}, final={"retrain": {"top_k": 1, "steps": 5}})
    alone = tmp_path / "alone"
    assert main(["run", str(config), "--run-dir", str(alone)]) == 0
    capsys.readouterr()
    run_dir = tmp_path / "run"
    shutil.copytree(alone, run_dir)
    shutil.rmtree(run_dir / "best")  # as if it died in its final stage
    start = time.perf_counter()
    proc = _evonas("resume", str(run_dir), preexec_fn=_limit_file_size(limit))
    seconds = time.perf_counter() - start
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.strip().splitlines()
             if not line.startswith("evonas: note")]
    assert len(lines) == 1 and "can't write" in lines[0], proc.stderr[-3000:]
    assert seconds < 60
    assert not (run_dir / "best" / "final.json").exists()
    assert _evonas("resume", str(run_dir)).returncode == 0
    assert json.loads((run_dir / "best" / "final.json").read_text()) == json.loads(
        (alone / "best" / "final.json").read_text())


# -- a run directory moved while its run is alive ----------------------------------------------


TABULAR = {"encoding": {"name": "nb201", "options": {}}, "dataset": {"name": "digits"},
           "evaluator": {"name": "tabular"},
           "search": {"generations": 120, "objectives": [{"name": "test_acc"}]},
           "final": {"retrain": {"top_k": 1}}}


def _tabular_yaml(path: Path, seed: int) -> Path:
    return write_yaml(path, **{**TABULAR, "search": {**TABULAR["search"], "seed": seed}})


def _start(*args: str) -> subprocess.Popen:
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return subprocess.Popen([*EVONAS, *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def _wait_for(predicate, process, timeout=240.0) -> bool:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if predicate():
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.02)
    return False


def test_a_run_directory_moved_while_it_runs(tmp_path):
    """``mv A B`` mid-run: the run stops with one line at its next write and writes nothing at
    A; ``evonas resume B`` continues exactly, every committed row kept."""
    config = _tabular_yaml(tmp_path / "a.yaml", seed=1)
    alone = tmp_path / "alone"
    assert _start("run", str(config), "--run-dir", str(alone)).wait() == 0
    a, b = tmp_path / "A", tmp_path / "B"
    process = _start("run", str(config), "--run-dir", str(a))
    assert _wait_for(lambda: committed_generations(a) >= 2, process)
    os.kill(process.pid, signal.SIGSTOP)
    a.rename(b)
    committed = evaluations(b)
    os.kill(process.pid, signal.SIGCONT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 2, err[-3000:]
    assert "moved or replaced" in err and str(a) in err
    assert not a.exists()  # nothing recreated where the run was
    assert evaluations(b)[:len(committed)] == committed
    assert _evonas("resume", str(b), timeout=300).returncode == 0
    assert evaluations(b) == evaluations(alone)
    assert json.loads((b / "best" / "final.json").read_text()) == json.loads(
        (alone / "best" / "final.json").read_text())


def test_a_stopped_run_never_writes_into_the_run_that_took_its_place(tmp_path):
    """SIGSTOP a run, ``mv A B``, run another experiment at A, SIGCONT: the old run stops
    without touching A, and both resume as their own experiments."""
    first, second = _tabular_yaml(tmp_path / "1.yaml", 1), _tabular_yaml(tmp_path / "2.yaml", 2)
    reference = tmp_path / "reference"
    assert _start("run", str(second), "--run-dir", str(reference)).wait() == 0
    a, b = tmp_path / "A", tmp_path / "B"
    old = _start("run", str(first), "--run-dir", str(a))
    assert _wait_for(lambda: committed_generations(a) >= 2, old)
    os.kill(old.pid, signal.SIGSTOP)
    a.rename(b)
    new = _start("run", str(second), "--run-dir", str(a))
    assert _wait_for(lambda: committed_generations(a) >= 3, new)
    new.kill()
    new.wait()
    taken = evaluations(a)
    os.kill(old.pid, signal.SIGCONT)
    _, err = old.communicate(timeout=120)
    assert old.returncode == 2 and "moved or replaced" in err, err[-3000:]
    assert evaluations(a) == taken  # not one row of the other run written there
    proc = _evonas("resume", str(a), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert evaluations(a) == evaluations(reference)
    assert _evonas("resume", str(b), timeout=300).returncode == 0
    assert len(evaluations(b)) == len(evaluations(reference))


def test_a_checkpoint_of_another_experiment_is_never_restored(search_run, tmp_path, capsys):
    """Checkpoints carry their experiment's fingerprint: one copied in from another run is
    refused in one line, and nothing is changed."""
    config, run_dir, rows = search_run
    other = tmp_path / "other"
    assert main(["run", str(config), "--run-dir", str(other), "--seed", "11"]) == 0
    capsys.readouterr()
    shutil.rmtree(run_dir / "checkpoints" / "3")
    shutil.copytree(other / "checkpoints" / "3", run_dir / "checkpoints" / "3")
    _one_line(_evonas("resume", str(run_dir)), "belongs to another experiment")
    assert evaluations(run_dir) == rows


# -- Ctrl-C where Python drops it ---------------------------------------------------------------

STING = """
import gc, os, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.path.insert(0, {root!r})
from evonas.experiment import Experiment
from evonas.experiment.callbacks import Callback
from tests.experiment_configs import tiny_config


class Sting(Callback):
    def on_generation(self, info):
        if info.generation != 0:
            return
        def callback(phase, data):  # Ctrl-C lands inside a GC callback: Python drops it
            gc.callbacks.remove(callback)
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(10_000):
                pass
        gc.callbacks.append(callback)
        gc.collect()
        print("the interrupt was dropped where it landed", flush=True)


config = tiny_config(search={{"generations": 4}}, final={{"retrain": {{"top_k": 0}}}})
try:
    Experiment(config, run_dir={run_dir!r}, callbacks=[Sting()]).run()
except KeyboardInterrupt as err:
    print(f"stopped: {{err.generations}} generations kept", flush=True)
    sys.exit(130)
print("finished", flush=True)
"""


def test_ctrl_c_dropped_inside_a_gc_callback_still_stops_the_run(tmp_path):
    run_dir = tmp_path / "run"
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", STING.format(root=str(ROOT),
                                                             run_dir=str(run_dir))],
                          env=env, capture_output=True, text=True, timeout=300)
    assert "the interrupt was dropped where it landed" in proc.stdout, proc.stderr[-2000:]
    assert "KeyboardInterrupt" in proc.stderr  # Python's "Exception ignored in" line
    assert proc.returncode == 130, proc.stdout + proc.stderr[-2000:]
    assert "stopped: 1 generations kept" in proc.stdout
    assert committed_generations(run_dir) == 1


def test_resume_messages_say_what_happened(search_run, tmp_path):
    proc = _evonas("resume", str(tmp_path / "nonexistent"))
    line = _one_line(proc, "no run directory at")
    assert "--run-dir" not in line  # resume takes the directory itself
    _, run_dir, rows = search_run
    proc = _evonas("resume", str(run_dir))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"{run_dir} had already finished: nothing was computed")
    assert evaluations(run_dir) == rows
