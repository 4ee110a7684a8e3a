"""NSGA-II: elitist multi-objective evolution by non-dominated sorting and crowding distance.

Deb, Pratap, Agarwal & Meyarivan 2002, "A Fast and Elitist Multiobjective Genetic Algorithm:
NSGA-II", IEEE Transactions on Evolutionary Computation 6(2). Parents are chosen by binary
tournaments under the crowded comparison (lower front first, then larger crowding distance);
children by the foundation's crossover and per-gene mutation; the next population is the best
``N`` of parents and children together, filled front by front, the last front cut by crowding
distance.

Multi-objective convention: ``maximize`` is a tuple, one bool per objective, and ``tell`` takes
fitness ``float32[N, M]`` in the user's units. A row with a NaN anywhere is failed or infeasible:
it ranks below every feasible row, never becomes a parent and is never on the front.
"""

from __future__ import annotations

import dataclasses
from functools import partial

import jax
import jax.numpy as jnp
from flax import struct

from evonas.operators import crowded_tournament, crowding_distance, non_dominated_rank
from evonas.strategies._breeding import Generational
from evonas.strategies.base import Counted, MultiObjectiveBase


@struct.dataclass
class NSGA2State(Counted):
    """The current population with its fronts, and the lineage of the latest ask."""

    population: jax.Array  # int32[N, G]
    objectives: jax.Array  # float32[N, M], the user's units; NaN = failed (or empty slot)
    rank: jax.Array  # int32[N], front index among parents + children of the last tell
    crowding: jax.Array  # float32[N], crowding distance within that front
    # int32[N]: each member's evaluation id (the order it was told in; -1 = empty slot).
    ids: jax.Array
    # int32[N, 2]: per child of the latest ask, the ids of its two parents (second -1 when it
    # copied one parent; both -1 for a random child).
    parents: jax.Array


@dataclasses.dataclass(frozen=True)
class NSGA2(Generational, MultiObjectiveBase):
    """NSGA-II over integer genomes: ``population_size`` children per ``ask``.

    Args: those of :class:`~evonas.strategies._breeding.Generational` (space, population size,
    crossover, rates), and

        maximize: one bool per objective: ``True`` where higher is better.
    """

    maximize: tuple[bool, ...] = (True, False)

    def __post_init__(self):
        super().__post_init__()
        self.check_variation()

    @property
    def num_objectives(self) -> int:
        """``M``, the columns of the fitness ``tell`` takes."""
        return len(self.maximize)

    def _init(self, key: jax.Array) -> NSGA2State:
        """An empty population; the first ``ask`` is random (``key`` is unused)."""
        del key
        n, g, m = self.population_size, self.space.num_genes, self.num_objectives
        return NSGA2State(
            population=jnp.zeros((n, g), jnp.int32),
            objectives=jnp.full((n, m), jnp.nan, jnp.float32),
            rank=jnp.zeros((n,), jnp.int32),
            crowding=jnp.zeros((n,), jnp.float32),
            ids=jnp.full((n,), -1, jnp.int32),
            parents=jnp.full((n, 2), -1, jnp.int32),
            generation=jnp.int32(0),
        )

    def _ask(self, key: jax.Array, state: NSGA2State) -> tuple[jax.Array, NSGA2State]:
        """``population_size`` children: uniform at first, then crowded binary tournaments,
        crossover and per-gene mutation. The returned state's ``parents`` holds their lineage."""
        n = self.population_size
        k_select, k_cross, k_do, k_mutate, k_random = jax.random.split(key, 5)
        winners = crowded_tournament(k_select, state.rank, state.crowding, 2 * n)
        # A failed winner (possible only when fewer than N feasible rows exist) is replaced by a
        # random genome, so an infeasible individual never passes its genes on.
        fresh = self.space.sample(k_random, 2 * n)
        children, lineage = self.children((k_cross, k_do, k_mutate), winners,
                                          jnp.any(jnp.isnan(state.objectives[winners]), axis=1),
                                          fresh, state)
        return children, state.replace(parents=lineage)

    def _tell(self, key: jax.Array, genomes: jax.Array, fitness: jax.Array,
              state: NSGA2State) -> NSGA2State:
        """Next population: the best ``N`` of population and children by (rank, crowding),
        whose ``rank`` and ``crowding`` are those computed among the ``2N``; ``fitness`` is
        ``float32[N, M]`` in the user's units (NaN: failed)."""
        n = self.population_size
        child_ids = state.generation * n + jnp.arange(n, dtype=jnp.int32)
        genomes_all = jnp.concatenate([state.population, genomes])
        objectives = jnp.concatenate([state.objectives, fitness])
        ids = jnp.concatenate([state.ids, child_ids])
        rank = non_dominated_rank(objectives, self.maximize)
        crowding = crowding_distance(objectives, rank)
        survivors = self.survivors(rank, crowding, ids < 0)
        return state.replace(
            population=genomes_all[survivors],
            objectives=objectives[survivors],
            rank=rank[survivors],
            crowding=crowding[survivors],
            ids=ids[survivors].astype(jnp.int32),
        )

    def survivors(self, rank: jax.Array, crowding: jax.Array, empty: jax.Array) -> jax.Array:
        """Indices of the ``N`` best rows by (filled first, rank ascending, crowding descending,
        row order): whole fronts, the last one cut by crowding distance. ``int32[N]``."""
        index = jnp.arange(rank.shape[0])
        # lexsort's last key is primary.
        order = jnp.lexsort((index, -crowding, rank, empty))
        return order[: self.population_size].astype(jnp.int32)

    @partial(jax.jit, static_argnums=0)
    def front(self, state: NSGA2State) -> tuple[jax.Array, jax.Array, jax.Array]:
        """The current population's non-dominated set, as fixed-shape arrays and a mask.

        Returns:
            ``(genomes int32[N, G], objectives float32[N, M], mask bool[N])``: the rows where
            ``mask`` is True are the front (feasible, rank 0; duplicates all kept).
        """
        feasible = ~jnp.any(jnp.isnan(state.objectives), axis=1)
        return state.population, state.objectives, feasible & (state.rank == 0)

