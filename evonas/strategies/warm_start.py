"""``WarmStart``: a strategy that starts from what an earlier search of the same space found.

What the earlier search hands over is a list of genomes (its best, best first) and, where it
kept one, the distribution it believed in at the end. The new strategy uses them by what it can
use:

* a strategy that keeps a distribution (ASNG, PBIL, REINFORCE, DARTS, GDAS, DrNAS: the optional
  ``prior(state, probabilities)`` hook, :func:`~evonas.strategies.base.with_prior`) starts from
  the earlier distribution, or, when the earlier search kept none, from the frequencies of each
  gene's values among its best genomes; each probability at least ``floor`` (mixed with the
  uniform distribution) so no value is ruled out;
* any other strategy (evolution, Bayesian optimisation, local search, ...) asks the earlier best
  genomes first: the genomes it asks without a parent, in order, are replaced by them until
  they are used up. They are evaluated again, on this search's data, like any genome it asks,
  and it is told exactly what was evaluated (evolution keeps them as its first population, the
  Bayesian optimiser as its first data).

Nothing of the earlier search's measurements is carried over: a fitness measured on other data
or with another budget would mislead the new one.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from evonas import checks
from evonas.strategies import _categorical as cat
from evonas.strategies.base import State, adapt, bind, no_best, told_best, with_prior


@struct.dataclass
class WarmState(State):
    """The inner strategy's state, how many earlier genomes were asked, and the best so far."""

    inner: Any
    used: jax.Array  # int32: earlier genomes asked so far

    @property
    def parents(self) -> Any:
        return getattr(self.inner, "parents", None)

    @property
    def probabilities(self) -> Any:
        return getattr(self.inner, "probabilities", None)


@dataclasses.dataclass(frozen=True, eq=False)
class WarmStart:
    """``inner``, started from an earlier search's ``genomes`` and ``probabilities`` (module
    docstring).

    Args:
        inner: any strategy of the same space.
        genomes: ``int32[N, G]``, the earlier search's best, best first (N >= 1).
        probabilities: ``float32[G, K]``, the distribution it ended with, or None.
        floor: the smallest probability of a prior (mixed with the uniform distribution).
    """

    inner: Any
    genomes: np.ndarray
    probabilities: np.ndarray | None = None
    floor: float = 0.05

    def __post_init__(self):
        object.__setattr__(self, "inner", adapt(self.inner))
        checks.number("warm_start.floor", self.floor, 0.0, 1.0)
        genomes, probabilities = self.check(self.inner.space, self.genomes, self.probabilities)
        object.__setattr__(self, "genomes", genomes)
        object.__setattr__(self, "probabilities", probabilities)

    @staticmethod
    def check(space: Any, genomes: Any, probabilities: Any = None
              ) -> tuple[np.ndarray, np.ndarray | None]:
        """``(genomes, probabilities)`` as arrays of ``space``.

        Raises:
            ValueError: one line: genomes of another shape or outside the space, or a
                distribution of another shape or with values outside [0, 1].
        """
        genomes = np.asarray(genomes)
        if genomes.ndim != 2 or genomes.shape[1] != space.num_genes or not len(genomes):
            raise ValueError(f"warm start: the earlier genomes have shape {genomes.shape}; this "
                             f"space has {space.num_genes} genes")
        genomes = genomes.astype(np.int32)
        if not bool(np.all(np.asarray(space.contains(jnp.asarray(genomes))))):
            raise ValueError("warm start: an earlier genome lies outside this space")
        if probabilities is None:
            return genomes, None
        p = np.asarray(probabilities, np.float32)
        uniform = cat.uniform(space)
        if p.shape != uniform.shape or not np.all(np.isfinite(p)) or (p < 0).any() or (
                p > 1).any():
            raise ValueError(f"warm start: the earlier distribution has shape {p.shape} or "
                             f"values outside [0, 1]; this space's is {uniform.shape}")
        return genomes, p

    @property
    def space(self) -> Any:
        return self.inner.space

    @property
    def maximize(self) -> Any:
        return self.inner.maximize

    @property
    def batch_size(self) -> int:
        return self.inner.batch_size

    @property
    def estimate_prefix(self) -> str:
        return getattr(self.inner, "estimate_prefix", "")

    @property
    def takes_prior(self) -> bool:
        return getattr(self.inner, "prior", None) is not None

    def bind(self, **context: Any) -> WarmStart:
        """Binds the inner strategy (:func:`~evonas.strategies.base.bind`)."""
        return dataclasses.replace(self, inner=bind(self.inner, **context))

    def distribution(self) -> np.ndarray:
        """The prior: the earlier distribution, else each gene's value frequencies among the
        earlier genomes; at least about ``floor`` each (mixed with the uniform)."""
        uniform = cat.uniform(self.space)
        if self.probabilities is not None:
            p = self.probabilities
        else:
            p = np.zeros_like(uniform)
            for g in range(self.space.num_genes):
                np.add.at(p[g], self.genomes[:, g], 1.0)
            p = p / p.sum(axis=1, keepdims=True)
        p = np.where(uniform > 0, p, 0.0)
        p = p / np.maximum(p.sum(axis=1, keepdims=True), 1e-12)
        return cat.floored(p, self.space, self.floor).astype(np.float32)

    def init(self, key: jax.Array) -> WarmState:
        inner = self.inner.init(key)
        used = 0
        if self.takes_prior:
            inner = with_prior(self.inner, inner, self.distribution())
            used = len(self.genomes)  # it samples from the prior; no genome is replaced
        genome, fitness = no_best(self.space, self.maximize) if isinstance(
            self.maximize, bool) else (jnp.zeros((self.space.num_genes,), jnp.int32),
                                       jnp.float32(jnp.nan))
        return WarmState(generation=jnp.int32(0), best_genome=genome, best_fitness=fitness,
                         inner=inner, used=jnp.int32(used))

    def ask(self, key: jax.Array, state: WarmState) -> tuple[jax.Array, WarmState]:
        """The inner strategy's ask, its parentless genomes replaced by the earlier ones not
        asked yet (in order)."""
        genomes, inner = self.inner.ask(key, state.inner)
        parents = getattr(inner, "parents", None)
        batch = genomes.shape[0]
        if parents is None:
            orphan = jnp.ones((batch,), bool)
        else:
            orphan = jnp.all(jnp.asarray(parents).reshape(batch, -1) < 0, axis=1)
        rank = jnp.cumsum(orphan) - 1
        slot = state.used + rank
        take = orphan & (slot < len(self.genomes))
        earlier = jnp.asarray(self.genomes)[jnp.clip(slot, 0, len(self.genomes) - 1)]
        genomes = jnp.where(take[:, None], earlier, genomes).astype(jnp.int32)
        return genomes, state.replace(inner=inner, used=state.used + jnp.sum(take))

    def tell(self, key: jax.Array, genomes: jax.Array, fitness: jax.Array,
             state: WarmState) -> WarmState:
        """Tells the inner strategy exactly what was asked (and evaluated)."""
        inner = self.inner.tell(key, genomes, fitness, state.inner)
        best, best_fitness = state.best_genome, state.best_fitness
        if isinstance(self.maximize, bool):
            best, best_fitness = told_best(self.maximize, best, best_fitness, genomes, fitness)
        return state.replace(inner=inner, best_genome=best, best_fitness=best_fitness,
                             generation=state.generation + 1)

    def diagnostics(self, state: WarmState) -> dict[str, float | None]:
        """The inner strategy's own diagnostics, and how many earlier genomes were asked."""
        report = getattr(self.inner, "diagnostics", None)
        out = dict(report(state.inner)) if report is not None else {}
        out["warm_genomes_asked"] = float(min(int(state.used), len(self.genomes))) \
            if not self.takes_prior else 0.0
        return out
