"""What the genetic algorithm and NSGA-II share: a whole population per ask, children of
selected parents by crossover and per-gene mutation."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from evonas import checks
from evonas.genomes.space import GenomeSpace
from evonas.operators import CROSSOVERS, mutate


@dataclasses.dataclass(frozen=True)
class Generational:
    """The settings of a generational strategy: ``population_size`` children per ``ask``.

    Attributes:
        space: the genome space.
        population_size: individuals per generation (and genomes per ``ask``).
        crossover: one of ``"uniform"``, ``"one_point"``, ``"two_point"``.
        crossover_rate: probability that a child recombines two parents (else it copies one).
        mutation_rate: per-gene mutation probability; ``None`` means ``1 / num_genes``.
    """

    space: GenomeSpace
    population_size: int = 32
    crossover: str = "uniform"
    crossover_rate: float = 0.9
    mutation_rate: float | None = None

    def check_variation(self) -> None:
        """Checks the population size and the variation settings (rates as floats)."""
        owner = type(self).__name__
        checks.positive_int(f"{owner}.population_size", self.population_size)
        if self.crossover not in CROSSOVERS:
            raise ValueError(
                f"{owner}: crossover must be one of {sorted(CROSSOVERS)}; got {self.crossover!r}")
        object.__setattr__(self, "crossover_rate",
                           checks.rate(f"{owner}.crossover_rate", self.crossover_rate))
        if self.mutation_rate is not None:
            object.__setattr__(self, "mutation_rate",
                               checks.rate(f"{owner}.mutation_rate", self.mutation_rate))

    @property
    def batch_size(self) -> int:
        """Every ``ask`` returns a whole generation."""
        return self.population_size

    @property
    def effective_mutation_rate(self) -> float:
        """``mutation_rate``, or ``1 / num_genes`` (one gene per child on average) when unset."""
        if self.mutation_rate is None:
            return 1.0 / self.space.num_genes
        return self.mutation_rate

    def children(self, keys: tuple[jax.Array, jax.Array, jax.Array], winners: jax.Array,
                 failed: jax.Array, fresh: jax.Array, state: Any) -> tuple[jax.Array, jax.Array]:
        """:func:`breed` of the state's population with these settings."""
        return breed(keys, winners, failed, fresh, state.population, state.ids, state.generation,
                     self.space, self.crossover, self.crossover_rate,
                     self.effective_mutation_rate)


def breed(keys: tuple[jax.Array, jax.Array, jax.Array], winners: jax.Array, failed: jax.Array,
          fresh: jax.Array, population: jax.Array, ids: jax.Array, generation: jax.Array,
          space: GenomeSpace, crossover: str, crossover_rate: float, mutation_rate: float
          ) -> tuple[jax.Array, jax.Array]:
    """``N`` children of ``2N`` selected parents: pairs ``(winners[i], winners[N + i])``
    recombined with probability ``crossover_rate``, then mutated per gene.

    A failed winner is replaced by the random genome ``fresh[i]`` (id -1), so a failed
    individual never passes its genes on; in generation 0 every child is ``fresh[:N]``.

    Args:
        keys: ``(crossover, recombine-or-copy, mutation)`` keys.
        winners: ``int32[2N]`` population indices of the parents.
        failed: ``bool[2N]``, True where a winner failed.
        fresh: ``int32[2N, G]`` random genomes.
        population, ids: the population ``int32[P, G]`` and its evaluation ids ``int32[P]``.
        generation: tells so far.

    Returns:
        ``(children int32[N, G], parents int32[N, 2])``: each child's parent ids (the second -1
        when it copied one parent; both -1 for a random child).
    """
    k_cross, k_do, k_mutate = keys
    n = winners.shape[0] // 2
    first = generation == 0
    failed = failed | first
    parent_ids = jnp.where(failed, -1, ids[winners])
    parents = jnp.where(failed[:, None], fresh, population[winners])
    a, b = parents[:n], parents[n:]
    recombine = jax.random.uniform(k_do, (n, 1)) < crossover_rate
    children = jnp.where(recombine, CROSSOVERS[crossover](k_cross, a, b), a)
    children = mutate(k_mutate, children, space, mutation_rate)
    lineage = jnp.stack(
        [parent_ids[:n], jnp.where(recombine[:, 0], parent_ids[n:], -1)], axis=1
    ).astype(jnp.int32)
    # The first generation is uniform: no selection or variation has happened yet.
    return jnp.where(first, fresh[:n], children), jnp.where(first, -1, lineage)
