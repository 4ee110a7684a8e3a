"""Regularized (aging) evolution.

Real, Aggarwal, Huang & Le 2019, "Regularized Evolution for Image Classifier Architecture
Search", AAAI. A population of the last ``population_size`` evaluated individuals; each child is a
single-gene mutation of the winner of a tournament of ``sample_size`` random members; the oldest
member dies (``aging=True``), or, in the non-regularized variant, the worst (``aging=False``).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import struct

from evonas import checks
from evonas.genomes.space import GenomeSpace
from evonas.operators import mutate_one, tournament_contestants, tournament_winners
from evonas.strategies.base import State, StrategyBase

_OWNER = "RegularizedEvolution"


@struct.dataclass
class RegularizedEvolutionState(State):
    """The population buffer (and the base's best so far).

    Members ``0 .. min(count, population_size) - 1`` are filled; the rest are empty
    (``birth == -1``, score ``-inf``).
    """

    population: jax.Array  # int32[N, G]
    scores: jax.Array  # float32[N], higher is better, -inf = failed or empty
    birth: jax.Array  # int32[N], the order in which members were told; -1 = empty slot
    count: jax.Array  # int32, individuals told so far
    # int32[batch_size]: per child of the latest ask, its parent's birth (= evaluation id when
    # every asked child is told in order, as the experiment runner does); -1 for a random child.
    parents: jax.Array


@dataclasses.dataclass(frozen=True)
class RegularizedEvolution(StrategyBase):
    """Regularized (aging) evolution over integer genomes.

    Args:
        space: the genome space.
        population_size: how many of the most recent individuals form the population.
        sample_size: tournament size; contestants are drawn with replacement, as in the paper.
        batch_size: children per ``ask`` (any value; the first ``population_size`` individuals
            are random, even when that boundary falls inside a batch).
        aging: remove the oldest member (regularized) or the worst (the paper's baseline).
        maximize: whether higher fitness is better.
    """

    space: GenomeSpace
    population_size: int = 64
    sample_size: int = 16
    batch_size: int = 8
    aging: bool = True
    maximize: bool = True

    def __post_init__(self):
        super().__post_init__()
        checks.positive_int(f"{_OWNER}.population_size", self.population_size)
        checks.positive_int(f"{_OWNER}.sample_size", self.sample_size)
        if self.sample_size > self.population_size:
            raise ValueError(
                f"{_OWNER}: sample_size must be at most population_size "
                f"({self.population_size}); got {self.sample_size}"
            )
        if not isinstance(self.aging, bool):
            raise ValueError(f"{_OWNER}: aging must be True or False; got {self.aging!r}")

    def _init(self, key: jax.Array) -> RegularizedEvolutionState:
        """An empty population (``key`` is unused)."""
        del key
        n, g = self.population_size, self.space.num_genes
        return RegularizedEvolutionState(
            **self.initial(),
            population=jnp.zeros((n, g), jnp.int32),
            scores=jnp.full((n,), -jnp.inf, jnp.float32),
            birth=jnp.full((n,), -1, jnp.int32),
            count=jnp.int32(0),
            parents=jnp.full((self.batch_size,), -1, jnp.int32),
        )

    def _ask(
        self, key: jax.Array, state: RegularizedEvolutionState
    ) -> tuple[jax.Array, RegularizedEvolutionState]:
        """``batch_size`` children: random during warm-up, else mutated tournament winners.

        A child whose tournament found only failed (or empty) members is random too, so a failed
        individual is never a parent. The returned state's ``parents`` holds each child's parent
        (its birth number), or -1 for a random child.
        """
        k_sample, k_mutate, k_random = jax.random.split(key, 3)
        filled = jnp.minimum(state.count, self.population_size)
        contestants = tournament_contestants(k_sample, filled, self.batch_size, self.sample_size)
        winners = tournament_winners(state.scores, contestants)
        children = mutate_one(k_mutate, state.population[winners], self.space)
        warm_up = state.count + jnp.arange(self.batch_size) < self.population_size
        random = warm_up | jnp.isneginf(state.scores[winners])
        fresh = self.space.sample(k_random, self.batch_size)
        parents = jnp.where(random, -1, state.birth[winners]).astype(jnp.int32)
        return jnp.where(random[:, None], fresh, children), state.replace(parents=parents)

    def _tell(self, key: jax.Array, genomes: jax.Array, scores: jax.Array,
              state: RegularizedEvolutionState) -> RegularizedEvolutionState:
        """Adds the children to the population; the oldest (or worst) members leave."""
        births = state.count + jnp.arange(self.batch_size, dtype=jnp.int32)
        replace = self._age if self.aging else self._cull
        population, pop_scores, birth = replace(state, genomes, scores, births)
        return state.replace(population=population, scores=pop_scores, birth=birth,
                             count=state.count + self.batch_size)

    def _age(self, state, genomes, scores, births):
        """Ring buffer: child ``k`` overwrites slot ``k mod N``, the oldest member."""
        keep = min(self.batch_size, self.population_size)
        # With a batch larger than the population only its last N children survive; dropping the
        # others up front keeps the scatter free of duplicate indices.
        genomes, scores, births = genomes[-keep:], scores[-keep:], births[-keep:]
        slots = births % self.population_size
        return (
            state.population.at[slots].set(genomes),
            state.scores.at[slots].set(scores),
            state.birth.at[slots].set(births),
        )

    def _cull(self, state, genomes, scores, births):
        """Keeps the best N of population and children (ties: the younger), filled slots first."""
        population = jnp.concatenate([state.population, genomes])
        all_scores = jnp.concatenate([state.scores, scores])
        birth = jnp.concatenate([state.birth, births])
        # lexsort's last key is primary: filled before empty, then score, then youth.
        order = jnp.lexsort((birth, all_scores, birth >= 0))[::-1][: self.population_size]
        return population[order], all_scores[order], birth[order]

