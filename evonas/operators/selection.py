"""Selection on scores where higher is better: tournament and truncation.

Scores of failed individuals are ``-inf`` (strategies turn NaN fitness into it); NaN is read as
``-inf`` too, so a failed individual never wins against one with a finite score.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp


def _clean(scores: jax.Array) -> jax.Array:
    scores = jnp.asarray(scores, jnp.float32)
    return jnp.where(jnp.isnan(scores), -jnp.inf, scores)


@partial(jax.jit, static_argnames=("num", "tournament_size"))
def tournament_contestants(
    key: jax.Array, num_candidates: int | jax.Array, num: int, tournament_size: int
) -> jax.Array:
    """The contestants of ``num`` tournaments, drawn uniformly with replacement.

    Args:
        key: a PRNG key.
        num_candidates: contestants are drawn from ``0 .. num_candidates - 1`` (may be traced,
            e.g. the filled part of a population; ``0`` gives index 0).
        num: how many tournaments.
        tournament_size: contestants per tournament.

    Returns:
        ``int32[num, tournament_size]`` indices.
    """
    return jax.random.randint(key, (num, tournament_size), 0, num_candidates, dtype=jnp.int32)


@jax.jit
def tournament_winners(scores: jax.Array, contestants: jax.Array) -> jax.Array:
    """The best contestant of each tournament (the first one on ties): ``int32[num]``."""
    contest = _clean(scores)[contestants]
    best = jnp.argmax(contest, axis=-1)
    return jnp.take_along_axis(contestants, best[..., None], axis=-1)[..., 0].astype(jnp.int32)


@partial(jax.jit, static_argnames=("num", "tournament_size"))
def tournament_selection(
    key: jax.Array, scores: jax.Array, num: int, tournament_size: int
) -> jax.Array:
    """Tournament selection (Goldberg & Deb 1991): ``num`` winners of independent tournaments.

    Args:
        key: a PRNG key.
        scores: ``float32[P]``, higher is better; ``-inf`` or NaN for failed individuals.
        num: how many individuals to select.
        tournament_size: contestants per tournament, drawn uniformly with replacement.

    Returns:
        ``int32[num]`` indices into ``scores``.
    """
    contestants = tournament_contestants(key, scores.shape[0], num, tournament_size)
    return tournament_winners(scores, contestants)


@partial(jax.jit, static_argnames=("num",))
def truncation_selection(scores: jax.Array, num: int) -> jax.Array:
    """The indices of the ``num`` best scores, best first (lower index first on ties).

    Returns:
        ``int32[num]`` indices into ``scores``.
    """
    if not 0 <= num <= scores.shape[0]:
        raise ValueError(
            f"truncation_selection: num must be in 0..{scores.shape[0]} (the number of scores); "
            f"got {num}"
        )
    order = jnp.argsort(-_clean(scores), stable=True)
    return order[:num].astype(jnp.int32)
