"""The history of a run: every evaluated architecture, in sqlite, one transaction per generation.

Two tables:

- ``evaluations``: one row per evaluated architecture, ``id`` its 0-based evaluation order.
  ``genome``, ``description``, ``parents`` and ``metrics`` hold JSON; ``fitness`` is NULL for a
  failed evaluation; ``cached`` marks a de-duplication hit that was not trained again.
- ``generations``: one row per finished generation (evaluations, best / median / worst fitness,
  wall seconds, finish time).

A generation is written with all its rows and its summary in ONE transaction, so the file only
ever holds whole generations, whenever the writer dies. The database is in WAL mode: a reader (the
report on a live run) sees the last committed generation while the writer appends the next.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
import sqlite3
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evonas.store import row as row_schema

SCHEMA_VERSION = 4
# Version 2 added ``fidelity`` and ``estimate`` to evaluations, version 3 ``beliefs`` to
# generations, version 4 ``diagnostics`` (what a strategy reports of itself); an older history
# is migrated when opened for writing (the new columns are NULL for its rows) and read as it is
# otherwise.
_ADDED_IN_2 = row_schema.added_in(2)
_SUMMARY_ADDED = {"beliefs": 3, "diagnostics": 4}  # generations' JSON columns: the version

# The columns of ``evaluations`` are Row's fields; ``generation`` comes from append_generation.
_COLUMNS = row_schema.SCHEMA
COLUMNS: tuple[str, ...] = row_schema.COLUMNS
ROW_FIELDS: tuple[str, ...] = COLUMNS  # a row's own generation is the one it is appended with
_REQUIRED_FIELDS = row_schema.REQUIRED
SUMMARY_FIELDS = ("best", "median", "worst", "wall_seconds", "finished_at", "beliefs",
                  "diagnostics")
_JSON_SUMMARY = tuple(_SUMMARY_ADDED)
_SUMMARY_COLUMNS = ("generation", "evaluations", *SUMMARY_FIELDS)

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS evaluations ({", ".join(f"{n} {t}" for n, t in _COLUMNS)});
CREATE INDEX IF NOT EXISTS evaluations_genome_key ON evaluations (genome_key);
CREATE INDEX IF NOT EXISTS evaluations_generation ON evaluations (generation);
CREATE TABLE IF NOT EXISTS generations (
    generation INTEGER PRIMARY KEY, evaluations INTEGER NOT NULL, best REAL, median REAL,
    worst REAL, wall_seconds REAL, finished_at TEXT NOT NULL, beliefs TEXT,
    diagnostics TEXT
);
"""


def genome_key(genome: Sequence[int] | np.ndarray) -> str:
    """A hex key that is equal for equal genomes and differs (w.p. ``1 - 2**-128``) otherwise.

    Host-side, exact on the gene values (as little-endian int32) and the genome length, for
    de-duplication lookups in the history.
    """
    genes = np.asarray(genome, dtype="<i4").ravel()
    return hashlib.blake2b(genes.tobytes(), digest_size=16).hexdigest()


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def check_integrity(db: sqlite3.Connection, path: str | os.PathLike) -> None:
    """``PRAGMA quick_check``: finds a damaged page when the file is opened, not after a
    generation was computed on top of it.

    Raises:
        ValueError: naming the file and the first problems; nothing is changed.
    """
    try:
        problems = [r[0] for r in db.execute("PRAGMA quick_check(3)").fetchall()]
    except sqlite3.OperationalError as e:  # an I/O error, a lock: the file may well be whole
        raise ValueError(
            f"can't read the history {path} ({_first_line(e)}: a full disk, a file-size limit, "
            "missing permissions, or a damaged file); evonas changes nothing in it") from None
    except sqlite3.DatabaseError as e:
        problems = [_first_line(e)]
    if problems != ["ok"]:
        raise ValueError(
            f"the history {path} is damaged ({'; '.join(map(str, problems))[:200]}); evonas "
            "changes nothing in it: restore it from a copy, or start a new run in another "
            "directory"
        )


# What evonas creates in a history (and SQLite itself, for its own bookkeeping): anything else,
# a trigger above all, would run code planted in someone else's run directory.
_OWN_OBJECTS = {("table", "evaluations"), ("table", "generations"),
                ("index", "evaluations_genome_key"), ("index", "evaluations_generation")}


def harden(db: sqlite3.Connection) -> sqlite3.Connection:
    """Functions with side effects are never run from the schema of a file evonas did not
    write (SQLite's ``trusted_schema``, off)."""
    db.execute("PRAGMA trusted_schema=OFF")
    return db


def check_schema_objects(db: sqlite3.Connection, path: str | os.PathLike) -> None:
    """The history holds only the tables and indexes evonas creates.

    Raises:
        ValueError: a trigger, a view or another table or index, named, in one line (the file
            is left as it is).
    """
    try:
        found = db.execute("SELECT type, name FROM sqlite_master").fetchall()
    except sqlite3.DatabaseError as e:
        raise ValueError(f"can't read the history {path}: {_first_line(e)}") from None
    foreign = [(kind, name) for kind, name in found
               if (kind, name) not in _OWN_OBJECTS and not str(name).startswith("sqlite_")]
    if foreign:
        kind, name = foreign[0]
        raise ValueError(f"the history {path} holds a {kind} {name!r} that evonas did not "
                         f"create ({len(foreign)} such object{'s' if len(foreign) > 1 else ''}); "
                         "evonas runs nothing from a run directory: it changes nothing in the "
                         "file, restore the history or start a new run")


def connect_readonly(path: str | os.PathLike, timeout: float = 30.0) -> sqlite3.Connection:
    """A read-only connection to a history, also on a read-only medium.

    ``mode=ro`` first (it sees what a live writer has committed to the write-ahead log); where
    that can't open the file, because the medium is read-only and sqlite can't create the
    WAL's shared-memory file, ``immutable=1``, which reads the main file as it is (a warning
    says so when an unmerged log exists: a finished run merges it when it closes).

    Raises:
        ValueError: the file can't be opened as a database (one line).
    """
    path = Path(path)
    base = path.resolve().as_uri()
    try:
        db = harden(sqlite3.connect(f"{base}?mode=ro", uri=True, isolation_level=None,
                                    timeout=timeout))
        db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        return db
    except sqlite3.OperationalError:
        pass
    except sqlite3.DatabaseError as e:
        raise ValueError(f"the history {path} is not a readable database: {_first_line(e)}"
                         ) from None
    wal = path.with_name(path.name + "-wal")
    if wal.is_file() and wal.stat().st_size > 0:
        warnings.warn(f"{path} is on a read-only medium with an unmerged write-ahead log "
                      f"({wal.name}): the generations it holds are not shown", stacklevel=2)
    try:
        db = harden(sqlite3.connect(f"{base}?mode=ro&immutable=1", uri=True,
                                    isolation_level=None, timeout=timeout))
        db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        return db
    except sqlite3.DatabaseError as e:
        raise ValueError(f"can't open the history {path}: {_first_line(e)}; is it an evonas "
                         "history?") from None


class History:
    """The ``evaluations`` and ``generations`` tables of one run, in one sqlite file.

    Args:
        path: the sqlite file; created (with its tables) unless ``readonly``.
        readonly: open an existing file for reading only (a report on a live run).

    Raises:
        ValueError: the file is missing (``readonly``), not a database, from another schema
            version, or can't be opened.
    """

    def __init__(self, path: str | os.PathLike, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        if readonly and not self.path.is_file():
            raise ValueError(f"no history at {self.path}; is it a run directory that has started?")
        try:
            if readonly:
                self._db = connect_readonly(self.path)
            else:
                # isolation_level=None: no implicit transactions; append_generation opens its own.
                self._db = harden(sqlite3.connect(self.path, isolation_level=None, timeout=30.0))
            self._check_integrity()
            check_schema_objects(self._db, self.path)
            self._check_schema()
            if not readonly:  # only a history evonas can read is switched to its modes
                self._db.execute("PRAGMA journal_mode=WAL")
                # FULL: a committed generation survives power loss, not only a killed process.
                self._db.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error as e:
            raise ValueError(
                f"can't open the history {self.path}: {_first_line(e)}; is it an evonas history "
                "on a writable disk?"
            ) from None

    def _check_integrity(self) -> None:
        check_integrity(self._db, self.path)

    def _check_schema(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version == 0 and not self.readonly:
            if self._db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0]:
                raise ValueError(f"the history {self.path} is not an evonas history (tables "
                                 "without a schema version); evonas changes nothing in it")
            self._db.executescript(
                f"BEGIN; {_SCHEMA} PRAGMA user_version={SCHEMA_VERSION}; COMMIT;"
            )
            version = SCHEMA_VERSION
        elif version == 0:
            raise ValueError(
                f"the history {self.path} holds no tables: its run committed no generation yet, "
                f"or the file's write-ahead log ({self.path.name}-wal), which held them, was lost")
        elif version not in range(1, SCHEMA_VERSION + 1):
            raise ValueError(
                f"the history {self.path} has schema version {version}; this evonas reads "
                f"versions 1 to {SCHEMA_VERSION}: use the evonas version that wrote it"
            )
        self._columns = tuple(c for c in COLUMNS if version >= 2 or c not in _ADDED_IN_2)
        self._summary_columns = tuple(c for c in _SUMMARY_COLUMNS
                                      if version >= _SUMMARY_ADDED.get(c, 0))
        self._check_columns()
        if version < SCHEMA_VERSION and not self.readonly:  # migrated: the new columns NULL
            added = [f"ALTER TABLE evaluations ADD COLUMN {n} {t}"
                     for n, t in _COLUMNS if n in _ADDED_IN_2 and version < 2]
            added += [f"ALTER TABLE generations ADD COLUMN {n} TEXT"
                      for n, since in _SUMMARY_ADDED.items() if version < since]
            self._db.executescript(f"BEGIN; {'; '.join(added)}; "
                                   f"PRAGMA user_version={SCHEMA_VERSION}; COMMIT;")
            self._columns, self._summary_columns = COLUMNS, _SUMMARY_COLUMNS

    def _check_columns(self) -> None:
        """The tables have the columns of their schema version (an edited or foreign file is
        refused before anything in it changes)."""
        for table, want in (("evaluations", self._columns),
                            ("generations", self._summary_columns)):
            have = {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}
            missing = [c for c in want if c not in have]
            if missing:
                raise ValueError(
                    f"the history {self.path} is not an evonas history: its {table} table lacks "
                    f"the column(s) {missing}; evonas changes nothing in it: restore it, or "
                    "start a new run in another directory")

    def close(self) -> None:
        """Closes the connection (committed generations are already on disk); a writer first
        merges the write-ahead log into the file, so that a finished run's history is one file
        (readable from read-only media)."""
        if not self.readonly:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._db.close()

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ---------------------------------------------------------------------------------

    def append_generation(
        self, generation: int, rows: Iterable[Mapping[str, Any]], summary: Mapping[str, Any]
    ) -> None:
        """Writes one generation's evaluations and its summary, all or nothing.

        Args:
            generation: the generation's number, greater than every one already written.
            rows: one :class:`~evonas.store.row.Row` (or mapping of its fields) per evaluated
                architecture.
                ``id``, ``genome`` and ``genome_key`` are required; ids continue the history's
                (``count()``, ``count() + 1``, ...). The rest default to empty / NULL / false.
            summary: ``best``, ``median``, ``worst`` fitness and ``wall_seconds`` (None allowed),
                optionally ``finished_at`` (ISO time; default now, UTC), ``diagnostics`` (JSON: what
                the strategy reports of itself) and ``beliefs`` (JSON:
                what a distribution-based strategy believes after the generation).

        Raises:
            ValueError: a bad generation number, id, field or summary; nothing is written.
        """
        rows = [r.as_dict() if isinstance(r, row_schema.Row) else r for r in rows]
        generation = int(generation)
        last = self.last_complete_generation()
        if generation < 0 or (last is not None and generation <= last):
            raise ValueError(
                f"generation {generation} can't be appended after generation {last}; generations "
                "must increase (call truncate_after() first to rewrite one)"
            )
        summary = self._summary_values(generation, len(rows), summary)
        start = self.count()
        for offset, row in enumerate(rows):
            self._check_row(row, expected_id=start + offset)
        columns = ", ".join(COLUMNS)
        marks = ", ".join("?" * len(COLUMNS))
        with self._transaction():
            # Rows are converted inside the transaction: a value that fails to convert rolls back
            # every row before it.
            for row in rows:
                self._db.execute(
                    f"INSERT INTO evaluations ({columns}) VALUES ({marks})",
                    row_schema.encode(generation, row),
                )
            self._db.execute(
                f"INSERT INTO generations ({', '.join(_SUMMARY_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(_SUMMARY_COLUMNS))})",
                summary,
            )

    def truncate_after(self, generation: int) -> int:
        """Deletes every generation after ``generation`` (``-1``: all), in one transaction.

        Resume uses it to drop generations that were committed here but not checkpointed.

        Returns:
            The number of evaluation rows deleted.
        """
        with self._transaction():
            cursor = self._db.execute(
                "DELETE FROM evaluations WHERE generation > ?", (int(generation),)
            )
            self._db.execute("DELETE FROM generations WHERE generation > ?", (int(generation),))
        return cursor.rowcount

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One write transaction: committed if the body returns, rolled back if it raises."""
        if self.readonly:
            raise ValueError(f"the history {self.path} was opened read-only; open it writable")
        try:
            # IMMEDIATE takes the write lock now, so a second writer waits here, not half-way.
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        except sqlite3.DatabaseError as e:
            raise ValueError(
                f"can't write the history {self.path}: {_first_line(e)}; nothing of this "
                "generation was written: free disk space or make the run directory writable, "
                "then resume"
            ) from None

    def _check_row(self, row: Mapping[str, Any], expected_id: int) -> None:
        unknown = sorted(set(row) - set(ROW_FIELDS))
        if unknown:
            raise ValueError(f"unknown history field(s) {unknown}; allowed: {list(ROW_FIELDS)}")
        missing = [f for f in _REQUIRED_FIELDS if f not in row]
        if missing:
            raise ValueError(f"history row {dict(row)!r:.80} lacks the required field(s) {missing}")
        if int(row["id"]) != expected_id:
            raise ValueError(
                f"history row id {row['id']} breaks the evaluation order: expected {expected_id} "
                "(ids are 0-based and consecutive; use History.count() for the next one)"
            )

    @staticmethod
    def _summary_values(
        generation: int, evaluations: int, summary: Mapping[str, Any]
    ) -> tuple[Any, ...]:
        unknown = sorted(set(summary) - set(SUMMARY_FIELDS))
        missing = [f for f in SUMMARY_FIELDS[:4] if f not in summary]
        if unknown or missing:
            raise ValueError(
                f"generation summary has unknown {unknown} / missing {missing} fields; "
                f"it takes {list(SUMMARY_FIELDS)} (finished_at, beliefs and diagnostics "
                "optional)"
            )
        finished = summary.get("finished_at") or datetime.datetime.now(
            datetime.timezone.utc
        ).isoformat(timespec="seconds")
        stats = tuple(row_schema.opt_float(summary[f]) for f in SUMMARY_FIELDS[:4])
        # NaN and infinity (a diverged estimate, a 0/0 share) are stored as null, not refused:
        # a generation's numbers are kept even when one of its diagnostics has no value
        encoded = tuple(None if summary.get(f) is None else row_schema.to_json(
            summary[f], f"generation {generation}'s {f}") for f in _JSON_SUMMARY)
        return (generation, evaluations, *stats, str(finished), *encoded)

    # -- reading ---------------------------------------------------------------------------------

    def _read(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """All rows of ``query``; a database error becomes one line naming the file."""
        try:
            return self._db.execute(query, params).fetchall()
        except sqlite3.DatabaseError as e:
            raise ValueError(
                f"can't read the history {self.path}: {_first_line(e)}; evonas changes nothing "
                "in it: restore it from a copy, or start a new run in another directory"
            ) from None

    def last_complete_generation(self) -> int | None:
        """The newest generation written (every one written is whole), or None if none is."""
        return self._read("SELECT MAX(generation) FROM generations")[0][0]

    def count(self, through: int | None = None) -> int:
        """The number of evaluation rows (of generations ``<= through``, if given).

        ``count()`` is also the next evaluation id.
        """
        if through is None:
            return self._read("SELECT COUNT(*) FROM evaluations")[0][0]
        return self._read("SELECT COUNT(*) FROM evaluations WHERE generation <= ?",
                          (int(through),))[0][0]

    def rows(self, generation: int | None = None, skipped: list[str] | None = None
             ) -> list[dict[str, Any]]:
        """Evaluation rows in id order (of one generation, if given), as dicts.

        JSON columns come back decoded; ``failed`` and ``cached`` as bools.

        Args:
            generation: only this generation's rows.
            skipped: where given, a row evonas would not have written (a genome that is not a
                list of integers, a cell that is not JSON) is left out and named here, as a
                read-only command should; without it such a row is an error, as a resume needs.

        Raises:
            ValueError: one line naming the file and the row it cannot read.
        """
        query = f"SELECT {', '.join(self._columns)} FROM evaluations"
        params: tuple[Any, ...] = ()
        if generation is not None:
            query, params = query + " WHERE generation = ?", (int(generation),)
        out = []
        for values in self._read(query + " ORDER BY id", params):
            try:
                out.append(row_schema.decode(self._columns, tuple(values)))
            except row_schema.BadRow as err:
                if skipped is None:
                    raise self._bad(err) from None
                skipped.append(str(err))
        return out

    def lookup(self, key: str) -> dict[str, Any] | None:
        """The first trained (not cached) evaluation of the genome with this ``genome_key``.

        The de-duplication cache: a hit is reused instead of training again. Failed evaluations
        are returned too (``failed`` set): whether to retry them is the caller's choice.
        """
        rows = self._read(
            f"SELECT {', '.join(self._columns)} FROM evaluations "
            "WHERE genome_key = ? AND cached = 0 ORDER BY id LIMIT 1",
            (str(key),),
        )
        return self._decode(rows[0]) if rows else None

    def key_of(self, row_id: int) -> str | None:
        """The ``genome_key`` of evaluation ``row_id`` (None: no such row)."""
        rows = self._read("SELECT genome_key FROM evaluations WHERE id = ?", (int(row_id),))
        return rows[0][0] if rows else None

    def generations(self) -> list[dict[str, Any]]:
        """The per-generation summaries, oldest first."""
        rows = self._read(
            f"SELECT {', '.join(self._summary_columns)} FROM generations ORDER BY generation")
        out = []
        for r in rows:
            summary = dict.fromkeys(_SUMMARY_COLUMNS)
            summary.update(zip(self._summary_columns, r))
            for field in _JSON_SUMMARY:
                if summary[field] is not None:
                    summary[field] = row_schema.loads(
                        summary[field], f"generation {summary['generation']} {field}")
            out.append(summary)
        return out

    def _decode(self, values: Sequence[Any]) -> dict[str, Any]:
        try:
            return row_schema.decode(self._columns, tuple(values))
        except row_schema.BadRow as err:
            raise self._bad(err) from None

    def _bad(self, err: Exception) -> ValueError:
        return ValueError(f"can't read the history {self.path}: {err}; evonas writes no such "
                          "row: restore the file from a copy")
