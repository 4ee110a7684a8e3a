"""Tabular benchmarks: the generic :class:`Table`, NAS-Bench-201 as one instance, and the one
registry of benchmarks (built-ins, ``register_benchmark``, the entry-point group
``evonas.benchmarks``).

A benchmark factory takes options (NAS-Bench-201: ``dataset``) and returns a :class:`Table`;
``evonas bench NAME`` and ``evaluator: {name: tabular, benchmark: NAME}`` in a run's YAML use it.
"""

from __future__ import annotations

from typing import Any

from evonas.benchmarks import nb201
from evonas.benchmarks.nb201 import (
    DATASETS,
    DEVICES,
    ENERGY_DEVICES,
    NB201Table,
    encoding_for,
    load_table,
    metric_names,
)
from evonas.benchmarks.table import Table
from evonas.registry import Factory, Registry

ENTRY_POINT_GROUP = "evonas.benchmarks"

BUILTIN_BENCHMARKS: dict[str, Factory] = {"nb201": nb201.table}

BENCHMARKS = Registry("benchmark", ENTRY_POINT_GROUP, BUILTIN_BENCHMARKS)


def register_benchmark(name: str, factory: Factory, *, overwrite: bool = False) -> None:
    """Makes ``factory(**options) -> Table`` available as ``get_benchmark(name, **options)``."""
    BENCHMARKS.register(name, factory, overwrite=overwrite)


def list_benchmarks() -> list[str]:
    """Every registered benchmark name, entry points included, sorted."""
    return BENCHMARKS.names()


def get_benchmark(name: str, **options: Any) -> Table:
    """The table of the benchmark registered as ``name``, built with ``options``.

    Raises:
        ValueError: an unknown name or option, or a factory that does not return a Table.
    """
    table = BENCHMARKS.build(name, **options)
    if not isinstance(table, Table):
        raise ValueError(f"benchmark {name!r} returned a {type(table).__name__}; a benchmark "
                         "factory must return an evonas.benchmarks.Table")
    return table


__all__ = [
    "BENCHMARKS",
    "BUILTIN_BENCHMARKS",
    "DATASETS",
    "DEVICES",
    "ENERGY_DEVICES",
    "ENTRY_POINT_GROUP",
    "NB201Table",
    "Table",
    "encoding_for",
    "get_benchmark",
    "list_benchmarks",
    "load_table",
    "metric_names",
    "nb201",
    "register_benchmark",
]
