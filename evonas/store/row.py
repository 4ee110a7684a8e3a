"""One row of a run's history: an evaluated architecture, typed, in one place.

:class:`Row`'s fields are the ``evaluations`` table's columns, in order, each with its SQLite
type and how its value is stored (JSON text, a number, a flag); the history's schema, its writing
and reading, the generation's assembly of a row and the report's tolerant reader all derive from
them. The numeric columns objectives may name are ``evonas.objectives.HISTORY_COLUMNS``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

# How a column's value is stored.
JSON, INT, REAL, TEXT, FLAG = "json", "int", "real", "text", "flag"


def column(sql: str, kind: str, default: Any = None, *, since: int = 1) -> Any:
    """A :class:`Row` field: its SQLite declaration, how it is stored, and the history schema
    version that added it."""
    factory = (lambda d=default: type(d)()) if isinstance(default, (dict, list)) else None
    extra = {"default_factory": factory} if factory else {"default": default}
    return dataclasses.field(**extra, metadata={"sql": sql, "kind": kind, "since": since})


@dataclasses.dataclass(frozen=True)
class Row:
    """One evaluated architecture.

    Attributes:
        id: its evaluation order, from 0 over the whole run.
        generation: the generation that evaluated it (set when the generation is written).
        genome: the genes, as the strategy asked them.
        genome_key: the de-duplication key (of the canonical genome, when the encoding has one).
        description: the encoding's ``describe(genome)``.
        parents: the ids of its parents (empty for a random genome).
        fitness: the first objective's value; None where it failed.
        metrics: everything measured (trained metrics, latency, proxies, analytic costs beyond
            params and FLOPs), finite values only.
        val_acc, val_loss: the validation accuracy and loss (when trained or scored).
        params, flops, executed_flops: analytic costs (executed: the supernet's, with masks).
        failed: it could not be evaluated, or broke a constraint.
        reason: why it failed.
        train_seconds: its share of the generation's evaluation time (0 for a cached row).
        cached: a de-duplication hit: the result of an earlier row, not evaluated again.
        fidelity: the optimiser steps its own weights had (None: not trained, e.g. a table).
        estimate: how its fitness was obtained (``trained``, ``inherited``, ``oneshot``, ...).
    """

    id: int = column("INTEGER PRIMARY KEY", INT, 0)
    generation: int = column("INTEGER NOT NULL", INT, 0)
    genome: list[int] = column("TEXT NOT NULL", JSON, [])
    genome_key: str = column("TEXT NOT NULL", TEXT, "")
    description: dict[str, Any] = column("TEXT NOT NULL", JSON, {})
    parents: list[int] = column("TEXT NOT NULL", JSON, [])
    fitness: float | None = column("REAL", REAL)
    metrics: dict[str, Any] = column("TEXT NOT NULL", JSON, {})
    val_acc: float | None = column("REAL", REAL)
    val_loss: float | None = column("REAL", REAL)
    params: int | None = column("INTEGER", INT)
    flops: int | None = column("INTEGER", INT)
    executed_flops: int | None = column("INTEGER", INT)
    failed: bool = column("INTEGER NOT NULL", FLAG, False)
    reason: str | None = column("TEXT", TEXT)
    train_seconds: float | None = column("REAL", REAL)
    cached: bool = column("INTEGER NOT NULL", FLAG, False)
    fidelity: int | None = column("INTEGER", INT, since=2)
    estimate: str | None = column("TEXT", TEXT, since=2)

    def as_dict(self) -> dict[str, Any]:
        """The row as a plain mapping, every column a key (what the history's readers use)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


FIELDS: tuple[dataclasses.Field, ...] = dataclasses.fields(Row)
COLUMNS: tuple[str, ...] = tuple(f.name for f in FIELDS)
SCHEMA: tuple[tuple[str, str], ...] = tuple((f.name, f.metadata["sql"]) for f in FIELDS)
JSON_COLUMNS: tuple[str, ...] = tuple(f.name for f in FIELDS if f.metadata["kind"] == JSON)
REQUIRED: tuple[str, ...] = ("id", "genome", "genome_key")
KINDS: dict[str, str] = {f.name: f.metadata["kind"] for f in FIELDS}


def added_in(version: int) -> tuple[str, ...]:
    """The columns the history schema ``version`` added to ``evaluations``."""
    return tuple(f.name for f in FIELDS if f.metadata["since"] == version)


def _plain(value: Any, where: str) -> Any:
    """``value`` as plain JSON types; arrays and numpy scalars become lists and numbers.

    Non-finite floats become None: strict JSON has no NaN, and the report reads these columns
    with other tools.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _plain(v, where) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, where) for v in value]
    if hasattr(value, "__array__"):  # numpy and jax arrays
        return _plain(np.asarray(value).tolist(), where)
    raise TypeError(
        f"{where} holds a {type(value).__name__}, which can't be written as JSON; "
        "use numbers, strings, lists and dicts"
    )


def to_json(value: Any, where: str) -> str:
    """``value`` as the JSON text a history cell holds."""
    return json.dumps(_plain(value, where), separators=(",", ":"), allow_nan=False)


def opt_float(value: Any) -> float | None:
    """A finite float, or None (NaN, infinity and None all mean "no value")."""
    if value is None:
        return None
    value = float(np.asarray(value))
    return value if math.isfinite(value) else None


def opt_int(value: Any) -> int | None:
    """:func:`opt_float` rounded to an integer."""
    value = opt_float(value)
    return None if value is None else int(round(value))


def encode(generation: int, row: Mapping[str, Any]) -> tuple[Any, ...]:
    """The values of ``row`` (a :class:`Row` or a mapping of its fields) as the history stores
    them, in column order; a failed row stores no fitness."""
    if isinstance(row, Row):
        row = row.as_dict()
    where = f"history row {row['id']}"
    defaults = Row()
    out = []
    for f in FIELDS:
        name, kind = f.name, f.metadata["kind"]
        value = row.get(name, getattr(defaults, name))
        if name == "generation":
            value = int(generation)
        elif name == "fitness" and row.get("failed"):
            value = None
        elif name == "genome":
            value = to_json([int(g) for g in np.asarray(value).ravel()], where)
        elif name == "parents":
            value = to_json([int(p) for p in value], where)
        elif kind == JSON:
            value = to_json(value, f"{where} {name}")
        elif kind == FLAG:
            value = int(bool(value))
        elif kind == REAL:
            value = opt_float(value)
        elif name == "id":
            value = int(value)
        elif kind == INT:
            value = opt_int(value)
        else:
            value = None if value is None else str(value)
        out.append(value)
    return tuple(out)


class BadRow(ValueError):
    """A stored row evonas would not have written (edited by hand, or from someone else)."""


def loads(text: Any, where: str) -> Any:
    """A history cell's JSON text decoded.

    Raises:
        BadRow: naming ``where`` for text that is not JSON, or nested too deep to read.
    """
    try:
        return json.loads(text)
    except RecursionError:
        raise BadRow(f"{where} is JSON nested too deep to read") from None
    except (TypeError, ValueError) as err:
        raise BadRow(f"{where} is not JSON ({err})") from None


def check_genome(genome: Any, where: str) -> list[int]:
    """A stored genome as a list of genes (integers that fit in 32 bits).

    Raises:
        BadRow: naming ``where`` and what it holds instead.
    """
    if isinstance(genome, list) and all(
            isinstance(g, int) and not isinstance(g, bool) and -2**31 <= g < 2**31
            for g in genome):
        return genome
    shown = json.dumps(genome, default=str)[:60] if not isinstance(genome, list) or len(
        genome) < 1000 else f"a list of {len(genome)}"
    raise BadRow(f"{where} genome is {shown}; a genome is a list of 32-bit integers")


def decode(names: tuple[str, ...], values: tuple[Any, ...]) -> dict[str, Any]:
    """A stored row (``values`` of the columns ``names``) as a mapping of every column: JSON
    decoded, flags as bools, columns the file lacks (an older schema) None.

    Raises:
        BadRow: one line naming the row and the column it cannot read.
    """
    row = dict.fromkeys(COLUMNS)
    row.update(zip(names, values))
    where = f"history row {row['id']}"
    for name in JSON_COLUMNS:
        row[name] = loads(row[name], f"{where} {name}")
    row["genome"] = check_genome(row["genome"], where)
    for name, kind in KINDS.items():
        if kind == FLAG:
            row[name] = bool(row[name])
    return row
