"""Non-dominated sorting on the jit side: rank, crowding distance, crowded tournament (NSGA-II).

Deb, Pratap, Agarwal & Meyarivan 2002, "A Fast and Elitist Multiobjective Genetic Algorithm:
NSGA-II", IEEE Transactions on Evolutionary Computation 6(2). Vectorized: the domination relation
is one ``[N, N]`` matrix and the fronts are peeled off it in a ``lax.while_loop``; crowding sorts
every front at once (one lexicographic sort by front, then value). Pure and jit-able; shapes
depend only on the number of rows and objectives.

Rows with a NaN in any objective are failed or infeasible: they dominate nothing, are dominated
by nothing, and share one rank below every feasible row (crowding 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import jax
import jax.numpy as jnp


def _maximize_tuple(maximize: bool | Sequence[bool], num_objectives: int, owner: str):
    mask = (maximize,) * num_objectives if isinstance(maximize, bool) else tuple(maximize)
    if len(mask) != num_objectives or not all(isinstance(m, bool) for m in mask):
        raise ValueError(
            f"{owner}: maximize must be one True/False per objective ({num_objectives} "
            f"objectives); got {maximize!r}"
        )
    return mask


def _objectives(objectives: jax.Array, owner: str) -> jax.Array:
    objectives = jnp.asarray(objectives, jnp.float32)
    if objectives.ndim != 2 or objectives.shape[1] < 1:
        raise ValueError(
            f"{owner} needs objectives of shape [N, M] (one row per individual, one column per "
            f"objective); got {objectives.shape}"
        )
    return objectives


def non_dominated_rank(objectives: jax.Array, maximize: bool | Sequence[bool]) -> jax.Array:
    """Fast non-dominated sorting (Deb et al. 2002): the Pareto front index of every row.

    Rank 0 is the non-dominated set, rank 1 what is non-dominated once rank 0 is removed, and so
    on. A row dominates another when it is no worse in every objective and better in one; equal
    rows share a rank. Rows with a NaN all get the same rank, one past the last feasible front
    (0 when every row has a NaN), so they rank below every feasible row.

    Args:
        objectives: ``float32[N, M]``, one row per individual, one column per objective.
        maximize: one bool per objective (``True``: higher is better), or one bool for all.

    Returns:
        ``int32[N]`` ranks.

    Raises:
        ValueError: for a wrong shape, or a ``maximize`` that is not one bool per objective.
    """
    objectives = _objectives(objectives, "non_dominated_rank")
    mask = _maximize_tuple(maximize, objectives.shape[1], "non_dominated_rank")
    return _rank(objectives, mask)


@partial(jax.jit, static_argnums=1)
def _rank(objectives: jax.Array, maximize: tuple[bool, ...]) -> jax.Array:
    cost = jnp.where(jnp.asarray(maximize), -objectives, objectives)  # minimised everywhere
    failed = jnp.any(jnp.isnan(cost), axis=1)
    no_worse = jnp.all(cost[:, None, :] <= cost[None, :, :], axis=-1)
    better = jnp.any(cost[:, None, :] < cost[None, :, :], axis=-1)
    # dominates[i, j]: row i dominates row j.
    dominates = no_worse & better & ~failed[:, None] & ~failed[None, :]
    dominates = dominates.astype(jnp.int32)
    num = objectives.shape[0]

    def peel(carry):
        front, remaining, dominators, rank = carry
        current = remaining & (dominators == 0)
        rank = jnp.where(current, front, rank)
        # Removing the current front: its members no longer count as dominators.
        dominators = dominators - current.astype(jnp.int32) @ dominates
        return front + 1, remaining & ~current, dominators, rank

    carry = (jnp.int32(0), ~failed, jnp.sum(dominates, axis=0), jnp.zeros((num,), jnp.int32))
    fronts, _, _, rank = jax.lax.while_loop(lambda c: jnp.any(c[1]), peel, carry)
    return jnp.where(failed, fronts, rank).astype(jnp.int32)


@jax.jit
def crowding_distance(objectives: jax.Array, rank: jax.Array) -> jax.Array:
    """Crowding distance (Deb et al. 2002) of every row within its front.

    Per front and per objective, the rows are sorted by value; the first and last get ``inf``
    and every other row the gap between its two neighbours divided by the front's range in that
    objective (0 where the range is 0). The distances are summed over objectives. Equal values
    keep row order, so of several equal rows only the first and last in index order are
    boundaries. Rows with a NaN get 0. Direction does not matter: a gap is a gap.

    Args:
        objectives: ``float32[N, M]``.
        rank: ``int32[N]``, each row's front (e.g. from :func:`non_dominated_rank`).

    Returns:
        ``float32[N]`` distances (larger = more isolated, preferred).

    Raises:
        ValueError: when the shapes disagree.
    """
    objectives = _objectives(objectives, "crowding_distance")
    rank = jnp.asarray(rank, jnp.int32)
    if rank.shape != objectives.shape[:1]:
        raise ValueError(
            f"crowding_distance needs one rank per row: objectives {objectives.shape}, rank "
            f"{rank.shape}"
        )
    failed = jnp.any(jnp.isnan(objectives), axis=1)
    values = jnp.where(jnp.isnan(objectives), 0.0, objectives)
    num = objectives.shape[0]
    index = jnp.arange(num)

    def one_objective(value: jax.Array) -> jax.Array:
        # lexsort's last key is primary: by front, then value, then row index.
        order = jnp.lexsort((index, value, rank))
        front, ordered = rank[order], value[order]
        first = jnp.concatenate([jnp.ones((1,), bool), front[1:] != front[:-1]])
        last = jnp.concatenate([front[1:] != front[:-1], jnp.ones((1,), bool)])
        # Each front is a contiguous run; its extreme values sit at the run's two ends.
        start = jax.lax.cummax(jnp.where(first, index, 0))
        end = jax.lax.cummin(jnp.where(last, index, num - 1), reverse=True)
        span = ordered[end] - ordered[start]
        gap = jnp.roll(ordered, -1) - jnp.roll(ordered, 1)
        inner = jnp.where(span > 0, gap / jnp.where(span > 0, span, 1.0), 0.0)
        inner = jnp.where(jnp.isnan(inner), 0.0, inner)  # inf - inf where values are infinite
        distance = jnp.where(first | last, jnp.inf, inner)
        return jnp.zeros((num,), jnp.float32).at[order].set(distance)

    distance = jnp.sum(jax.vmap(one_objective, in_axes=1, out_axes=1)(values), axis=1)
    return jnp.where(failed, 0.0, distance).astype(jnp.float32)


@partial(jax.jit, static_argnames=("num",))
def crowded_tournament(
    key: jax.Array, rank: jax.Array, crowding: jax.Array, num: int
) -> jax.Array:
    """Binary tournaments under the crowded-comparison operator (Deb et al. 2002).

    Each tournament draws two distinct rows uniformly (the same row twice only when there is
    one); the lower rank wins, then the larger crowding distance, then the first drawn.

    Args:
        key: a PRNG key.
        rank: ``int32[P]`` front index per row (lower is better).
        crowding: ``float32[P]`` crowding distance per row (larger is better).
        num: how many tournaments.

    Returns:
        ``int32[num]`` winner indices.
    """
    rank = jnp.asarray(rank, jnp.int32)
    crowding = jnp.asarray(crowding, jnp.float32)
    size = rank.shape[0]
    k_first, k_second = jax.random.split(key)
    a = jax.random.randint(k_first, (num,), 0, size, dtype=jnp.int32)
    # An offset in 1 .. P-1 modulo P reaches every other row exactly once.
    offset = jax.random.randint(k_second, (num,), 1, max(size, 2), dtype=jnp.int32)
    b = (a + offset) % size
    a_wins = (rank[a] < rank[b]) | ((rank[a] == rank[b]) & (crowding[a] >= crowding[b]))
    return jnp.where(a_wins, a, b).astype(jnp.int32)
