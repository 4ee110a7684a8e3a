"""Tests of evonas.store: run directory, history, checkpoints, and resume after SIGKILL."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

from evonas.store import (
    Checkpoints,
    History,
    NoCheckpointError,
    RunDir,
    RunDirError,
    config_fingerprint,
    genome_key,
)
from evonas.store.history import SCHEMA_VERSION

ROOT = Path(__file__).resolve().parents[2]
CONFIG = {
    "seed": 0,
    "strategy": {"name": "regularized_evolution", "population": 8, "tournament": 3},
    "train": {"lr": 0.001, "steps": 50, "schedule": None, "plan": "auto"},
    "genes": ["width", "depth"],
    "flag": True,
}


def _tree_bytes(path: Path) -> dict[str, bytes]:
    files = sorted(p for p in path.rglob("*") if p.is_file())
    return {str(p.relative_to(path)): p.read_bytes() for p in files}


def _row(i: int, generation: int = 0, **fields) -> dict:
    genome = [i % 3, i % 5, 1]
    row = {
        "id": i,
        "genome": genome,
        "genome_key": genome_key(genome),
        "description": {"layers": [16, 32], "act": "relu"},
        "parents": [max(i - 1, 0)],
        "fitness": 0.5 + 0.01 * i,
        "metrics": {"val_acc": 0.5 + 0.01 * i, "val_loss": np.float32(1.5), "curve": np.ones(2)},
        "val_acc": 0.5 + 0.01 * i,
        "val_loss": 1.5,
        "params": np.int64(1000 + i),
        "flops": jnp.float32(2e6),
        "executed_flops": 4_000_000,
        "train_seconds": 0.25,
    }
    row.update(fields)
    return row


def _summary(**fields) -> dict:
    return {"best": 0.9, "median": 0.6, "worst": 0.1, "wall_seconds": 3.0, **fields}


# -- run directory --------------------------------------------------------------------------------


def test_create_writes_layout_and_config_round_trips(tmp_path):
    path = tmp_path / "run"
    fingerprint = config_fingerprint(CONFIG)
    with RunDir.create(path, CONFIG, fingerprint) as run:
        assert sorted(p.name for p in path.iterdir()) == [
            ".evonas.lock", "best", "checkpoints", "config.yaml", "report", "run.json"
        ]
        assert run.config == CONFIG
        assert yaml.safe_load((path / "config.yaml").read_text()) == CONFIG
        assert json.loads((path / "run.json").read_text())["fingerprint"] == fingerprint
        run.history.count()  # opening the history creates the file
    assert (path / "history.sqlite").is_file()
    # Reopening the same experiment (resume) is allowed and changes nothing.
    before = _tree_bytes(path)
    RunDir.create(path, CONFIG, fingerprint).close()
    assert _tree_bytes(path) == before


def test_fingerprint_ignores_key_order_but_not_values():
    shuffled = dict(reversed(list(CONFIG.items())))
    assert config_fingerprint(shuffled) == config_fingerprint(CONFIG)
    assert config_fingerprint({**CONFIG, "seed": 1}) != config_fingerprint(CONFIG)


def test_other_experiment_is_refused_and_left_intact(tmp_path):
    path = tmp_path / "run"
    RunDir.create(path, CONFIG, config_fingerprint(CONFIG)).close()
    before = _tree_bytes(path)
    other = {**CONFIG, "seed": 1}
    with pytest.raises(RunDirError, match="holds another experiment.*--run-dir") as error:
        RunDir.create(path, other, config_fingerprint(other))
    assert str(path) in str(error.value) and "\n" not in str(error.value)
    assert _tree_bytes(path) == before


def test_non_run_directory_is_refused_and_left_intact(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(RunDirError, match="not empty and not an evonas run directory"):
        RunDir.create(tmp_path, CONFIG, "abc")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    with pytest.raises(RunDirError, match="not an evonas run directory"):
        RunDir(tmp_path)
    with pytest.raises(RunDirError, match="no run directory at"):
        RunDir(tmp_path / "missing")


def test_create_killed_before_run_json_can_be_redone(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "config.yaml").write_text("half: [")
    with RunDir.create(tmp_path, CONFIG, "fp") as run:
        assert run.config == CONFIG and run.fingerprint == "fp"


def test_unwritable_directory_is_a_clear_error(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        try:
            (locked / "probe").write_text("x")
            root_ignores_chmod = True
        except PermissionError:
            root_ignores_chmod = False
        # Root writes through chmod; a path under a regular file fails for everyone.
        if root_ignores_chmod:
            (locked / "probe").unlink()
            (tmp_path / "file").write_text("x")
            target = tmp_path / "file" / "run"
        else:
            target = locked / "run"
        with pytest.raises(RunDirError, match="can't write the run directory.*writable --run-dir"):
            RunDir.create(target, CONFIG, "fp")
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


# -- history --------------------------------------------------------------------------------------


def test_history_append_read_lookup(tmp_path):
    with History(tmp_path / "h.sqlite") as history:
        assert history.last_complete_generation() is None and history.count() == 0
        history.append_generation(0, [_row(0), _row(1)], _summary())
        failed = _row(2, fitness=0.7, failed=True, reason="nan loss", cached=False)
        cached = _row(3, genome=_row(0)["genome"], genome_key=_row(0)["genome_key"], cached=True)
        history.append_generation(1, [failed, cached], _summary(best=None))
        assert history.last_complete_generation() == 1 and history.count() == 4
        rows = history.rows()
        assert [r["id"] for r in rows] == [0, 1, 2, 3]
        assert [r["generation"] for r in rows] == [0, 0, 1, 1]
        first = rows[0]
        assert first["genome"] == [0, 0, 1]
        assert first["description"] == {"layers": [16, 32], "act": "relu"}
        assert first["metrics"] == {"val_acc": 0.5, "val_loss": 1.5, "curve": [1.0, 1.0]}
        assert (first["params"], first["flops"], first["executed_flops"]) == (1000, 2e6, 4e6)
        assert first["failed"] is False and first["cached"] is False
        assert rows[2]["fitness"] is None and rows[2]["reason"] == "nan loss"
        assert [r["id"] for r in history.rows(generation=1)] == [2, 3]
        # The de-duplication cache returns the trained original, not the cached copy.
        assert history.lookup(_row(0)["genome_key"])["id"] == 0
        assert history.lookup("0" * 32) is None
        summaries = history.generations()
        assert [(s["generation"], s["evaluations"], s["best"]) for s in summaries] == [
            (0, 2, 0.9), (1, 2, None)
        ]


def test_genome_key_is_exact():
    assert genome_key([1, 2, 3]) == genome_key(np.array([1, 2, 3], np.int64))
    assert genome_key([1, 2, 3]) != genome_key([1, 2, 4])
    assert genome_key([1, 2]) != genome_key([1, 2, 0])


def test_append_is_all_or_nothing(tmp_path):
    with History(tmp_path / "h.sqlite") as history:
        history.append_generation(0, [_row(0)], _summary())
        before = history.rows()
        # The second row fails to convert after the first was inserted: both are rolled back.
        bad = _row(2, generation=1, metrics={"model": object()})
        with pytest.raises(TypeError, match="history row 2 metrics holds a object"):
            history.append_generation(1, [_row(1), bad], _summary())
        assert history.rows() == before and history.last_complete_generation() == 0
        with pytest.raises(ValueError, match="row id 5 breaks the evaluation order: expected 1"):
            history.append_generation(1, [_row(5)], _summary())
        with pytest.raises(ValueError, match="missing \\['worst'\\]"):
            history.append_generation(1, [_row(1)], {"best": 1, "median": 1, "wall_seconds": 1})
        with pytest.raises(ValueError, match="unknown history field"):
            history.append_generation(1, [_row(1, fitnes=1.0)], _summary())
        with pytest.raises(ValueError, match="generation 0 can't be appended after generation 0"):
            history.append_generation(0, [_row(1)], _summary())
        assert history.rows() == before
        history.append_generation(1, [_row(1)], _summary())  # and the history still works
        assert history.count() == 2


def test_reader_sees_whole_generations_while_a_writer_is_mid_transaction(tmp_path):
    path = tmp_path / "h.sqlite"
    with History(path) as history:
        history.append_generation(0, [_row(0), _row(1)], _summary())
    inside, release, errors = threading.Event(), threading.Event(), []

    class Slow:
        """A value whose conversion blocks: holds the writer inside its transaction."""

        def __array__(self, dtype=None, copy=None):
            inside.set()
            release.wait(10)
            return np.asarray(0.25)

    def write():
        try:
            with History(path) as writer:
                rows = [_row(2), _row(3, train_seconds=Slow())]
                writer.append_generation(1, rows, _summary())
        except Exception as e:  # reported to the main thread below
            errors.append(e)

    thread = threading.Thread(target=write)
    thread.start()
    try:
        assert inside.wait(10)
        with History(path, readonly=True) as reader:
            assert reader.count() == 2 and reader.last_complete_generation() == 0
            release.set()
            thread.join(10)
            assert not errors
            assert reader.count() == 4 and reader.last_complete_generation() == 1
    finally:
        release.set()
        thread.join(10)


def _downgrade(path: Path, version: int) -> None:
    """Rewrites a current history as schema ``version`` wrote it: without the later columns."""
    from evonas.store import history as schema

    dropped = list(schema._ADDED_IN_2) if version < 2 else []
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=DELETE")
    for column in dropped:
        db.execute(f"ALTER TABLE evaluations DROP COLUMN {column}")
    for column, since in schema._SUMMARY_ADDED.items():
        if version < since:
            db.execute(f"ALTER TABLE generations DROP COLUMN {column}")
    db.execute(f"PRAGMA user_version={version}")
    db.commit()
    db.close()


@pytest.mark.parametrize("version", [1, 2, 3])
def test_an_older_history_is_read_as_it_is_and_migrated_when_written(tmp_path, version):
    path = tmp_path / "h.sqlite"
    with History(path) as history:
        history.append_generation(0, [_row(0, fidelity=20, estimate="trained"), _row(1)],
                                  _summary(beliefs={"op_0": {"0": 0.25, "1": 0.75}},
                                           diagnostics={"parameter_free": 0.5}))
        written = history.rows()
    _downgrade(path, version)
    before = path.read_bytes()

    # A reader (a report on someone's old run) sees the rows as they were and changes nothing.
    with History(path, readonly=True) as old:
        rows = old.rows()
        (summary,) = old.generations()
    assert path.read_bytes() == before
    gone = ("fidelity", "estimate") if version < 2 else ()
    for row, original in zip(rows, written, strict=True):
        assert {k: v for k, v in row.items() if k not in gone} == \
            {k: v for k, v in original.items() if k not in gone}
        assert all(row[k] is None for k in gone)
    assert summary["best"] == 0.9 and summary["diagnostics"] is None
    assert summary["beliefs"] == (None if version < 3 else {"op_0": {"0": 0.25, "1": 0.75}})

    # A writer (resume) migrates it to the current schema and appends full rows after the old.
    with History(path) as history:
        history.append_generation(1, [_row(2, fidelity=5, estimate="halving")],
                                  _summary(beliefs={"op_0": {"0": 0.5, "1": 0.5}},
                                           diagnostics={"parameter_free": 0.25}))
        rows = history.rows()
        summaries = history.generations()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.close()
    assert [r["id"] for r in rows] == [0, 1, 2]
    assert (rows[2]["fidelity"], rows[2]["estimate"]) == (5, "halving")
    assert [s["beliefs"] for s in summaries][1:] == [{"op_0": {"0": 0.5, "1": 0.5}}]
    assert [s["diagnostics"] for s in summaries] == [None, {"parameter_free": 0.25}]


def test_a_generation_with_nan_diagnostics_is_kept_with_nulls(tmp_path):
    """A diagnostic or belief without a value (NaN, infinity) is stored as null: the
    generation's rows are committed all the same."""
    with History(tmp_path / "h.sqlite") as history:
        history.append_generation(0, [_row(0)], _summary(
            beliefs={"op_0": {"0": float("nan"), "1": 1.0}},
            diagnostics={"parameter_free": float("nan"), "train_loss": float("inf")}))
        (summary,) = history.generations()
        assert len(history.rows()) == 1
    assert summary["diagnostics"] == {"parameter_free": None, "train_loss": None}
    assert summary["beliefs"] == {"op_0": {"0": None, "1": 1.0}}


def test_a_history_from_a_newer_evonas_is_refused_unchanged(tmp_path):
    path = tmp_path / "h.sqlite"
    with History(path) as history:
        history.append_generation(0, [_row(0)], _summary())
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    before = path.read_bytes()
    with pytest.raises(ValueError, match=f"schema version {SCHEMA_VERSION + 1}.*versions 1 to"):
        History(path)
    assert path.read_bytes() == before


def test_truncate_after(tmp_path):
    with History(tmp_path / "h.sqlite") as history:
        for g in range(3):
            history.append_generation(g, [_row(2 * g), _row(2 * g + 1)], _summary())
        assert history.truncate_after(0) == 4
        assert history.last_complete_generation() == 0 and history.count() == 2
        assert [s["generation"] for s in history.generations()] == [0]
        history.append_generation(1, [_row(2)], _summary())
        assert history.truncate_after(-1) == 3 and history.last_complete_generation() is None


# -- checkpoints ----------------------------------------------------------------------------------


def _state(seed: int = 0) -> dict:
    key = jax.random.key(seed)
    return {
        "population": jnp.arange(12, dtype=jnp.int32).reshape(4, 3) + seed,
        "fitness": jnp.linspace(0.0, 1.0, 4, dtype=jnp.float32) * (seed + 1),
        "key": jax.random.fold_in(key, 3),
        "keys": jax.random.split(key, 2),
        "generation": jnp.int32(seed),
    }


def _assert_same_state(got: dict, want: dict) -> None:
    for name in ("population", "fitness", "generation"):
        assert got[name].dtype == want[name].dtype
        np.testing.assert_array_equal(got[name], want[name])
    for name in ("key", "keys"):
        assert got[name].dtype == want[name].dtype  # a typed key again, same implementation
        np.testing.assert_array_equal(
            jax.random.key_data(got[name]), jax.random.key_data(want[name])
        )
    np.testing.assert_array_equal(
        jax.random.uniform(got["key"], (3,)), jax.random.uniform(want["key"], (3,))
    )


def test_checkpoint_round_trip_with_prng_keys(tmp_path):
    checkpoints = Checkpoints(tmp_path / "ck")
    checkpoints.save(4, _state(4), {"history_rows": 10, "keys": ["ab", "cd"]})
    concrete = checkpoints.latest_valid(_state(0))
    abstract = checkpoints.latest_valid(jax.eval_shape(_state))
    for restored in (concrete, abstract):
        assert restored.generation == 4
        assert restored.extra == {"history_rows": 10, "keys": ["ab", "cd"]}
        _assert_same_state(restored.state, _state(4))
    checkpoints.close()


@flax.struct.dataclass
class _StrategyState:
    population: jax.Array
    key: jax.Array
    size: int = flax.struct.field(pytree_node=False, default=4)


def test_checkpoint_restores_a_dataclass_state(tmp_path):
    state = _StrategyState(jnp.full((4, 3), 2, jnp.int32), jax.random.key(5))
    checkpoints = Checkpoints(tmp_path / "ck")
    checkpoints.save(0, state)
    restored = checkpoints.latest_valid(jax.eval_shape(lambda: state)).state
    assert isinstance(restored, _StrategyState) and restored.size == 4
    np.testing.assert_array_equal(restored.population, state.population)
    np.testing.assert_array_equal(jax.random.key_data(restored.key), jax.random.key_data(state.key))
    checkpoints.close()


def test_checkpoints_keep_the_last_n(tmp_path):
    checkpoints = Checkpoints(tmp_path / "ck", keep=2)
    for g in range(5):
        checkpoints.save(g, _state(g))
    assert checkpoints.generations() == [3, 4]
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["3", "4"]
    checkpoints.close()


def _garbage_state(step: Path) -> None:
    for f in (step / "state").rglob("*"):
        if f.is_file():
            f.write_bytes(b"garbage")


def _wrong_checksum(step: Path) -> None:
    meta = json.loads((step / "meta" / "metadata").read_text())
    (step / "meta" / "metadata").write_text(json.dumps({**meta, "checksum": "0" * 64}))


def _truncate_metadata(step: Path) -> None:
    path = step / "state" / "_METADATA"
    path.write_bytes(path.read_bytes()[:20])


def _remove_commit_marker(step: Path) -> None:
    (step / "commit_success.txt").unlink()


@pytest.mark.parametrize(
    "damage", [_garbage_state, _wrong_checksum, _truncate_metadata, _remove_commit_marker]
)
def test_corrupt_newest_falls_back_with_a_warning(tmp_path, damage):
    directory = tmp_path / "ck"
    checkpoints = Checkpoints(directory)
    for g in range(3):
        checkpoints.save(g, _state(g), {"g": g})
    damage(directory / "2")
    with pytest.warns(UserWarning, match=f"checkpoint {directory / '2'} .*falling back"):
        restored = checkpoints.latest_valid(_state(0))
    assert restored.generation == 1 and restored.extra == {"g": 1}
    _assert_same_state(restored.state, _state(1))
    # Resuming redoes generation 2: the damaged one is moved aside, not deleted.
    with pytest.warns(UserWarning, match="moved it aside"):
        checkpoints.save(2, _state(2), {"g": 2})
    assert checkpoints.latest_valid(_state(0)).extra == {"g": 2}
    assert len(list(directory.glob("superseded-2-*"))) == 1
    checkpoints.close()


def test_no_checkpoint_is_a_clear_error(tmp_path):
    checkpoints = Checkpoints(tmp_path / "ck")
    with pytest.raises(NoCheckpointError, match=f"no checkpoint in {tmp_path / 'ck'}"):
        checkpoints.latest_valid(_state(0))
    checkpoints.save(0, _state(0))
    _garbage_state(tmp_path / "ck" / "0")
    with pytest.warns(UserWarning), pytest.raises(NoCheckpointError, match="no readable"):
        checkpoints.latest_valid(_state(0))
    checkpoints.close()


def test_checkpoint_from_another_configuration_is_refused(tmp_path):
    checkpoints = Checkpoints(tmp_path / "ck")
    checkpoints.save(0, _state(0))
    bigger = {**_state(0), "population": jnp.zeros((8, 3), jnp.int32)}
    with pytest.raises(ValueError, match="where the template has int32\\[8, 3\\]"):
        checkpoints.restore(0, bigger)
    checkpoints.close()


# -- resume ---------------------------------------------------------------------------------------


def _fake_search(path: str | Path, generations: int, population: int = 6) -> None:
    """A deterministic search through RunDir; resumes if it can; prints each generation done."""
    config = {"population": population, "seed": 0}
    run = RunDir.create(path, config, config_fingerprint(config))
    template = {"key": jax.random.key(0), "best": jnp.float32(np.inf), "next_id": jnp.int32(0)}
    checkpoint = run.resume(template, missing_ok=True)
    state, start = template, 0
    if checkpoint is not None:
        state, start = checkpoint.state, checkpoint.generation + 1
    for generation in range(start, generations):
        key, sub = jax.random.split(state["key"])
        rng = np.random.default_rng(np.asarray(jax.random.key_data(sub)))
        genomes = rng.integers(0, 4, (population, 5))
        fitness = rng.random(population)
        first = int(state["next_id"])
        rows = [
            {
                "id": first + i,
                "genome": genomes[i],
                "genome_key": genome_key(genomes[i]),
                "parents": [int(p) for p in rng.integers(0, max(first, 1), 2)],
                "fitness": fitness[i],
                "metrics": {"val_acc": 1 - fitness[i]},
                "train_seconds": 0.0,
            }
            for i in range(population)
        ]
        summary = {"best": fitness.min(), "median": float(np.median(fitness)),
                   "worst": fitness.max(), "wall_seconds": 0.0}
        state = {"key": key, "best": jnp.minimum(state["best"], fitness.min()).astype(jnp.float32),
                 "next_id": jnp.int32(first + population)}
        run.commit_generation(generation, rows, summary, state)
        print(generation, flush=True)
    run.close()


def _assert_whole_generations(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        counts = dict(db.execute("SELECT generation, COUNT(*) FROM evaluations GROUP BY 1"))
        summaries = dict(db.execute("SELECT generation, evaluations FROM generations"))
        assert counts == summaries
        ids = [r[0] for r in db.execute("SELECT id FROM evaluations ORDER BY id")]
        assert ids == list(range(len(ids)))
        return max(summaries, default=-1)
    finally:
        db.close()


def test_sigkill_at_a_random_moment_then_resume_gives_the_same_rows(tmp_path):
    killed = tmp_path / "killed"
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    code = ("import sys; from tests.store.test_store import _fake_search; "
            "_fake_search(sys.argv[1], 10**6)")
    child = subprocess.Popen(
        [sys.executable, "-c", code, str(killed)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        for line in child.stdout:
            if int(line) >= 1:
                break
        # A random moment a few generations in; most of a generation is spent inside a write.
        threading.Event().wait(random.Random(0).uniform(0.0, 0.4))
        child.send_signal(signal.SIGKILL)
        assert child.wait(10) == -signal.SIGKILL  # killed mid-run, not exited on its own
    finally:
        child.kill()
        child.wait(10)
        child.stdout.close()
    last = _assert_whole_generations(killed / "history.sqlite")
    assert last >= 1
    total = last + 3
    _fake_search(killed, total)
    _fake_search(tmp_path / "whole", total)
    with History(killed / "history.sqlite") as resumed:
        with History(tmp_path / "whole" / "history.sqlite") as whole:
            assert resumed.count() == 6 * total
            assert resumed.rows() == whole.rows()


def test_resume_drops_generations_without_a_checkpoint(tmp_path):
    _fake_search(tmp_path, 2)
    with RunDir(tmp_path) as run:
        # As if killed after the history commit of generation 2, before its checkpoint.
        run.history.append_generation(2, [_row(12)], _summary())
        template = {"key": jax.random.key(0), "best": jnp.float32(0), "next_id": jnp.int32(0)}
        checkpoint = run.resume(template)
        assert checkpoint.generation == 1 and int(checkpoint.state["next_id"]) == 12
        assert run.history.last_complete_generation() == 1 and run.history.count() == 12


def test_resume_refuses_a_history_shorter_than_its_checkpoint(tmp_path):
    _fake_search(tmp_path, 2)
    with RunDir(tmp_path) as run:
        run.history.truncate_after(0)
        before = run.history.rows()
        template = {"key": jax.random.key(0), "best": jnp.float32(0), "next_id": jnp.int32(0)}
        with pytest.raises(RunDirError, match="has 6 rows up to generation 1 but its checkpoint"):
            run.resume(template)
        assert run.history.rows() == before


def test_resume_without_checkpoint(tmp_path):
    run = RunDir.create(tmp_path, CONFIG, "fp")
    with pytest.raises(NoCheckpointError, match="no checkpoint in .*checkpoints"):
        run.resume({"key": jax.random.key(0)})
    run.history.append_generation(0, [_row(0)], _summary())  # died before its first checkpoint
    assert run.resume({"key": jax.random.key(0)}, missing_ok=True) is None
    assert run.history.count() == 0
    run.close()
