"""The persistent compilation cache: on by default, a second run compiles nothing, and an entry
that does not match its key (corrupt, renamed, foreign) is recompiled, never run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from evonas.store import History
from evonas.train.cache import SignedCache, default_cache_dir, resolve_cache_dir
from evonas.train.config import TrainConfig
from tests.experiment_configs import tiny_dict


def test_entries_are_bound_to_their_key(tmp_path):
    cache = SignedCache(str(tmp_path), max_bytes=10_000)
    cache.put("jit_f-aaaa", b"program a")
    cache.put("jit_f-bbbb", b"program b")
    assert cache.get("jit_f-aaaa") == b"program a" and cache.get("jit_f-bbbb") == b"program b"
    a, b = tmp_path / "jit_f-aaaa.evonas-xla", tmp_path / "jit_f-bbbb.evonas-xla"
    a.write_bytes(b.read_bytes())  # another program's whole, valid entry under a's name
    assert cache.get("jit_f-aaaa") is None and not a.exists()  # a miss, and the file is gone
    b.write_bytes(b.read_bytes()[:-3])  # truncated
    assert cache.get("jit_f-bbbb") is None and cache.rejected == 2
    cache.put("jit_f-bbbb", b"program b")  # the recompiled program is written again
    assert cache.get("jit_f-bbbb") == b"program b"
    (tmp_path / "jit_f-cccc.evonas-xla").write_bytes(b"what plain JAX writes")
    assert cache.get("jit_f-cccc") is None
    for bad in ("../escape", "", ".hidden", "a/b"):
        assert cache.get(bad) is None
        cache.put(bad, b"x")
    assert not (tmp_path.parent / "escape.evonas-xla").exists()


def test_a_link_is_never_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.write_bytes(b"not yours")
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    os.symlink(outside, cache_dir / "jit_f-aaaa.evonas-xla")
    cache = SignedCache(str(cache_dir))
    assert cache.get("jit_f-aaaa") is None
    cache.put("jit_f-aaaa", b"program")  # replaces the link itself
    assert outside.read_bytes() == b"not yours"
    assert cache.get("jit_f-aaaa") == b"program"


def test_the_directory_is_bounded_least_recently_used_first(tmp_path):
    cache = SignedCache(str(tmp_path), max_bytes=1_000)
    for i in range(4):
        cache.put(f"jit_f-{i}", bytes(200))
        os.utime(tmp_path / f"jit_f-{i}.evonas-xla", (1000 + i, 1000 + i))
    cache.get("jit_f-0")  # used again: the newest
    cache.put("jit_f-4", bytes(300))  # past the bound: down to 80 % of it
    kept = sorted(p.name.split(".")[0] for p in tmp_path.iterdir())
    assert sum(p.stat().st_size for p in tmp_path.iterdir()) <= 800
    assert "jit_f-0" in kept and "jit_f-4" in kept and "jit_f-1" not in kept


def test_auto_is_the_default_and_off_turns_it_off(monkeypatch, tmp_path):
    assert TrainConfig().compile_cache_dir == "auto"
    assert TrainConfig(compile_cache_dir=False).compile_cache_dir is None  # YAML's `off`
    assert TrainConfig(compile_cache_dir="off").compile_cache_dir is None
    monkeypatch.setenv("EVONAS_CACHE_DIR", str(tmp_path / "mine"))
    assert resolve_cache_dir("auto") == str(tmp_path / "mine" / "xla") == default_cache_dir()
    assert resolve_cache_dir(None) is None and resolve_cache_dir("/x") == "/x"
    with pytest.raises(ValueError, match="compile_cache_dir must be 'auto', a directory or null"):
        TrainConfig(compile_cache_dir=3)


def _run(tmp_path: Path, name: str, cache: Path) -> tuple[list[dict], list[tuple]]:
    """``evonas run`` of a tiny experiment in a new process with ``EVONAS_CACHE_DIR=cache``:
    the generations' lines of ``metrics.jsonl`` and the history's rows."""
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_dict(
        train={"plan": "grouped"}, final={"retrain": {"top_k": 0}})))
    env = {**os.environ, "EVONAS_CACHE_DIR": str(cache)}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)  # as on a user's machine: nothing set
    run_dir = tmp_path / name
    proc = subprocess.run([sys.executable, "-m", "evonas.cli", "run", str(config),
                           "--run-dir", str(run_dir)], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Error reading persistent compilation cache" not in proc.stderr
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    with History(run_dir / "history.sqlite", readonly=True) as history:
        rows = [(r["id"], r["genome"], r["fitness"]) for r in history.rows()]
    return lines, rows


def test_a_second_run_compiles_nothing_and_bad_entries_are_recompiled(tmp_path):
    first, rows = _run(tmp_path, "first", tmp_path / "evonas")
    cache = tmp_path / "evonas" / "xla"
    assert sum(g["compiles"] for g in first) > 0 and (cache.stat().st_mode & 0o777) == 0o700
    entries = sorted(cache.glob("*.evonas-xla"))
    assert entries

    second, again = _run(tmp_path, "second", tmp_path / "evonas")
    assert again == rows
    assert sum(g["compiles"] for g in second) == 0  # every program came from the cache
    assert sum(g["programs_loaded"] for g in second) >= sum(g["compiles"] for g in first)

    # Corrupt half the entries and put another program's entry under each other name.
    blobs = [p.read_bytes() for p in entries]
    for i, path in enumerate(entries):
        path.write_bytes(b"\0garbage" * 20 if i % 2 else blobs[(i + 1) % len(blobs)])
    third, once_more = _run(tmp_path, "third", tmp_path / "evonas")
    assert once_more == rows  # the same numbers: nothing wrong was loaded
    assert sum(g["compiles"] for g in third) > 0  # what did not match was compiled again
