"""Reads a run's ``history.sqlite`` read-only, tolerating a run that is still being written.

Through a plain read-only connection (``evonas.store.history.connect_readonly``, which also
reads read-only media), not ``evonas.store.History``, which checks the schema and may refuse:
a missing file, a missing table, a missing column or a malformed JSON cell reads as empty; a
damaged file is one line.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sqlite3
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from evonas.store.history import check_integrity, connect_readonly
from evonas.store.layout import RunPaths
from evonas.store.row import BadRow, check_genome, loads


class LazyJSON(Mapping):
    """A JSON object decoded on first use: a report of 100,000 rows reads every row but needs
    the descriptions of a few (text that is not a JSON object reads as ``{"value": ...}``)."""

    def __init__(self, text: Any):
        self._text, self._value = text, None

    def _decoded(self) -> dict[str, Any]:
        if self._value is None:
            value = _json(self._text, {})
            self._value = value if isinstance(value, dict) else {"value": value}
        return self._value

    def __getitem__(self, key: str) -> Any:
        return self._decoded()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._decoded())

    def __len__(self) -> int:
        return len(self._decoded())

    def __repr__(self) -> str:
        return repr(self._decoded())


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """One evaluated architecture, as the report needs it."""

    id: int
    generation: int
    genome: tuple[int, ...] | None
    description: Mapping[str, Any]
    parents: tuple[int, ...]
    fitness: float
    params: float
    flops: float
    failed: bool
    reason: str | None = None
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)
    estimate: str | None = None  # how the fitness was obtained: trained, inherited, oneshot, ...
    fidelity: float = math.nan  # training steps of the architecture's own weights

    def as_row(self) -> dict[str, Any]:
        """The fields objective functions read (``evonas.objectives``), as a dict."""
        return {"id": self.id, "generation": self.generation, "genome": self.genome,
                "genome_key": self.genome,
                "params": self.params, "flops": self.flops, "metrics": self.metrics,
                "failed": self.failed or not math.isfinite(self.fitness),
                "fitness": self.fitness if math.isfinite(self.fitness) else None}

    @property
    def ok(self) -> bool:
        """Not failed and with a finite fitness (only these are plotted and ranked)."""
        return not self.failed and math.isfinite(self.fitness)


def _json(text: Any, default: Any) -> Any:
    if text is None:
        return default
    if not isinstance(text, (str, bytes)):
        return text
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return default


def first_of_each(evaluations: Sequence[Evaluation]) -> list[Evaluation]:
    """The first evaluation of each architecture (a cached re-evaluation repeats one: a front
    counts it once)."""
    seen: set[Any] = set()
    out = []
    for e in evaluations:
        key = e.genome if e.genome is not None else ("id", e.id)
        if key not in seen:
            seen.add(key)
            out.append(e)
    return out


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _evaluation(row: dict[str, Any]) -> Evaluation:
    """A stored row as an :class:`Evaluation`.

    Raises:
        BadRow: naming the row and what evonas would not have written in it (the reader
            leaves such a row out and names it).
    """
    where = f"history row {row.get('id')}"
    if not isinstance(row.get("id"), int):
        raise BadRow(f"{where}: its id is not an integer")
    genome = None if row.get("genome") is None else check_genome(
        loads(row["genome"], f"{where} genome"), where)
    parents = _json(row.get("parents"), [])
    metrics = loads(row.get("metrics") or "{}", f"{where} metrics")
    if not isinstance(parents, list):
        parents = []
    return Evaluation(
        id=int(row["id"]),
        generation=int(row.get("generation") or 0),
        genome=None if genome is None else tuple(int(g) for g in genome),
        description=LazyJSON(row.get("description")),
        parents=tuple(p for p in parents if isinstance(p, int) and not isinstance(p, bool)),
        fitness=_number(row.get("fitness")),
        params=_number(row.get("params")),
        flops=_number(row.get("flops")),
        failed=bool(row.get("failed") or 0),
        reason=row.get("reason"),
        metrics=metrics if isinstance(metrics, dict) else {},
        estimate=None if row.get("estimate") is None else str(row["estimate"]),
        fidelity=_number(row.get("fidelity")),
    )


def read_evaluations(run_dir: str | Path) -> list[Evaluation]:
    """Every evaluation in ``run_dir/history.sqlite``, ordered by id (``[]`` if none yet).

    The database is opened read-only (``mode=ro``), so a report never blocks or changes a run.
    """
    path = RunPaths(run_dir).history
    if not path.is_file():
        return []
    # A writer holds the lock only while committing a generation: wait rather than fail.
    conn = connect_readonly(path, timeout=10.0)
    try:
        check_integrity(conn, path)
        conn.row_factory = sqlite3.Row
        rows = conn.execute("SELECT * FROM evaluations ORDER BY id").fetchall()
    except sqlite3.OperationalError as err:
        if "no such table" in str(err):
            return []  # the store created the file but not yet its tables
        raise ValueError(f"can't read the history {path}: {err}") from None
    except sqlite3.DatabaseError as err:
        raise ValueError(f"can't read the history {path}: {err}; it is damaged") from None
    except ValueError:
        raise
    finally:
        conn.close()
    records, skipped = _evaluations(rows)
    if skipped:
        warnings.warn(left_out(path, skipped), stacklevel=2)
    return records


def _evaluations(rows: list[Any]) -> tuple[list[Evaluation], list[str]]:
    """The rows as evaluations, and why each row left out was (one a store would not have
    written: edited by hand, or from someone else)."""
    records, skipped = [], []
    for row in rows:
        try:
            records.append(_evaluation(dict(row)))
        except (BadRow, TypeError, ValueError, OverflowError) as err:
            skipped.append(str(err) if isinstance(err, BadRow)
                           else f"history row {dict(row).get('id')}: {err}")
    return records, skipped


def left_out(path: Path, skipped: list[str]) -> str:
    """One line naming the rows of ``path`` a reader left out (the first three reasons)."""
    more = f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
    return (f"{path}: {len(skipped)} row{'s' if len(skipped) != 1 else ''} evonas would not "
            f"have written left out ({'; '.join(skipped[:3])}{more})")


def read_beliefs(run_dir: str | Path) -> tuple[int, dict[str, dict[str, float]]] | None:
    """``(generation, {gene: {value: probability}})``: the newest distribution a
    distribution-based strategy recorded (the ``beliefs`` of ``generations``), or None.

    Read-only; a history from before beliefs were recorded, or a strategy without them, gives
    None. The values come from a file anyone may have written: they are checked to be a mapping
    of mappings of numbers, and escaped where shown.
    """
    path = RunPaths(run_dir).history
    if not path.is_file():
        return None
    conn = connect_readonly(path, timeout=10.0)
    try:
        row = conn.execute("SELECT generation, beliefs FROM generations WHERE beliefs IS NOT "
                           "NULL ORDER BY generation DESC LIMIT 1").fetchone()
    except sqlite3.DatabaseError:
        return None  # no such column (an older history) or table: nothing believed
    finally:
        conn.close()
    if row is None:
        return None
    try:
        beliefs = json.loads(row[1])
    except ValueError:
        return None
    if not isinstance(beliefs, dict) or not all(
            isinstance(v, dict) and all(isinstance(p, (int, float)) for p in v.values())
            for v in beliefs.values()):
        return None
    return int(row[0]), beliefs


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """What one read transaction saw of a history: consistent, whole generations only.

    Attributes:
        evaluations: the rows with ``id >= since``, ordered by id.
        generations: every committed generation's ``generation``, ``evaluations``,
            ``wall_seconds``, ``finished_at`` and ``diagnostics`` (what the strategy reported
            of itself: ``{name: number or None}``, or None), oldest first.
        total: the number of rows in the history.
        before_key: the ``genome_key`` of row ``since - 1`` (None: no such row), to tell a
            reader that already has that row whether it is still the same.
        last_key: the ``genome_key`` of the last evaluation read (None: none was).
        skipped: why each row left out was (rows evonas would not have written).
    """

    evaluations: list[Evaluation]
    generations: list[dict[str, Any]]
    total: int
    before_key: str | None = None
    last_key: str | None = None
    skipped: list[str] = dataclasses.field(default_factory=list)


_GENERATION_FIELDS = ("generation", "evaluations", "wall_seconds", "finished_at")


def _generation(stored: dict[str, Any]) -> dict[str, Any]:
    """A generation's summary as a reader shows it: its counts and times, and its diagnostics
    when they are a mapping of names to numbers (anything else, from a file anyone may have
    written, is left out)."""
    out = {k: stored.get(k) for k in _GENERATION_FIELDS}
    out["diagnostics"] = None
    try:
        noted = json.loads(stored.get("diagnostics") or "null")
    except (ValueError, RecursionError):
        return out
    if isinstance(noted, dict) and all(
            isinstance(k, str) and (v is None or (isinstance(v, (int, float))
                                                  and not isinstance(v, bool)))
            for k, v in noted.items()):
        out["diagnostics"] = noted
    return out


def read_snapshot(run_dir: str | Path, since: int = 0, *, check: bool = True,
                  timeout: float = 2.0) -> Snapshot:
    """The rows from id ``since`` on, the generations and the row count, read in ONE read
    transaction: they agree with each other even while a run commits generations.

    The connection is read-only (``mode=ro``, see ``connect_readonly``): in the history's WAL
    mode a reader neither waits for the writer nor makes it wait; the writer only ever commits
    whole generations, so a snapshot never holds part of one.

    Args:
        run_dir: the run directory.
        since: the first id wanted (``0``: every row); a live view reads only what is new.
        check: run the integrity check first (a live view does it on its first read only: it
            reads the whole file).
        timeout: seconds to wait for a lock (only a history outside WAL mode takes one).

    Raises:
        ValueError: the history is damaged or can't be read (one line).
    """
    path = RunPaths(run_dir).history
    if not path.is_file():
        return Snapshot([], [], 0)
    conn = connect_readonly(path, timeout=timeout)
    try:
        if check:
            check_integrity(conn, path)
        conn.row_factory = sqlite3.Row
        conn.execute("BEGIN")  # deferred: the snapshot starts at the first read below
        try:
            rows = conn.execute("SELECT * FROM evaluations WHERE id >= ? ORDER BY id",
                                (int(since),)).fetchall()
            total = conn.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0]
            before = conn.execute("SELECT genome_key FROM evaluations WHERE id = ?",
                                  (int(since) - 1,)).fetchone()
            generations = [_generation(dict(g)) for g in conn.execute(
                "SELECT * FROM generations ORDER BY generation").fetchall()]
        finally:
            conn.execute("COMMIT")
    except sqlite3.OperationalError as err:
        if "no such table" in str(err):
            return Snapshot([], [], 0)  # the store created the file but not yet its tables
        raise ValueError(f"can't read the history {path}: {err}") from None
    except sqlite3.DatabaseError as err:
        raise ValueError(f"can't read the history {path}: {err}; it is damaged") from None
    finally:
        conn.close()
    records, skipped = _evaluations(rows)
    kept = {e.id for e in records}
    keys = [row["genome_key"] for row in rows if row["id"] in kept]
    last = None if not keys or keys[-1] is None else str(keys[-1])
    return Snapshot(records, generations, int(total),
                    None if before is None else str(before[0]), last, skipped)
