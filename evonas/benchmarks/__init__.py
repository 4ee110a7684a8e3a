"""Tabular benchmarks shipped with evonas."""

from evonas.benchmarks.nb201 import (
    DATASETS,
    DEVICES,
    ENERGY_DEVICES,
    NB201Table,
    encoding_for,
    load_table,
    metric_names,
)

__all__ = [
    "DATASETS",
    "DEVICES",
    "ENERGY_DEVICES",
    "NB201Table",
    "encoding_for",
    "load_table",
    "metric_names",
]
