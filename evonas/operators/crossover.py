"""Recombination of two parent populations: uniform, one-point and two-point crossover.

Child ``i`` recombines ``a[i]`` and ``b[i]``; the operators need no space because every gene of a
child is copied from one of its parents, so children of in-space parents are in the space.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp


def _check_parents(a: jax.Array, b: jax.Array) -> tuple[jax.Array, jax.Array]:
    a, b = jnp.asarray(a, jnp.int32), jnp.asarray(b, jnp.int32)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(
            f"crossover needs two int32[P, G] parent arrays of the same shape; "
            f"got {a.shape} and {b.shape}"
        )
    return a, b


@jax.jit
def uniform_crossover(
    key: jax.Array, a: jax.Array, b: jax.Array, swap_prob: float | jax.Array = 0.5
) -> jax.Array:
    """Uniform crossover (Syswerda 1989): each gene comes from ``b`` with probability ``swap_prob``.

    Returns:
        ``int32[P, G]`` children.
    """
    a, b = _check_parents(a, b)
    from_b = jax.random.uniform(key, a.shape) < swap_prob
    return jnp.where(from_b, b, a)


@jax.jit
def one_point_crossover(key: jax.Array, a: jax.Array, b: jax.Array) -> jax.Array:
    """One-point crossover: genes before a cut point from ``a``, from the cut on from ``b``.

    The cut is uniform in ``1 .. G - 1``, so with ``G > 1`` each child takes at least one gene from
    each parent; with ``G == 1`` the child is a copy of ``a``.

    Returns:
        ``int32[P, G]`` children.
    """
    a, b = _check_parents(a, b)
    num_genes = a.shape[1]
    cut = jax.random.randint(key, (a.shape[0], 1), 1, max(num_genes, 2))
    return jnp.where(jnp.arange(num_genes) >= cut, b, a)


@jax.jit
def two_point_crossover(key: jax.Array, a: jax.Array, b: jax.Array) -> jax.Array:
    """Two-point crossover: one contiguous segment ``[lo, hi)`` from ``b``, the rest from ``a``.

    The two cut points are distinct and uniform among the ``G + 1`` gene boundaries, so the
    segment is never empty (it may cover the whole genome, giving a copy of ``b``).

    Returns:
        ``int32[P, G]`` children.
    """
    a, b = _check_parents(a, b)
    num_pairs, num_genes = a.shape
    k_first, k_second = jax.random.split(key)
    first = jax.random.randint(k_first, (num_pairs, 1), 0, num_genes + 1)
    # Drawing from G boundaries and skipping `first` makes the second cut uniform among the others.
    second = jax.random.randint(k_second, (num_pairs, 1), 0, num_genes)
    second = second + (second >= first)
    lo, hi = jnp.minimum(first, second), jnp.maximum(first, second)
    genes = jnp.arange(num_genes)
    return jnp.where((genes >= lo) & (genes < hi), b, a)


Crossover = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]

CROSSOVERS: dict[str, Crossover] = {
    "uniform": uniform_crossover,
    "one_point": one_point_crossover,
    "two_point": two_point_crossover,
}
