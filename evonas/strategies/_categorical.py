"""Per-gene categorical arrays shared by the model-based, reinforcement and distribution-based
strategies: genes padded to the largest cardinality, with the padding masked out."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from evonas.genomes.space import GenomeSpace


def valid_mask(space: GenomeSpace) -> np.ndarray:
    """``bool[G, K]`` (``K`` the largest cardinality): True where value ``k`` exists for gene
    ``g``."""
    width = max(space.cardinalities)
    return np.arange(width)[None, :] < np.asarray(space.cardinalities)[:, None]


def uniform(space: GenomeSpace) -> np.ndarray:
    """``float32[G, K]``: each gene's uniform distribution over its values (0 on padding)."""
    mask = valid_mask(space)
    return (mask / mask.sum(1, keepdims=True)).astype(np.float32)


def floored(probabilities: Any, space: GenomeSpace, floor: float) -> Any:
    """``probabilities`` (``[G, K]``) mixed with the uniform distribution so that each value
    keeps about ``floor`` at least (a hand-over's or a warm start's prior: nothing ruled out)."""
    width = np.asarray(space.cardinalities, np.float32)[:, None]
    mix = np.minimum(floor * width, 1.0)
    return (1.0 - mix) * probabilities + mix * uniform(space)


def one_hot(genomes: jax.Array, space: GenomeSpace) -> jax.Array:
    """``float32[..., G, K]``: each gene's value as a one-hot row over the padded values."""
    return jax.nn.one_hot(genomes, max(space.cardinalities), dtype=jnp.float32)


def features(genomes: jax.Array, space: GenomeSpace) -> jax.Array:
    """``float32[..., F]``, ``F = sum(cardinalities)``: the concatenated one-hot encoding of each
    genome (padding dropped), the input of a surrogate model."""
    flat = one_hot(genomes, space).reshape(*jnp.shape(genomes)[:-1], -1)
    return flat[..., np.flatnonzero(valid_mask(space).reshape(-1))]


def masked_logits(logits: jax.Array, space: GenomeSpace) -> jax.Array:
    """``logits`` with the padded values at ``-inf``, so they are never sampled."""
    return jnp.where(valid_mask(space), logits, -jnp.inf)


def sample(key: jax.Array, probabilities: jax.Array, n: int, space: GenomeSpace) -> jax.Array:
    """``int32[n, G]`` genomes, each gene drawn from its row of ``probabilities`` (``[G, K]``)."""
    logits = jnp.log(jnp.where(valid_mask(space), probabilities, 0.0))
    return jax.random.categorical(key, logits, shape=(n, space.num_genes)).astype(jnp.int32)


def entropy(probabilities: jax.Array) -> jax.Array:
    """``float32[G]``: each gene's entropy (nats); padded zeros contribute nothing."""
    p = jnp.asarray(probabilities)
    return -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0), axis=-1)


def ranking_utility(scores: jax.Array, quantile: float = 0.25) -> jax.Array:
    """Ranking-based utility of a batch (higher score is better), as in IGO and ASNG: the best
    ``mu = ceil(quantile * B)`` get ``+1/mu``, the worst ``mu`` get ``-1/mu``, the rest 0; tied
    scores share the mean of their utilities; ``-inf`` (failed) always counts among the worst.

    Returns:
        ``float32[B]``.
    """
    batch = scores.shape[0]
    mu = int(np.ceil(quantile * batch))
    by_rank = np.zeros(batch, np.float32)
    by_rank[:mu] += 1.0 / mu
    by_rank[batch - mu:] -= 1.0 / mu
    by_rank = jnp.asarray(by_rank)
    # rank 0 = best; ties share the mean utility of the ranks they span.
    better = jnp.sum(scores[None, :] > scores[:, None], axis=1)  # strictly better than me
    equal = jnp.sum(scores[None, :] == scores[:, None], axis=1)
    positions = jnp.arange(batch)
    end = (better + equal)[:, None]
    span = (positions[None, :] >= better[:, None]) & (positions[None, :] < end)
    return jnp.sum(jnp.where(span, by_rank[None, :], 0.0), axis=1) / equal
