"""A generational genetic algorithm with elitism over integer genomes.

Tournament selection, crossover and per-gene mutation (Holland 1975; Goldberg 1989, "Genetic
Algorithms in Search, Optimization and Machine Learning"), as used for NAS by Xie & Yuille 2017,
"Genetic CNN", ICCV.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import struct

from evonas import checks
from evonas.operators import tournament_selection, truncation_selection
from evonas.strategies._breeding import Generational
from evonas.strategies.base import State, StrategyBase

_OWNER = "GeneticAlgorithm"


@struct.dataclass
class GeneticAlgorithmState(State):
    """The current (evaluated) population (and the base's best so far)."""

    population: jax.Array  # int32[N, G]
    scores: jax.Array  # float32[N], higher is better, -inf = failed (or not yet evaluated)
    # int32[N]: each member's evaluation id (the order it was told in; -1 before the first tell).
    ids: jax.Array
    # int32[N, 2]: per child of the latest ask, the ids of its two parents (second -1 when it
    # copied one parent; both -1 for a random child).
    parents: jax.Array


@dataclasses.dataclass(frozen=True)
class GeneticAlgorithm(Generational, StrategyBase):
    """Generational GA: ``population_size`` children per ``ask``, ``num_elites`` survive.

    Args: those of :class:`~evonas.strategies._breeding.Generational` (space, population size,
    crossover, rates), and

        tournament_size: contestants per parent tournament (with replacement).
        num_elites: best members of the previous population kept unchanged (0 allowed).
        maximize: whether higher fitness is better.
    """

    tournament_size: int = 3
    num_elites: int = 2
    maximize: bool = True

    def __post_init__(self):
        super().__post_init__()
        self.check_variation()
        checks.positive_int(f"{_OWNER}.tournament_size", self.tournament_size)
        elites = self.num_elites
        if isinstance(elites, bool) or not isinstance(elites, int):
            raise ValueError(f"{_OWNER}: num_elites must be an integer; got {elites!r}")
        if not 0 <= elites < self.population_size:
            raise ValueError(
                f"{_OWNER}: num_elites must be in 0..{self.population_size - 1} "
                f"(below population_size); got {elites}"
            )

    def _init(self, key: jax.Array) -> GeneticAlgorithmState:
        """An empty state; the first ``ask`` is random (``key`` is unused)."""
        del key
        n, g = self.population_size, self.space.num_genes
        return GeneticAlgorithmState(
            **self.initial(),
            population=jnp.zeros((n, g), jnp.int32),
            scores=jnp.full((n,), -jnp.inf, jnp.float32),
            ids=jnp.full((n,), -1, jnp.int32),
            parents=jnp.full((n, 2), -1, jnp.int32),
        )

    def _ask(
        self, key: jax.Array, state: GeneticAlgorithmState
    ) -> tuple[jax.Array, GeneticAlgorithmState]:
        """``population_size`` children: random at first, then selection, crossover, mutation."""
        n = self.population_size
        k_select, k_cross, k_do, k_mutate, k_random = jax.random.split(key, 5)
        parents = tournament_selection(k_select, state.scores, 2 * n, self.tournament_size)
        # A failed parent (possible only if a tournament saw no finite score) is replaced by a
        # random genome, so a failed individual never passes its genes on.
        fresh = self.space.sample(k_random, 2 * n)
        children, lineage = self.children((k_cross, k_do, k_mutate), parents,
                                          jnp.isneginf(state.scores[parents]), fresh, state)
        return children, state.replace(parents=lineage)

    def _tell(self, key: jax.Array, genomes: jax.Array, scores: jax.Array,
              state: GeneticAlgorithmState) -> GeneticAlgorithmState:
        """Next population: the ``num_elites`` best old members plus the best children."""
        elites = truncation_selection(state.scores, self.num_elites)
        best_children = truncation_selection(scores, self.population_size - self.num_elites)
        population = jnp.concatenate([state.population[elites], genomes[best_children]])
        pop_scores = jnp.concatenate([state.scores[elites], scores[best_children]])
        child_ids = state.generation * self.population_size + jnp.arange(
            self.population_size, dtype=jnp.int32
        )
        ids = jnp.concatenate([state.ids[elites], child_ids[best_children]])
        # After the first tell there is no previous population to take elites from.
        first = state.generation == 0
        return state.replace(
            population=jnp.where(first, genomes, population),
            scores=jnp.where(first, scores, pop_scores),
            ids=jnp.where(first, child_ids, ids).astype(jnp.int32),
        )
