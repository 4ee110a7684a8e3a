"""The ``Strategy`` protocol, the base class the built-in strategies share, and their helpers.

A strategy has the evosax shape over integer genomes::

    state = strategy.init(key)
    genomes, state = strategy.ask(key, state)               # int32[batch_size, G]
    state = strategy.tell(key, genomes, fitness, state)     # fitness: float32[batch_size]

``state`` is an immutable pytree (a ``flax.struct.dataclass``); all three methods are pure and
jit-able, so a whole search on a tabular benchmark is one ``lax.scan`` and independent runs one
``vmap`` (``evonas.strategies.search``). Hyper-parameters and shapes live on the (hashable,
frozen) strategy instance, which is a static argument of every jitted method. Every random
number comes from the keys passed in: no strategy makes a key of its own from a constant.

Direction is explicit: ``maximize=True`` (the default: fitness is an accuracy) means higher fitness
is better. Internally every built-in strategy works on a *score* where higher is better and a
failed (NaN) evaluation scores ``-inf`` (:func:`to_score`), so it can never become the best or a
parent. A multi-objective strategy has ``maximize`` as a tuple, one bool per objective, and takes
fitness ``float32[B, M]`` (:func:`num_objectives`).

The built-ins derive from :class:`StrategyBase` (evosax's ``algorithms/base.py`` pattern): the
public jitted ``init`` / ``ask`` / ``tell`` call the algorithm's ``_init`` / ``_ask`` / ``_tell``,
and the base owns what every strategy keeps the same way: the shape checks of ``tell``, the
scores, the best so far and the generation counter (the fields of :class:`State`).
"""

from __future__ import annotations

import dataclasses
import inspect
import warnings
from functools import partial
from typing import Any, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
from flax import struct

from evonas import checks
from evonas.genomes.space import GenomeSpace


@runtime_checkable
class Strategy(Protocol):
    """``init`` / ``ask`` / ``tell`` over an immutable state pytree.

    Implement it as a frozen dataclass (hashable: it is a static jit argument) whose three
    methods are pure functions of their arguments, decorated with
    ``functools.partial(jax.jit, static_argnums=0)``, or derive from :class:`StrategyBase`, which
    does that and keeps the best so far. They run inside ``jax.jit``, ``jax.lax.scan`` and
    ``jax.vmap`` (``run_searches`` vmaps whole searches over seeds), so: no Python branching on
    traced values, no host callbacks, and every array shape fixed by the instance's
    hyper-parameters, never by the values in ``state``.

    Attributes:
        space: the :class:`GenomeSpace` searched.
        maximize: ``True`` when higher fitness is better; for a multi-objective strategy a tuple
            with one bool per objective.
        batch_size: how many genomes one ``ask`` returns (a property is fine).

    Conventions the experiment runner and the report rely on (optional, but recommended):

    * the state has ``best_genome`` (``int32[G]``) and ``best_fitness`` (``float32``, in the
      user's direction; the worst value before any success) and ``generation`` (``int32``,
      the number of tells): :class:`State`'s fields;
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

    def tell(self, key: jax.Array, genomes: jax.Array, fitness: jax.Array, state: Any) -> Any:
        """Learns from the evaluated genomes of the last ``ask``.

        Args:
            key: a ``jax.random`` key, fresh for every tell (experience replay, a stochastic
                update); a strategy whose update is deterministic ignores it.
            genomes: ``int32[batch_size, G]``, exactly what the last ``ask`` returned.
            fitness: ``float32[batch_size]`` in the user's direction (``float32[batch_size, M]``
                for a multi-objective strategy); NaN marks a failed or infeasible evaluation,
                which must never become the best or a parent.
            state: the state the last ``ask`` returned.

        Returns:
            The new state.
        """
        ...


@struct.dataclass
class Counted:
    """The field every built-in strategy's state has: the number of tells."""

    generation: jax.Array  # int32


@struct.dataclass
class State(Counted):
    """The fields :class:`StrategyBase` keeps for a single-objective strategy: the best genome
    so far and its fitness (in the user's direction; the worst value before any success)."""

    best_genome: jax.Array  # int32[G]
    best_fitness: jax.Array  # float32


class StrategyBase:
    """The base of the built-in strategies (evosax's ``EvolutionaryAlgorithm`` pattern).

    A subclass is a frozen dataclass with ``space`` and ``maximize`` fields and a
    ``batch_size``; it implements

    * ``_init(key) -> state``: the algorithm's state, a subclass of :class:`State` built with
      ``**self.initial()`` (the base's fields at their start);
    * ``_ask(key, state) -> (genomes, state)``;
    * ``_tell(key, genomes, scores, state) -> state``: ``scores`` are :func:`to_score` of the
      fitness (higher is better, ``-inf`` where an evaluation failed), ``genomes`` int32.

    The public ``init`` / ``ask`` / ``tell`` are jitted with the instance static; ``tell``
    checks the shapes, updates the best so far (ties keep the older, a failure never becomes
    the best) and counts the generation, after ``_tell``.
    """

    def __post_init__(self):
        """Checks the fields every strategy has: ``space``, ``maximize`` and, where it is a
        field, ``batch_size`` (a subclass's ``__post_init__`` calls this first)."""
        owner = type(self).__name__
        check_common(self, owner)
        if "batch_size" in {f.name for f in dataclasses.fields(self)}:
            checks.positive_int(f"{owner}.batch_size", self.batch_size)

    def initial(self) -> dict[str, jax.Array]:
        """The base's state fields before anything was told."""
        genome, fitness = no_best(self.space, self.maximize)
        return {"best_genome": genome, "best_fitness": fitness, "generation": jnp.int32(0)}

    @partial(jax.jit, static_argnums=0)
    def init(self, key: jax.Array) -> Any:
        """A fresh search state (see :meth:`Strategy.init`)."""
        return self._init(key)

    @partial(jax.jit, static_argnums=0)
    def ask(self, key: jax.Array, state: Any) -> tuple[jax.Array, Any]:
        """The next ``batch_size`` genomes (see :meth:`Strategy.ask`)."""
        return self._ask(key, state)

    @partial(jax.jit, static_argnums=0)
    def tell(self, key: jax.Array, genomes: jax.Array, fitness: jax.Array, state: Any) -> Any:
        """Learns from the last ask's genomes (see :meth:`Strategy.tell`).

        Raises:
            ValueError: (at trace time) shapes other than ``[B, G]`` and ``[B]``.
        """
        check_told(self, genomes, fitness)
        genomes = jnp.asarray(genomes, jnp.int32)
        scores = self._score(fitness)
        best, best_score = update_best(
            state.best_genome, to_score(state.best_fitness, self.maximize), genomes, scores)
        state = self._tell(key, genomes, scores, state)
        return state.replace(best_genome=best, best_fitness=from_score(best_score, self.maximize),
                             generation=state.generation + 1)

    def _score(self, fitness: jax.Array) -> jax.Array:
        """The scores ``_tell`` and the best so far see (:func:`to_score`)."""
        return to_score(fitness, self.maximize)

    def _init(self, key: jax.Array) -> Any:
        raise NotImplementedError

    def _ask(self, key: jax.Array, state: Any) -> tuple[jax.Array, Any]:
        raise NotImplementedError

    def _tell(self, key: jax.Array, genomes: jax.Array, scores: jax.Array, state: Any) -> Any:
        raise NotImplementedError


class MultiObjectiveBase(StrategyBase):
    """The base of a multi-objective strategy: ``maximize`` is a tuple, ``tell`` takes fitness
    ``float32[B, M]`` in the user's units (checked here) and ``_tell(key, genomes, fitness,
    state)`` gets it as it is; the base counts the generation (its state derives from
    :class:`Counted`). Keeping a best is the algorithm's business (there is no single one)."""

    def __post_init__(self):
        """Checks ``space`` and makes ``maximize`` a tuple of bools, one per objective."""
        owner = type(self).__name__
        check_space(self, owner)
        object.__setattr__(self, "maximize", check_maximize_tuple(self.maximize, owner))

    @partial(jax.jit, static_argnums=0)
    def tell(self, key: jax.Array, genomes: jax.Array, fitness: jax.Array, state: Any) -> Any:
        """Learns from the last ask's genomes and their objectives.

        Raises:
            ValueError: (at trace time) shapes other than ``[B, G]`` and ``[B, M]``.
        """
        check_told_objectives(self, genomes, fitness)
        state = self._tell(key, jnp.asarray(genomes, jnp.int32),
                           jnp.asarray(fitness, jnp.float32), state)
        return state.replace(generation=state.generation + 1)


@dataclasses.dataclass(frozen=True)
class KeylessTell:
    """A strategy written for the protocol before ``tell`` took a key (``tell(genomes,
    fitness, state)``), behind the current one: the key is dropped. :func:`adapt` wraps one."""

    strategy: Any

    def __getattr__(self, name: str) -> Any:
        if name == "strategy":  # not set yet (copy, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.strategy, name)

    def init(self, key: jax.Array) -> Any:
        return self.strategy.init(key)

    def ask(self, key: jax.Array, state: Any) -> tuple[jax.Array, Any]:
        return self.strategy.ask(key, state)

    def tell(self, key: jax.Array, genomes: jax.Array, fitness: jax.Array, state: Any) -> Any:
        del key
        return self.strategy.tell(genomes, fitness, state)


class Wrapping:
    """What a strategy wrapper with an ``inner`` strategy passes through unchanged: its
    attributes (``space``, ``maximize``, ``batch_size``, ...), ``init`` and ``tell``, which gets
    exactly what the wrapper's ``ask`` returned (``Prefilter``, ``Feasible``)."""

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet: no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def init(self, key: jax.Array) -> Any:
        return self.inner.init(key)

    def tell(self, key: jax.Array, genomes: jax.Array, fitness: jax.Array, state: Any) -> Any:
        """Tells the inner strategy the genomes the wrapper's ``ask`` returned."""
        return self.inner.tell(key, genomes, fitness, state)


def adapt(strategy: Any) -> Any:
    """``strategy`` itself, or, when its ``tell`` still has the old signature ``tell(genomes,
    fitness, state)``, a :class:`KeylessTell` around it (with a warning to add the key)."""
    if isinstance(strategy, KeylessTell):
        return strategy
    try:
        parameters = inspect.signature(strategy.tell).parameters.values()
    except (TypeError, ValueError, AttributeError):
        return strategy
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY,
                                                      p.POSITIONAL_OR_KEYWORD)]
    if len(positional) != 3 or any(p.kind == p.VAR_POSITIONAL for p in parameters):
        return strategy
    warnings.warn(f"{type(strategy).__name__}.tell(genomes, fitness, state) has the signature "
                  "of evonas before 0.2; tell now takes a key first: tell(key, genomes, "
                  "fitness, state). It is called without the key", DeprecationWarning,
                  stacklevel=2)
    return KeylessTell(strategy)


# -- scores and the best so far ---------------------------------------------------------------


def to_score(fitness: jax.Array, maximize: bool) -> jax.Array:
    """Fitness as a higher-is-better score; NaN (a failed evaluation) becomes ``-inf``."""
    fitness = jnp.asarray(fitness, jnp.float32)
    score = fitness if maximize else -fitness
    return jnp.where(jnp.isnan(score), -jnp.inf, score)


def from_score(score: jax.Array, maximize: bool) -> jax.Array:
    """Inverse of :func:`to_score` for reporting (``-inf`` stays the worst value)."""
    return score if maximize else -score


def told_best(maximize: bool, best_genome: jax.Array, best_fitness: jax.Array,
              genomes: jax.Array, fitness: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The best so far after ``genomes`` were told ``fitness`` (in the user's direction): what
    :class:`StrategyBase` keeps, for a strategy that does not derive from it."""
    genome, score = update_best(best_genome, to_score(best_fitness, maximize),
                                jnp.asarray(genomes, jnp.int32), to_score(fitness, maximize))
    return genome, from_score(score, maximize)


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


def diagnostics(strategy: Any, state: Any) -> dict[str, float | None] | None:
    """What a strategy reports about its own progress after a generation (a differentiable
    search: its epochs, losses and the parameter-free share of its argmax), through its optional
    ``diagnostics(state) -> {name: number or None}``; None for a strategy without it."""
    report = getattr(strategy, "diagnostics", None)
    if report is None:
        return None
    out = dict(report(state))
    for name, value in out.items():
        if value is not None and not isinstance(value, (int, float)):
            raise ValueError(f"{type(strategy).__name__}.diagnostics(state) must map names to "
                             f"numbers or None; {name!r} is {value!r}")
    return out


def with_prior(strategy: Any, state: Any, probabilities: Any) -> Any:
    """``state`` starting from the distribution ``probabilities`` (``float32[G, K]``, rows
    summing to 1, 0 on padding) through the strategy's optional ``prior(state, probabilities)
    -> state`` hook (a strategy that keeps a distribution: ASNG, PBIL, REINFORCE, DARTS, GDAS,
    DrNAS); None for a strategy without it. Used by a hand-over and by a warm start."""
    hook = getattr(strategy, "prior", None)
    if hook is None:
        return None
    return hook(state, jnp.asarray(probabilities, jnp.float32))


def bind(strategy: Any, **context: Any) -> Any:
    """``strategy.bind(**context)`` for a strategy that learns on the data itself (a
    differentiable search: ``encoding``, ``dataset``, ``train``, ``generations``, ``cache``,
    ``key``), else the strategy as it is."""
    hook = getattr(strategy, "bind", None)
    return strategy if hook is None else hook(**context)


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
