"""Children of selected parents, shared by the genetic algorithm and NSGA-II."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from evonas.genomes.space import GenomeSpace
from evonas.operators import CROSSOVERS, mutate


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
