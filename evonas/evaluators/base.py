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
        metrics: ``{name: float32[P]}``, everything measured (accuracy, loss, table columns).
        costs: ``{name: float32[P]}``, analytic costs (params, flops, ...).
        failed: ``bool[P]``, True where the individual could not be evaluated.
        fidelity: ``int[P]``, training steps each individual's own weights had (fewer than the
            full budget under successive halving or weight inheritance, 0 for one-shot
            estimates), or None where the notion does not apply (a table).
    """

    fitness: jax.Array
    objectives: dict[str, jax.Array]
    metrics: dict[str, jax.Array]
    costs: dict[str, jax.Array]
    failed: jax.Array
    fidelity: jax.Array | None = None


@runtime_checkable
class Evaluator(Protocol):
    """Scores a population of genomes: ``evaluate(key, genomes) -> Results``.

    An evaluator is either pure and jit-able (a table lookup: ``TabularEvaluator``, which
    whole searches run inside one compiled program) or host side (training:
    ``TrainingEvaluator`` compiles and runs programs of its own). The experiment runner only
    calls ``evaluate`` from the host, once per generation, on the genomes it has not seen.

    Attributes:
        maximize: whether higher ``Results.fitness`` is better.
        protocol: (optional) how the fitness was obtained, in words, for reports and the
            history (``"training"``, ``"oracle tabular"``); default the class name.
        estimate: (optional) how each fitness is estimated, one word the history records per
            row (``"trained"``, ``"inherited"``, ``"oneshot"``, ``"table"``); default
            ``protocol``.
        encoding: (optional) the encoding whose genomes it scores.
    """

    maximize: bool

    def evaluate(self, key: jax.Array, genomes: jax.Array) -> Results:
        """Scores ``genomes``.

        Args:
            key: a ``jax.random`` key for everything random in the evaluation (initialisation,
                batch order, noise); the same key and genomes give the same results.
            genomes: ``int32[P, G]``.

        Returns:
            :class:`Results` with a leading axis ``P`` on every array; a failed individual has
            ``failed`` set and NaN fitness, and must not affect the others' results.
        """
        ...


def describe_estimate(evaluator: Any) -> str:
    """How ``evaluator`` estimates fitness, in one word, for the history's ``estimate``."""
    return str(getattr(evaluator, "estimate", describe_protocol(evaluator)))


def describe_protocol(evaluator: Any) -> str:
    """The evaluation protocol in words, for reports (``oracle tabular``, ``training``, ...)."""
    return getattr(evaluator, "protocol", type(evaluator).__name__)
