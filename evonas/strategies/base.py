"""The ``Strategy`` protocol and the helpers every strategy shares.

A strategy has the evosax shape over integer genomes::

    state = strategy.init(key)
    genomes, state = strategy.ask(key, state)        # int32[batch_size, G]
    state = strategy.tell(genomes, fitness, state)   # fitness: float32[batch_size]

``state`` is an immutable pytree (a ``flax.struct.dataclass``); all three methods are pure and
jit-able, so a whole search on a tabular benchmark is one ``lax.scan`` and independent runs one
``vmap`` (``evonas.strategies.search``). Hyper-parameters and shapes live on the (hashable,
frozen) strategy instance, which is a static argument of every jitted method.

Direction is explicit: ``maximize=True`` (the default: fitness is an accuracy) means higher fitness
is better. Internally every built-in strategy works on a *score* where higher is better and a
failed (NaN) evaluation scores ``-inf`` (:func:`to_score`), so it can never become the best or a
parent. A multi-objective strategy has ``maximize`` as a tuple, one bool per objective, and takes
fitness ``float32[B, M]`` (:func:`num_objectives`).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import jax
import jax.numpy as jnp

from evonas.genomes.space import GenomeSpace


@runtime_checkable
class Strategy(Protocol):
    """``init`` / ``ask`` / ``tell`` over an immutable state pytree.

    Implement it as a frozen dataclass (hashable: it is a static jit argument) whose three
    methods are pure functions of their arguments, decorated with
    ``functools.partial(jax.jit, static_argnums=0)``. They run inside ``jax.jit``,
    ``jax.lax.scan`` and ``jax.vmap`` (``run_searches`` vmaps whole searches over seeds), so:
    no Python branching on traced values, no host callbacks, and every array shape fixed by the
    instance's hyper-parameters, never by the values in ``state``.

    Attributes:
        space: the :class:`GenomeSpace` searched.
        maximize: ``True`` when higher fitness is better; for a multi-objective strategy a tuple
            with one bool per objective.
        batch_size: how many genomes one ``ask`` returns (a property is fine).

    Conventions the experiment runner and the report rely on (optional, but recommended):

    * the state has ``best_genome`` (``int32[G]``) and ``best_fitness`` (``float32``, in the
      user's direction; the worst value before any success) and ``generation`` (``int32``,
      the number of tells);
    * after ``ask``, ``state.parents`` holds each asked genome's parent ids, ``int32[B]`` or
      ``int32[B, k]`` (-1 where a genome has none), for the lineage in the report. An id is
      the order in which the genome was told, counting from 0 over the whole search;
    * a strategy that keeps a distribution over genomes exposes it as ``state.probabilities``
      (``float32[G, K]``, gene ``g``'s probability of value ``k``, ``K`` the largest
      cardinality): the history keeps it per generation and the report shows it as what the
      search believes (:func:`beliefs`).
    """

    space: GenomeSpace
    maximize: bool

    @property
    def batch_size(self) -> int:
        """How many genomes one ``ask`` returns."""
        ...

    def init(self, key: jax.Array) -> Any:
        """A fresh search state.

        Args:
            key: a ``jax.random`` key (a strategy that needs no randomness ignores it).

        Returns:
            The state pytree: arrays (and keys) only, fixed shapes.
        """
        ...

    def ask(self, key: jax.Array, state: Any) -> tuple[jax.Array, Any]:
        """The next genomes to evaluate.

        Args:
            key: a ``jax.random`` key, fresh for every ask.
            state: the state the last ``init`` or ``tell`` returned.

        Returns:
            ``(genomes, state)``: ``int32[batch_size, G]`` genomes inside ``space`` (duplicates
            allowed: the caller de-duplicates), and the state to pass to ``tell``.
        """
        ...

    def tell(self, genomes: jax.Array, fitness: jax.Array, state: Any) -> Any:
        """Learns from the evaluated genomes of the last ``ask``.

        Args:
            genomes: ``int32[batch_size, G]``, exactly what the last ``ask`` returned.
            fitness: ``float32[batch_size]`` in the user's direction (``float32[batch_size, M]``
                for a multi-objective strategy); NaN marks a failed or infeasible evaluation,
                which must never become the best or a parent.
            state: the state the last ``ask`` returned.

        Returns:
            The new state.
        """
        ...


# -- scores and the best so far ---------------------------------------------------------------


def to_score(fitness: jax.Array, maximize: bool) -> jax.Array:
    """Fitness as a higher-is-better score; NaN (a failed evaluation) becomes ``-inf``."""
    fitness = jnp.asarray(fitness, jnp.float32)
    score = fitness if maximize else -fitness
    return jnp.where(jnp.isnan(score), -jnp.inf, score)


def from_score(score: jax.Array, maximize: bool) -> jax.Array:
    """Inverse of :func:`to_score` for reporting (``-inf`` stays the worst value)."""
    return score if maximize else -score


def no_best(space: GenomeSpace, maximize: bool) -> tuple[jax.Array, jax.Array]:
    """``(best_genome, best_fitness)`` before anything was told: the worst value, in the user's
    direction (``-inf`` when maximising, ``+inf`` when minimising)."""
    genome = jnp.zeros((space.num_genes,), jnp.int32)
    return genome, from_score(jnp.float32(-jnp.inf), maximize)


def update_best(
    best_genome: jax.Array, best_score: jax.Array, genomes: jax.Array, scores: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Keeps the best genome seen so far (strictly better replaces; ties keep the older)."""
    i = jnp.argmax(scores)
    better = scores[i] > best_score
    return jnp.where(better, genomes[i], best_genome), jnp.where(better, scores[i], best_score)


def num_objectives(strategy: Any) -> int:
    """How many objectives ``strategy.tell`` expects per genome: ``len(maximize)`` for a
    multi-objective strategy (``maximize`` a tuple, fitness ``float32[B, M]``), 1 for a
    single-objective one (``maximize`` a bool, fitness ``float32[B]``)."""
    maximize = strategy.maximize
    return 1 if isinstance(maximize, bool) else len(maximize)


# -- checks of the protocol (value checks live in evonas.checks) ------------------------------


def check_common(strategy: Any, owner: str) -> None:
    """Checks the fields every single-objective strategy has: ``space`` and ``maximize``."""
    check_space(strategy, owner)
    if not isinstance(strategy.maximize, bool):
        raise ValueError(f"{owner}.maximize must be True or False; got {strategy.maximize!r}")


def check_space(strategy: Any, owner: str) -> None:
    """``strategy.space`` must be a :class:`GenomeSpace`."""
    if not isinstance(strategy.space, GenomeSpace):
        got = type(strategy.space).__name__
        raise ValueError(f"{owner}: space must be a GenomeSpace; got {got}")


def check_maximize_tuple(maximize: object, owner: str) -> tuple[bool, ...]:
    """Validates a multi-objective ``maximize``: a tuple (or list) of at least two bools."""
    if isinstance(maximize, (tuple, list)) and len(maximize) >= 2 and all(
        isinstance(m, bool) for m in maximize
    ):
        return tuple(maximize)
    raise ValueError(
        f"{owner}: maximize must be a tuple of True/False, one per objective (at least 2), e.g. "
        f"(True, False) for accuracy up and cost down; got {maximize!r}"
    )


def check_told(strategy: Any, genomes: Any, fitness: Any) -> None:
    """Trace-time shape check of a single-objective ``tell``: ``[B, G]`` and ``[B]``."""
    want = (strategy.batch_size, strategy.space.num_genes)
    if jnp.shape(genomes) != want or jnp.shape(fitness) != want[:1]:
        raise ValueError(
            f"{type(strategy).__name__}.tell expects genomes of shape {want} and fitness of "
            f"shape {want[:1]} (what ask returned); got {jnp.shape(genomes)} and "
            f"{jnp.shape(fitness)}"
        )


def check_told_objectives(strategy: Any, genomes: jax.Array, fitness: jax.Array) -> None:
    """Trace-time shape check of a multi-objective ``tell``: ``[B, G]`` and ``[B, M]``."""
    batch, genes = strategy.batch_size, strategy.space.num_genes
    want = (batch, len(strategy.maximize))
    if jnp.shape(genomes) != (batch, genes) or jnp.shape(fitness) != want:
        raise ValueError(
            f"{type(strategy).__name__}.tell expects genomes of shape {(batch, genes)} and "
            f"fitness of shape {want} (one column per objective); got {jnp.shape(genomes)} and "
            f"{jnp.shape(fitness)}"
        )


def beliefs(strategy: Any, state: Any) -> dict[str, dict[str, float]] | None:
    """``{gene name: {value: probability}}`` of a state with ``probabilities`` (``[G, K]``),
    values named as the space names them; None for a strategy without a distribution."""
    probabilities = getattr(state, "probabilities", None)
    if probabilities is None:
        return None
    space = strategy.space
    table = jax.device_get(probabilities)
    out = {}
    for g, name in enumerate(space.names):
        choices = space.choices[g] if space.choices else None
        out[name] = {str(choices[k]) if choices is not None else str(k): float(table[g][k])
                     for k in range(space.cardinalities[g])}
    return out
