"""Random search: every genome drawn uniformly from the space.

The baseline every NAS method must beat (Li & Talwalkar 2019, "Random Search and Reproducibility
for Neural Architecture Search", UAI).
"""

from __future__ import annotations

import dataclasses
from functools import partial

import jax
import jax.numpy as jnp
from flax import struct

from evonas import checks
from evonas.genomes.space import GenomeSpace
from evonas.strategies.base import (
    check_common,
    check_told,
    from_score,
    no_best,
    to_score,
    update_best,
)


@struct.dataclass
class RandomSearchState:
    """Only the best genome so far: random search has no memory to learn from."""

    best_genome: jax.Array  # int32[G]
    best_fitness: jax.Array  # float32, in the user's direction
    generation: jax.Array  # int32, number of tells


@dataclasses.dataclass(frozen=True)
class RandomSearch:
    """Uniform random search over a :class:`GenomeSpace`.

    Args:
        space: the genome space.
        batch_size: genomes per ``ask``.
        maximize: whether higher fitness is better.
    """

    space: GenomeSpace
    batch_size: int = 16
    maximize: bool = True

    def __post_init__(self):
        check_common(self, "RandomSearch")
        checks.positive_int("RandomSearch.batch_size", self.batch_size)

    @partial(jax.jit, static_argnums=0)
    def init(self, key: jax.Array) -> RandomSearchState:
        """The empty state (``key`` is unused; kept for the common signature)."""
        del key
        best_genome, best_fitness = no_best(self.space, self.maximize)
        return RandomSearchState(
            best_genome=best_genome,
            best_fitness=best_fitness,
            generation=jnp.int32(0),
        )

    @partial(jax.jit, static_argnums=0)
    def ask(self, key: jax.Array, state: RandomSearchState) -> tuple[jax.Array, RandomSearchState]:
        """``batch_size`` uniform genomes: ``int32[batch_size, G]``."""
        return self.space.sample(key, self.batch_size), state

    @partial(jax.jit, static_argnums=0)
    def tell(
        self, genomes: jax.Array, fitness: jax.Array, state: RandomSearchState
    ) -> RandomSearchState:
        """Records the best of ``genomes`` (NaN fitness = failed, never the best)."""
        check_told(self, genomes, fitness)
        best, best_score = update_best(
            state.best_genome,
            to_score(state.best_fitness, self.maximize),
            jnp.asarray(genomes, jnp.int32),
            to_score(fitness, self.maximize),
        )
        return state.replace(
            best_genome=best,
            best_fitness=from_score(best_score, self.maximize),
            generation=state.generation + 1,
        )

