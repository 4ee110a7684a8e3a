"""The strategy protocol, shared state helpers and the name -> strategy registry.

A strategy has the evosax shape over integer genomes:

    state = strategy.init(key)
    genomes, state = strategy.ask(key, state)        # int32[batch_size, G]
    state = strategy.tell(genomes, fitness, state)   # fitness: float32[batch_size]

``state`` is an immutable pytree (a ``flax.struct.dataclass``); all three methods are pure and
jit-able, so a whole search on a tabular benchmark is one ``lax.scan`` and independent runs one
``vmap``. Hyper-parameters and shapes live on the (hashable, frozen) strategy instance.

Direction is explicit: ``maximize=True`` (the default: fitness is an accuracy) means higher fitness
is better. Internally every strategy works on a *score* where higher is better and a failed (NaN)
evaluation scores ``-inf``, so it can never become the best or a parent.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import jax
import jax.numpy as jnp

from evonas.genomes.space import GenomeSpace


@runtime_checkable
class Strategy(Protocol):
    """init / ask / tell over an immutable state pytree."""

    space: GenomeSpace
    maximize: bool

    @property
    def batch_size(self) -> int:
        """How many genomes one ``ask`` returns."""
        ...

    def init(self, key: jax.Array) -> Any: ...

    def ask(self, key: jax.Array, state: Any) -> tuple[jax.Array, Any]: ...

    def tell(self, genomes: jax.Array, fitness: jax.Array, state: Any) -> Any: ...


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


def check_positive(name: str, value: Any, owner: str) -> int:
    """Validates an integer hyper-parameter at construction time, with a message for people."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{owner}: {name} must be a positive integer; got {value!r}")
    return value


def check_rate(name: str, value: Any, owner: str) -> float:
    """Validates a probability hyper-parameter in [0, 1]."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{owner}: {name} must be a number in [0, 1]; got {value!r}") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{owner}: {name} must be in [0, 1]; got {value!r}")
    return value


StrategyFactory = Callable[..., Strategy]
_STRATEGIES: dict[str, StrategyFactory] = {}


def register_strategy(name: str, factory: StrategyFactory) -> None:
    """Makes ``factory(space, **params)`` available as ``get_strategy(name, space, **params)``."""
    _STRATEGIES[name] = factory


def list_strategies() -> list[str]:
    """Every strategy name, including one ``evosax_NAME`` per installed evosax algorithm."""
    from evonas.strategies.evosax_adapter import evosax_algorithm_names

    return sorted(_STRATEGIES) + [f"evosax_{n}" for n in evosax_algorithm_names()]


def get_strategy(name: str, space: GenomeSpace, **params: Any) -> Strategy:
    """The strategy called ``name`` over ``space``; ``evosax_NAME`` wraps evosax's ``NAME``.

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    if name in _STRATEGIES:
        return _STRATEGIES[name](space, **params)
    if name.startswith("evosax_"):
        from evonas.strategies.evosax_adapter import EvosaxStrategy

        return EvosaxStrategy(space, algorithm=name[len("evosax_"):], **params)
    known = list_strategies()
    hint = difflib.get_close_matches(str(name), known, n=1)
    extra = f" (did you mean {hint[0]!r}?)" if hint else ""
    raise ValueError(f"unknown strategy {name!r}{extra}; known strategies: {known}")
