"""Random search: every genome drawn uniformly from the space.

The baseline every NAS method must beat (Li & Talwalkar 2019, "Random Search and Reproducibility
for Neural Architecture Search", UAI).
"""

from __future__ import annotations

import dataclasses

import jax
from flax import struct

from evonas.genomes.space import GenomeSpace
from evonas.strategies.base import State, StrategyBase


@struct.dataclass
class RandomSearchState(State):
    """Only the best genome so far (the base's fields): random search has no memory to learn
    from."""


@dataclasses.dataclass(frozen=True)
class RandomSearch(StrategyBase):
    """Uniform random search over a :class:`GenomeSpace`.

    Args:
        space: the genome space.
        batch_size: genomes per ``ask``.
        maximize: whether higher fitness is better.
    """

    space: GenomeSpace
    batch_size: int = 16
    maximize: bool = True

    def _init(self, key: jax.Array) -> RandomSearchState:
        del key
        return RandomSearchState(**self.initial())

    def _ask(self, key: jax.Array, state: RandomSearchState
             ) -> tuple[jax.Array, RandomSearchState]:
        """``batch_size`` uniform genomes: ``int32[batch_size, G]``."""
        return self.space.sample(key, self.batch_size), state

    def _tell(self, key: jax.Array, genomes: jax.Array, scores: jax.Array,
              state: RandomSearchState) -> RandomSearchState:
        """Nothing to learn: the base records the best."""
        return state
