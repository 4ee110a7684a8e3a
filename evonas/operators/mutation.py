"""Mutation of integer genomes: per-gene and single-gene (Real et al. 2019)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from evonas.genomes.space import GenomeSpace


def _shift(key: jax.Array, genomes: jax.Array, upper: jax.Array) -> jax.Array:
    """Each gene moved to a *different* value, uniform over the other ``card - 1`` values.

    Adding an offset in ``1 .. card - 1`` modulo ``card`` reaches every other value exactly once,
    so no rejection loop is needed. Genes of cardinality 1 come back unchanged.
    """
    offset = jax.random.randint(key, genomes.shape, 1, jnp.maximum(upper, 2), dtype=jnp.int32)
    return jnp.where(upper > 1, (genomes + offset) % upper, genomes)


def mutate(
    key: jax.Array, genomes: jax.Array, space: GenomeSpace, rate: float | jax.Array
) -> jax.Array:
    """Per-gene mutation: each gene, with probability ``rate``, takes a different value.

    The new value is uniform over the gene's other values; genes of cardinality 1 never change.

    Args:
        key: a PRNG key.
        genomes: ``int32[P, G]`` genomes inside ``space``.
        space: the genome space.
        rate: the per-gene mutation probability in ``[0, 1]`` (may be traced).

    Returns:
        ``int32[P, G]`` mutated genomes.
    """
    return _mutate(key, jnp.asarray(genomes, jnp.int32), space.upper, rate)


def mutate_one(key: jax.Array, genomes: jax.Array, space: GenomeSpace) -> jax.Array:
    """Single-gene mutation: exactly one gene changes, so a child never equals its parent.

    The gene is uniform among the genes of cardinality > 1 and its new value uniform among its
    other values, as in regularized evolution (Real et al. 2019, "Regularized Evolution for Image
    Classifier Architecture Search", AAAI). In a space where every gene has cardinality 1 the
    genomes come back unchanged (there is nothing else to become).

    Args:
        key: a PRNG key.
        genomes: ``int32[P, G]`` genomes inside ``space``.
        space: the genome space.

    Returns:
        ``int32[P, G]`` children, each differing from its parent in exactly one gene.
    """
    return _mutate_one(key, jnp.asarray(genomes, jnp.int32), space.upper)


# The kernels take the cardinalities as an array, not the space, so one compiled program serves
# every space of the same number of genes.


@jax.jit
def _mutate(key: jax.Array, genomes: jax.Array, upper: jax.Array, rate) -> jax.Array:
    k_flip, k_value = jax.random.split(key)
    flip = jax.random.uniform(k_flip, genomes.shape) < rate
    return jnp.where(flip, _shift(k_value, genomes, upper), genomes)


@jax.jit
def _mutate_one(key: jax.Array, genomes: jax.Array, upper: jax.Array) -> jax.Array:
    # Two uniforms per child (the gene, then its offset): random bits are most of this op's
    # cost when a whole benchmark search runs in one program.
    u = jax.random.uniform(key, genomes.shape[:-1] + (2,))
    mutable = upper > 1
    count = jnp.cumsum(mutable)  # the k-th mutable gene is the first with count > k
    k = jnp.floor(u[..., 0] * count[-1]).astype(jnp.int32)
    gene = jnp.argmax(count > k[..., None], axis=-1)
    card = upper[gene]
    offset = 1 + jnp.minimum(jnp.floor(u[..., 1] * (card - 1)).astype(jnp.int32), card - 2)
    chosen = jax.nn.one_hot(gene, genomes.shape[-1], dtype=jnp.bool_) & mutable
    shifted = (genomes + offset[..., None]) % upper
    return jnp.where(chosen, shifted, genomes)
