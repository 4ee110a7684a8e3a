"""The ``Evaluator`` protocol and its ``Results``."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import jax
from flax import struct


@struct.dataclass
class Results:
    """What an evaluator returns for a population of ``P`` genomes.

    Attributes:
        fitness: ``float32[P]``, the value a single-objective strategy optimises, in the
            evaluator's direction (``Evaluator.maximize``); NaN where the evaluation failed.
        objectives: ``{name: float32[P]}``, extra objectives for multi-objective search.
        metrics: ``{name: float32[P]}``, everything measured (accuracy, loss, ...).
        costs: ``{name: float32[P]}``, analytic costs (params, flops, ...).
        failed: ``bool[P]``, True where the individual could not be evaluated.
    """

    fitness: jax.Array
    objectives: dict[str, jax.Array]
    metrics: dict[str, jax.Array]
    costs: dict[str, jax.Array]
    failed: jax.Array


@runtime_checkable
class Evaluator(Protocol):
    """``evaluate(key, genomes) -> Results``; ``maximize`` gives the direction of ``fitness``."""

    maximize: bool

    def evaluate(self, key: jax.Array, genomes: jax.Array) -> Results: ...


def describe_protocol(evaluator: Any) -> str:
    """The evaluation protocol in words, for reports (``oracle tabular``, ``training``, ...)."""
    return getattr(evaluator, "protocol", type(evaluator).__name__)
