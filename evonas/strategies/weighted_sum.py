"""Weighted-sum scalarisation: any single-objective strategy on ``sum_i w_i * f_i``.

The oldest way to search several objectives with a single-objective method, and the baseline a
multi-objective method has to beat: it finds only the points of the front where a supporting
hyperplane touches it, one per weight vector (Das & Dennis 1997, "A closer look at drawbacks of
minimizing weighted sums of objectives for Pareto set generation in multicriteria optimization
problems", Structural Optimization 14; Miettinen 1999, "Nonlinear Multiobjective
Optimization"). ``alpha * accuracy - beta * cost`` is ``weights=(alpha, beta)`` with
``maximize=(True, False)``.

Multi-objective convention: ``maximize`` is a tuple, one bool per objective, and ``tell`` takes
fitness ``float32[B, M]``; a row with a NaN anywhere scalarises to NaN, which the wrapped
strategy treats as a failed evaluation.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from evonas.genomes.space import GenomeSpace
from evonas.strategies.base import (
    Counted,
    MultiObjectiveBase,
    Strategy,
    adapt,
    num_objectives,
)

_OWNER = "WeightedSum"


@struct.dataclass
class WeightedSumState(Counted):
    """The wrapped strategy's state, the parents of its latest ask and the best so far."""

    inner: Any  # the wrapped strategy's state
    # The wrapped state's ``parents`` after the latest ask (its shape: [B] or [B, 2]), or
    # int32[B] of -1 when the wrapped strategy records none.
    parents: jax.Array
    best_genome: jax.Array  # int32[G], the best by scalarised score so far
    best_score: jax.Array  # float32, its score (higher is better; -inf before any success)
    best_objectives: jax.Array  # float32[M], its objectives in the user's units (NaN before)


@dataclasses.dataclass(frozen=True)
class WeightedSum(MultiObjectiveBase):
    """A single-objective strategy searching a weighted sum of the objectives.

    Args:
        space: the genome space.
        inner: the wrapped single-objective strategy over ``space``, built with
            ``maximize=True``: it maximises the score. By name, from a config:
            ``get_strategy("weighted_sum", space, strategy="regularized_evolution",
            strategy_params={...})``.
        weights: one non-negative weight per objective.
        maximize: one bool per objective: ``True`` where higher is better. The score is
            ``sum_i weights[i] * (f_i if maximize[i] else -f_i)``.

    Raises:
        ValueError: for bad weights or directions, or an ``inner`` that is multi-objective,
            minimises, or searches another space.
    """

    space: GenomeSpace
    inner: Strategy
    weights: tuple[float, ...] = (1.0, 1.0)
    maximize: tuple[bool, ...] = (True, False)

    def __post_init__(self):
        super().__post_init__()
        maximize = self.maximize
        weights = self.weights
        try:
            weights = tuple(float(w) for w in weights)
        except (TypeError, ValueError):
            raise ValueError(
                f"{_OWNER}: weights must be a sequence of numbers, one per objective; "
                f"got {self.weights!r}"
            ) from None
        if len(weights) != len(maximize):
            raise ValueError(
                f"{_OWNER}: weights must have one entry per objective ({len(maximize)}, the "
                f"length of maximize); got {len(weights)}: {self.weights!r}"
            )
        if not all(math.isfinite(w) and w >= 0.0 for w in weights) or not any(weights):
            raise ValueError(
                f"{_OWNER}: weights must be finite and non-negative, at least one positive "
                f"(the direction comes from maximize); got {self.weights!r}"
            )
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "inner", adapt(self.inner))
        inner = self.inner
        if not all(hasattr(inner, m) for m in ("init", "ask", "tell", "maximize", "space")):
            raise ValueError(f"{_OWNER}: inner must be a strategy (init, ask, tell); got "
                             f"{type(inner).__name__}")
        if num_objectives(inner) != 1:
            raise ValueError(
                f"{_OWNER}: the wrapped strategy must be single-objective; "
                f"{type(inner).__name__} takes {num_objectives(inner)} objectives"
            )
        if inner.maximize is not True:
            raise ValueError(f"{_OWNER}: the wrapped strategy must maximise the weighted sum "
                             "(build it with maximize=True; the directions go in "
                             f"{_OWNER}.maximize)")
        if inner.space != self.space:
            raise ValueError(f"{_OWNER}: the wrapped strategy searches another space")

    @property
    def batch_size(self) -> int:
        """The wrapped strategy's ``batch_size``."""
        return self.inner.batch_size

    @property
    def num_objectives(self) -> int:
        """``M``, the columns of the fitness ``tell`` takes."""
        return len(self.maximize)

    def scalarise(self, fitness: jax.Array) -> jax.Array:
        """``float32[B, M] -> float32[B]``: the weighted sum, higher is better; NaN where any
        objective is NaN (a zero weight does not hide a failed evaluation)."""
        fitness = jnp.asarray(fitness, jnp.float32)
        signed = jnp.where(jnp.asarray(self.maximize), fitness, -fitness)
        score = signed @ jnp.asarray(self.weights, jnp.float32)
        return jnp.where(jnp.any(jnp.isnan(fitness), axis=-1), jnp.nan, score)

    def _parents(self, inner_state: Any) -> jax.Array:
        parents = getattr(inner_state, "parents", None)
        if parents is None:
            return jnp.full((self.batch_size,), -1, jnp.int32)
        return jnp.asarray(parents, jnp.int32)

    def _init(self, key: jax.Array) -> WeightedSumState:
        """The wrapped strategy's initial state, and no best yet."""
        inner = self.inner.init(key)
        return WeightedSumState(
            inner=inner,
            parents=self._parents(inner),
            best_genome=jnp.zeros((self.space.num_genes,), jnp.int32),
            best_score=jnp.float32(-jnp.inf),
            best_objectives=jnp.full((self.num_objectives,), jnp.nan, jnp.float32),
            generation=jnp.int32(0),
        )

    def _ask(self, key: jax.Array, state: WeightedSumState
             ) -> tuple[jax.Array, WeightedSumState]:
        """The wrapped strategy's ``ask``; ``parents`` is copied from its new state."""
        genomes, inner = self.inner.ask(key, state.inner)
        return genomes, state.replace(inner=inner, parents=self._parents(inner))

    def _tell(self, key: jax.Array, genomes: jax.Array, fitness: jax.Array,
              state: WeightedSumState) -> WeightedSumState:
        """Tells the wrapped strategy the scalarised fitness (``fitness`` is ``float32[B, M]``
        in the user's units, NaN: failed) and keeps the best by it."""
        score = self.scalarise(fitness)
        clean = jnp.where(jnp.isnan(score), -jnp.inf, score)
        i = jnp.argmax(clean)
        better = clean[i] > state.best_score
        return state.replace(
            inner=self.inner.tell(key, genomes, score, state.inner),
            best_genome=jnp.where(better, genomes[i], state.best_genome),
            best_score=jnp.where(better, clean[i], state.best_score),
            best_objectives=jnp.where(better, fitness[i], state.best_objectives),
        )
