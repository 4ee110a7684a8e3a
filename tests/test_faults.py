"""Fault injection: kills at every stage, two owners, damaged files, a full disk, planted links
and hostile values. Each ends in a one-line error (exit 2) or in a resume that reproduces the
uninterrupted run exactly, and no committed row is ever lost."""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from evonas.cli import main
from tests.experiment_configs import committed_generations, evaluations, write_yaml

pytestmark = pytest.mark.faults

ROOT = Path(__file__).resolve().parents[1]
# A test worker may ignore SIGINT, and children inherit that: the child puts Python's
# KeyboardInterrupt handler back, as a terminal's `evonas` has it, then runs the CLI.
INTERRUPTIBLE = [sys.executable, "-c",
                 "import runpy, signal, sys; signal.signal(signal.SIGINT, "
                 "signal.default_int_handler); sys.argv[0] = 'evonas'; "
                 "runpy.run_module('evonas.cli', run_name='__main__')"]
# A search of 3 generations of 4, then 2 models retrained, exported and reported.
FULL = {"search": {"generations": 3}, "final": {"retrain": {"top_k": 2, "steps": 60}},
        "display": {"progress": False, "report": True}}
SEARCH = {"search": {"generations": 4}, "final": {"retrain": {"top_k": 0}}}


def _start(*args: str, capture: bool = False) -> subprocess.Popen:
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return subprocess.Popen([*INTERRUPTIBLE, *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE if capture else subprocess.DEVNULL, text=True)


def _cli(capsys, *argv) -> tuple[int, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, err


def _one_line_error(capsys, argv, fragment) -> str:
    code, err = _cli(capsys, *argv)
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("evonas: error: "), err
    assert fragment in lines[0], lines[0]
    return lines[0]


def _finished(run_dir: Path) -> dict:
    """Everything a finished run produced that must not depend on interruptions."""
    import evonas

    module, variables, info = evonas.load_model(run_dir)
    report = (run_dir / "report" / "index.html").read_text()
    report = "\n".join(line for line in report.splitlines() if "<b>written</b>" not in line)
    report = report.replace(str(run_dir), "RUN").replace(run_dir.name, "RUN")
    return {
        "rows": evaluations(run_dir),
        "final": json.loads((run_dir / "best" / "final.json").read_text()),
        "architecture": info,
        "params": [np.asarray(leaf).tolist() for leaf in
                   __import__("jax").tree.leaves(variables)],
        "report": report,
        "plots": {p.name: p.read_bytes() for p in sorted((run_dir / "report").glob("*.png"))},
    }


def _wait_for(predicate, process, timeout=240.0) -> bool:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if predicate():
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.02)
    return False


def test_sigkill_in_every_stage_then_resume_reproduces_the_run(tmp_path):
    """Killed in the search, in retraining (all generations done, no final.json), in the report
    (final.json written, no page yet): each resumed, and the end equals a run left alone."""
    config = write_yaml(tmp_path / "tiny.yaml", **FULL)
    alone = tmp_path / "alone"
    assert _start("run", str(config), "--run-dir", str(alone)).wait() == 0
    expected = _finished(alone)
    run_dir = tmp_path / "killed"
    rng = np.random.default_rng(7)
    stages = {
        "search": lambda: committed_generations(run_dir) >= 1,
        "retraining": lambda: committed_generations(run_dir) == 3,
        "report": lambda: (run_dir / "best" / "final.json").is_file(),
    }
    killed_in = []
    for stage, ready in stages.items():
        args = (["resume", str(run_dir)] if (run_dir / "checkpoints" / "0").is_dir()
                else ["run", str(config), "--run-dir", str(run_dir)])
        process = _start(*args)
        if _wait_for(ready, process):
            time.sleep(float(rng.uniform(0.0, 0.3)))  # a seeded moment inside the stage
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                killed_in.append(stage)
        process.wait()
    assert "search" in killed_in and len(killed_in) >= 2  # the kills fell inside the run
    while True:  # resume until done
        args = (["resume", str(run_dir)] if (run_dir / "checkpoints" / "0").is_dir()
                else ["run", str(config), "--run-dir", str(run_dir)])
        if _start(*args).wait() == 0:
            break
    assert _finished(run_dir) == expected


def test_a_second_process_on_a_run_directory_changes_nothing(tmp_path, capsys):
    config = write_yaml(tmp_path / "tiny.yaml", **SEARCH)
    run_dir = tmp_path / "run"
    owner = _start("run", str(config), "--run-dir", str(run_dir))
    lock = run_dir / ".evonas.lock"
    assert _wait_for(lambda: lock.is_file() and lock.read_text().strip() == str(owner.pid)
                     and (run_dir / "run.json").is_file(), owner)
    for argv in (["run", str(config), "--run-dir", str(run_dir)], ["resume", str(run_dir)]):
        _one_line_error(capsys, argv, f"in use by another evonas process (PID {owner.pid})")
    assert owner.wait() == 0
    assert len(evaluations(run_dir)) == 16


def _search_run(tmp_path, capsys) -> tuple[Path, Path]:
    config = write_yaml(tmp_path / "tiny.yaml", **SEARCH)
    run_dir = tmp_path / "run"
    assert main(["run", str(config), "--run-dir", str(run_dir), "--set",
                 "display.progress=false", "--set", "display.report=false"]) == 0
    capsys.readouterr()
    return config, run_dir


def test_damaged_history_is_one_line_and_untouched(tmp_path, capsys):
    _, run_dir = _search_run(tmp_path, capsys)
    history = run_dir / "history.sqlite"
    data = history.read_bytes()
    page = 4096
    assert len(data) > 3 * page
    damaged = data[:2 * page] + os.urandom(page) + data[3 * page:]  # a garbage page mid-file
    history.write_bytes(damaged)
    for argv in (["resume", str(run_dir)], ["report", str(run_dir)],
                 ["front", str(run_dir), "--no-export"]):
        _one_line_error(capsys, argv, "history")
        assert history.read_bytes() == damaged
    history.write_bytes(data[: len(data) // 2])  # truncated
    _one_line_error(capsys, ["resume", str(run_dir)], "history")
    assert len(history.read_bytes()) == len(data) // 2


def test_unreadable_checkpoints_never_cost_a_row(tmp_path, capsys):
    _, run_dir = _search_run(tmp_path, capsys)
    rows = evaluations(run_dir)
    for step in (run_dir / "checkpoints").iterdir():
        for path in (step / "state").rglob("*"):
            if path.is_file() and path.stat().st_size and "metadata" not in path.name:
                path.write_bytes(b"\0" * path.stat().st_size)
    with pytest.warns(UserWarning, match="falling back"):
        line = _one_line_error(capsys, ["resume", str(run_dir)], "no checkpoint can be restored")
    assert "16 evaluations of 4 generations" in line and "Nothing was changed" in line
    assert evaluations(run_dir) == rows


def test_a_torn_metrics_line_does_not_block_resume(tmp_path, capsys):
    config, run_dir = _search_run(tmp_path, capsys)
    rows = evaluations(run_dir)
    metrics = run_dir / "metrics.jsonl"
    metrics.write_text(metrics.read_text() + '{"generation": 4, "best": 0.5')  # a torn append
    import shutil

    shutil.rmtree(run_dir / "checkpoints" / "3")  # the last generation is computed again
    assert main(["resume", str(run_dir)]) == 0
    assert evaluations(run_dir) == rows
    lines = metrics.read_text().splitlines()
    assert [json.loads(line)["generation"] for line in lines] == [0, 1, 2, 3]


@pytest.mark.parametrize("point", ["history", "checkpoint", "final", "report"])
def test_a_full_disk_at_a_seeded_point_then_resume(tmp_path, capsys, monkeypatch, point):
    """ENOSPC from the write at ``point`` (at a generation drawn from a seeded generator): one
    line, every committed row kept; after space is freed, resume gives the uninterrupted run."""
    config = write_yaml(tmp_path / "tiny.yaml", **FULL)
    assert main(["run", str(config), "--run-dir", str(tmp_path / "alone")]) == 0
    expected = evaluations(tmp_path / "alone")
    full = OSError(errno.ENOSPC, "No space left on device")
    at = int(np.random.default_rng(11).integers(1, 3))  # the generation that hits the full disk
    import evonas.experiment.finish.context as final  # where the final stage writes its JSON
    import evonas.report.write as report
    import evonas.store.checkpoints as checkpoints
    import evonas.store.row as row_schema

    if point == "history":
        original = row_schema.encode

        def encode(generation, row):
            if generation == at:
                raise sqlite3.OperationalError("database or disk is full")
            return original(generation, row)

        monkeypatch.setattr(row_schema, "encode", encode)
        fragment = "database or disk is full"
    elif point == "checkpoint":
        original = checkpoints.Checkpoints.save

        def save(self, generation, state, extra=None):
            if generation == at:
                raise full
            return original(self, generation, state, extra)

        monkeypatch.setattr(checkpoints.Checkpoints, "save", save)
        fragment = "No space left on device"
    else:
        module = final if point == "final" else report

        def refuse(*args, **kwargs):
            raise full

        monkeypatch.setattr(module, "atomic_write_text", refuse)
        fragment = "No space left on device"
    capsys.readouterr()
    run_dir = tmp_path / "run"
    _one_line_error(capsys, ["run", str(config), "--run-dir", str(run_dir)], fragment)
    committed = evaluations(run_dir)
    assert committed == expected[: len(committed)] and committed  # nothing committed is lost
    monkeypatch.undo()
    assert main(["resume", str(run_dir)]) == 0
    assert evaluations(run_dir) == expected
    assert (run_dir / "best" / "final.json").is_file()
    assert (run_dir / "report" / "index.html").is_file()


def test_planted_links_are_refused_or_replaced_never_followed(tmp_path, capsys):
    config = write_yaml(tmp_path / "tiny.yaml", **FULL)
    run_dir = tmp_path / "run"
    assert main(["run", str(config), "--run-dir", str(run_dir)]) == 0
    capsys.readouterr()
    victim, other = tmp_path / "victim.txt", tmp_path / "other.txt"
    victim.write_text("keep me")
    other.write_text("keep me too")
    report = run_dir / "report"
    (report / ".index.html.tmp").symlink_to(victim)  # the old, predictable temporary name
    (report / "index.html").unlink()
    (report / "index.html").symlink_to(other)
    assert main(["report", str(run_dir)]) == 0
    assert victim.read_text() == "keep me" and other.read_text() == "keep me too"
    assert not (report / "index.html").is_symlink() and "<html" in (
        report / "index.html").read_text()
    # A linked directory, a linked history, linked parameters: refused, nothing written.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    import shutil

    shutil.rmtree(report)
    report.symlink_to(elsewhere)
    _one_line_error(capsys, ["report", str(run_dir)], "is a symbolic link")
    assert list(elsewhere.iterdir()) == []
    report.unlink()
    history = run_dir / "history.sqlite"
    history.rename(tmp_path / "real.sqlite")
    history.symlink_to(tmp_path / "real.sqlite")
    _one_line_error(capsys, ["resume", str(run_dir)], "is a symbolic link")
    history.unlink()
    (tmp_path / "real.sqlite").rename(history)
    (run_dir / "best" / "final.json").unlink()  # the final stage runs again ...
    params = run_dir / "best" / "params"
    shutil.rmtree(params)
    params.symlink_to(elsewhere)  # ... into parameters linked elsewhere
    _one_line_error(capsys, ["resume", str(run_dir)], "is a symbolic link")
    assert list(elsewhere.iterdir()) == []


def test_hostile_values_in_front_json_reach_the_page_escaped(tmp_path, capsys):
    config = write_yaml(tmp_path / "tiny.yaml", **FULL)
    run_dir = tmp_path / "run"
    assert main(["run", str(config), "--run-dir", str(run_dir)]) == 0
    capsys.readouterr()
    script = "<script>alert(1)</script>"
    (run_dir / "front").mkdir(exist_ok=True)
    (run_dir / "front" / "front.json").write_text(json.dumps({
        "objectives": [{"name": script, "direction": script}], "front_size": script,
        "hypervolume": script, "retrain_steps": script,
        "members": [{"id": script, "objectives": {script: script}, "params": script,
                     "test_acc": script, "description": {"arch_str": script}}, script],
    }))
    config_yaml = run_dir / "config.yaml"
    text = config_yaml.read_text().replace("name: val_acc", "name: val_acc\n  - name: params")
    config_yaml.write_text(text)  # two objectives: the page shows the front table
    assert main(["report", str(run_dir)]) == 0
    page = (run_dir / "report" / "index.html").read_text()
    # The page's own scripts: its data (JSON, never run) and the two inline scripts its policy
    # allows by hash; nothing of front.json opens another.
    own = re.findall(r"<script[^>]*>", page)
    assert own == ['<script type="application/json" id="evonas-config">', "<script>", "<script>"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


@pytest.mark.parametrize("override, fragment", [
    ("--seed=18446744073709551616", "search.seed must be an integer in 0..4294967295"),
    ("train.steps=1000000000000", "batch indices, drawn at once"),
    ("dataset.limit=5", "exceeds the 5 training examples"),
    ("search.population_size=1000000", "needs about"),
])
def test_bad_values_fail_before_anything_exists(tmp_path, capsys, override, fragment):
    config = write_yaml(tmp_path / "tiny.yaml", **SEARCH)
    argv = ["run", str(config), "--run-dir", str(tmp_path / "run")]
    argv += [override] if override.startswith("--") else ["--set", override]
    _one_line_error(capsys, argv, fragment)
    assert not (tmp_path / "run").exists()


def test_everything_failing_stops_with_the_reason_and_the_fix(tmp_path, capsys):
    config = write_yaml(tmp_path / "tiny.yaml", **SEARCH)
    run_dir = tmp_path / "run"
    line = _one_line_error(capsys, ["run", str(config), "--run-dir", str(run_dir), "--set",
                                    "train.learning_rate=1e30"], "every architecture")
    assert "lower train.learning_rate (now 1e+30)" in line and "(4 of 4)" in line
    assert len(evaluations(run_dir)) == 4  # the generation is kept


def test_ctrl_c_is_one_line_and_leaves_a_resumable_run(tmp_path):
    # Enough generations that the signal lands inside the run: once compiled, a generation of
    # this tiny search takes a fraction of a second, and 4 could all end before it arrives.
    config = write_yaml(tmp_path / "tiny.yaml", **{**SEARCH, "search": {"generations": 16}})
    alone = tmp_path / "alone"
    assert _start("run", str(config), "--run-dir", str(alone)).wait() == 0
    run_dir = tmp_path / "run"
    process = _start("run", str(config), "--run-dir", str(run_dir), capture=True)
    assert _wait_for(lambda: committed_generations(run_dir) >= 1, process)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"`evonas resume {run_dir}` continues the run" in lines[0]
    assert _start("resume", str(run_dir)).wait() == 0
    assert evaluations(run_dir) == evaluations(alone)


def test_edited_number_changing_settings_are_refused_on_resume(tmp_path, capsys):
    config, run_dir = _search_run(tmp_path, capsys)
    config_yaml = run_dir / "config.yaml"
    original = config_yaml.read_text()
    for old, new in (("plan: masked", "plan: grouped"), ("steps_per_call: 1",
                                                          "steps_per_call: 4")):
        assert old in original
        config_yaml.write_text(original.replace(old, new))
        _one_line_error(capsys, ["resume", str(run_dir)], "no longer matches the run")
    assert "compile_cache_dir: auto" in original  # the default: your own cache directory
    config_yaml.write_text(original.replace("compile_cache_dir: auto",
                                            f"compile_cache_dir: {tmp_path / 'cache'}"))
    with pytest.warns(UserWarning, match="does not take it from the run directory"):
        assert main(["resume", str(run_dir)]) == 0
    assert not (tmp_path / "cache").exists()


def test_a_huge_genome_value_is_one_line(capsys):
    genome = "[99999999999999999999" + ", 0" * 19 + "]"
    _one_line_error(capsys, ["describe", "conv", genome], "outside its range")


def test_a_history_on_read_only_media_is_read_immutably(tmp_path, capsys, monkeypatch):
    """Where sqlite can't open a WAL database read-only (no -shm can be created on a read-only
    medium), the history is read as an immutable file, with a warning for an unmerged log."""
    _, run_dir = _search_run(tmp_path, capsys)
    import evonas.store.history as history

    real = sqlite3.connect

    def connect(database, *args, **kwargs):
        if "mode=ro" in str(database) and "immutable=1" not in str(database):
            raise sqlite3.OperationalError("attempt to write a readonly database")
        return real(database, *args, **kwargs)

    monkeypatch.setattr(history.sqlite3, "connect", connect)
    assert main(["report", str(run_dir)]) == 0
    assert len(history.History(run_dir / "history.sqlite", readonly=True).rows()) == 16
    (run_dir / "history.sqlite-wal").write_bytes(b"\0" * 64)
    with pytest.warns(UserWarning, match="unmerged write-ahead log"):
        history.connect_readonly(run_dir / "history.sqlite").close()
