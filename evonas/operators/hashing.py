"""Genome hashing and in-batch de-duplication, on device."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

# One seed per output word; any distinct constants would do.
_SEEDS = (np.uint32(0x9E3779B9), np.uint32(0x7F4A7C15))


def _fmix32(h: jax.Array) -> jax.Array:
    """The murmur3 32-bit finalizer: a bijective mixer with full avalanche."""
    h = h ^ (h >> 16)
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> 13)
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> 16)


def _hash_word(genes: jax.Array, seed: np.uint32) -> jax.Array:
    num_genes = genes.shape[-1]
    position = _fmix32(jnp.arange(num_genes, dtype=jnp.uint32) * np.uint32(0x27D4EB2F) + seed)
    # Each term is a bijection of the gene value at that position, so genomes that differ in one
    # gene always hash apart; summing (not chaining) keeps it one vectorised op over genes.
    terms = _fmix32(_fmix32(genes ^ position) + seed)
    total = jnp.sum(terms, axis=-1, dtype=jnp.uint32)
    return _fmix32(total ^ np.uint32(num_genes) ^ seed)


@jax.jit
def genome_hash(genomes: jax.Array) -> jax.Array:
    """A 64-bit hash of each genome, as two ``uint32`` words.

    Each word mixes every gene (with its position) through the murmur3 finalizer under its own
    seed. Equal genomes hash equal; distinct ones collide with probability about ``2**-64``.

    Args:
        genomes: ``int[..., G]`` genomes.

    Returns:
        ``uint32[..., 2]``.
    """
    genes = jax.lax.bitcast_convert_type(jnp.asarray(genomes, jnp.int32), jnp.uint32)
    return jnp.stack([_hash_word(genes, seed) for seed in _SEEDS], axis=-1)


@jax.jit
def first_occurrence(genomes: jax.Array) -> jax.Array:
    """``bool[P]``: True for the first copy of each distinct genome in the batch.

    Exact (compares genes, not hashes): a stable lexicographic sort puts equal genomes next to
    each other in order of appearance, and only the head of each run is kept.
    """
    genomes = jnp.asarray(genomes, jnp.int32)
    num = genomes.shape[0]
    # lexsort's last key is the primary one: genes left to right, then the index as tie-breaker.
    keys = jnp.concatenate([jnp.arange(num)[None], genomes.T[::-1]], axis=0)
    order = jnp.lexsort(keys)
    ordered = genomes[order]
    head = jnp.concatenate(
        [jnp.ones((1,), bool), jnp.any(ordered[1:] != ordered[:-1], axis=-1)]
    )
    return jnp.zeros((num,), bool).at[order].set(head)
