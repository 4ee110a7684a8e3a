"""Any evosax algorithm as an evonas strategy, through a continuous relaxation of the genome.

evosax (Lange, 2023, "evosax: JAX-based Evolution Strategies", https://arxiv.org/abs/2212.04180)
optimises real vectors; evonas genomes are integer vectors. The adapter lets evosax search a real
vector ``x`` and decodes every ``x`` to a genome, deterministically:

* ``relaxation="logits"``: one real per (gene, value), so ``x`` has ``sum(cardinalities)``
  entries, one block per gene. A gene decodes to the argmax of its block (the first maximum on
  ties). The search starts at mean 0 (every value equally likely) with evosax's own initial std
  (1.0 wherever evosax 0.3.2 has one); a population-based algorithm starts from ``N(0, std²)``
  logits, which decode to uniformly random genomes.
* ``relaxation="random_keys"``: one real per gene (Bean, 1994, "Genetic algorithms and random keys
  for sequencing and optimization"), clipped into ``[0, 1)``; gene ``i`` decodes to
  ``floor(x_i * cardinality_i)``, clamped to ``cardinality_i - 1``. The search starts at mean 0.5
  with std 0.25 (evosax's default of 1.0 would put a third of every sample outside ``[0, 1)``,
  where it saturates); a population-based algorithm starts from ``U[0, 1)``.

evosax only ever sees its own unclipped samples: the clipping and the argmax live in the decoder,
so the algorithm's own update rules (covariance, natural gradients) stay exact. Non-finite values
from evosax decode as 0 so a genome is always inside the space.

Direction: evosax minimises. ``tell`` turns the user's fitness into the score of
:func:`evonas.strategies.base.to_score` (higher is better) and hands evosax ``-score``. A failed
evaluation (NaN, or any non-finite fitness) gets a finite penalty, worse than the worst finite value
of the generation by at least its spread, so fitness shaping (z-scores, ranks, softmax) stays
finite; it never becomes the best genome.

Population-based algorithms (GA, DE, PSO, Diffusion Evolution ...) need an evaluated population to
start from: the first ``ask`` samples it from the relaxation's initial distribution above, and the
first ``tell`` starts the algorithm with it; later calls are evosax's ``ask`` and ``tell``.

Defaults the adapter changes: the ESs that step their mean with an optax optimizer tuned for
network weights (``ARS``, ``ASEBO``, ``GuidedES``, ``NoiseReuseES``, ``Open_ES``, ``PersistentES``:
SGD or Adam at 1e-3) get ``optax.adam(0.1)``, since at 1e-3 a logit of scale 1 does not move within
tens of generations; ``algorithm_kwargs={"optimizer": ...}`` overrides it. ``std_init`` reaches
``Params.std_init`` or, for algorithms with a ``std_schedule`` argument, a constant schedule.

``tell`` must receive the genomes and fitness of the *last* ``ask``: evosax is told the continuous
population that ``ask`` kept in the state (the genomes themselves only update the best genome).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import numbers
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from evosax.algorithms import algorithms as _EVOSAX_ALGORITHMS
from evosax.algorithms.population_based.base import PopulationBasedAlgorithm
from flax import struct

from evonas import checks
from evonas.genomes.space import GenomeSpace
from evonas.strategies.base import State, StrategyBase, to_score

RELAXATIONS = ("logits", "random_keys")

# Algorithms the adapter cannot run, and why (evosax_algorithm_names() leaves them out).
EXCLUDED = {
    "RandomSearch": "needs a user sampling_fn; use evonas's own random search instead",
    "SV_CMA_ES": "Stein variational: needs num_populations and one mean per sub-population",
    "SV_Open_ES": "Stein variational: needs num_populations and one mean per sub-population",
}

# Initial std of each relaxation when std_init is None (None: evosax's own default).
_DEFAULT_STD = {"logits": None, "random_keys": 0.25}

# Constructor defaults the adapter changes. evosax's defaults for these gradient-based ESs are
# tuned for neural-network weights (learning rate 1e-3): on logits of scale 1 the mean would not
# move within a NAS budget of tens of generations. Adam at 0.1 moves a logit by ~0.1 a generation.
# algorithm_kwargs override these.
_ADAPTER_KWARGS: dict[str, dict[str, Any]] = {
    name: {"optimizer": optax.adam(learning_rate=0.1)}
    for name in ("ARS", "ASEBO", "GuidedES", "NoiseReuseES", "Open_ES", "PersistentES")
}


def evosax_algorithm_names() -> list[str]:
    """The names in ``evosax.algorithms.algorithms`` that :class:`EvosaxStrategy` runs, sorted.

    Left out (see ``EXCLUDED``): ``RandomSearch`` (needs a sampling function) and the Stein
    variational ``SV_CMA_ES`` / ``SV_Open_ES`` (need several sub-populations).
    """
    return sorted(n for n in _EVOSAX_ALGORITHMS if n not in EXCLUDED)


@struct.dataclass
class EvosaxState(State):
    """State of :class:`EvosaxStrategy` (and the base's best so far).

    Attributes:
        evo_state: the evosax algorithm's own state.
        population: ``float32[P, D]``, the continuous population of the last ``ask``.
        key: the key evosax's ``tell`` (and a population-based ``init``) consumes, split from
            ``init``'s key: a search is its seed's whichever keys ``tell`` is given (as it was
            before ``tell`` took one, so earlier runs' numbers stand).
    """

    evo_state: Any
    population: jax.Array
    key: jax.Array


def _frozen_items(owner: str, name: str, value: Mapping[str, Any] | None) -> tuple:
    """A mapping as sorted ``(key, value)`` pairs, so the strategy stays hashable (jit-static)."""
    if value is None:
        return ()
    if isinstance(value, tuple):  # already frozen (dataclasses.replace re-runs __post_init__)
        value = dict(value)
    if not isinstance(value, Mapping):
        raise ValueError(f"{owner}: {name} must be a mapping of names to values; got {value!r}")
    for k, v in value.items():
        if not isinstance(k, str):
            raise ValueError(f"{owner}: {name} keys must be strings; got {k!r}")
        try:
            hash(v)
        except TypeError:
            raise ValueError(
                f"{owner}: {name}[{k!r}] must be hashable (a number, bool, string or callable) "
                f"so the strategy can be a static jit argument; got {type(v).__name__}"
            ) from None
    return tuple(sorted(value.items()))


@functools.lru_cache(maxsize=64)
def _build(
    algorithm: str,
    num_dims: int,
    population_size: int,
    kwargs: tuple,
    params: tuple,
    std: float | None,
) -> tuple[Any, Any]:
    """Builds (and caches) the evosax instance and its params from the static configuration.

    Raises:
        ValueError: for kwargs, params or a population size the algorithm rejects.
    """
    owner = f"EvosaxStrategy({algorithm!r})"
    cls = _EVOSAX_ALGORITHMS[algorithm]
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    ctor = dict(_ADAPTER_KWARGS.get(algorithm, {}))
    ctor.update(kwargs)
    for k in ("population_size", "solution"):
        if k in dict(kwargs):
            raise ValueError(f"{owner}: algorithm_kwargs may not set {k!r}; the adapter sets it")
    unknown = sorted(set(dict(kwargs)) - set(accepted))
    if unknown:
        raise ValueError(
            f"{owner}: algorithm_kwargs {unknown} are not arguments of evosax's {cls.__name__}; "
            f"allowed: {[a for a in accepted if a not in ('population_size', 'solution')]}"
        )
    if std is not None and "std_schedule" in accepted and "std_schedule" not in dict(kwargs):
        ctor["std_schedule"] = optax.constant_schedule(std)
    # Default params are computed with jnp; evaluate them eagerly even if the first use is inside a
    # trace, or the cache would keep tracers.
    with jax.ensure_compile_time_eval():
        try:
            algo = cls(population_size=population_size, solution=jnp.zeros(num_dims), **ctor)
        except AssertionError as err:
            raise ValueError(
                f"{owner}: evosax rejects population_size={population_size} with "
                f"algorithm_kwargs={dict(kwargs)}: {err}"
            ) from None
        defaults = algo.default_params
        fields = [f.name for f in dataclasses.fields(defaults)]
        unknown = sorted(set(dict(params)) - set(fields))
        if unknown:
            raise ValueError(f"{owner}: params {unknown} are not evosax params; allowed: {fields}")
        overrides = dict(params)
        if std is not None and "std_init" in fields and "std_init" not in overrides:
            overrides["std_init"] = std
        for k, v in overrides.items():
            default = getattr(defaults, k)
            scalar = isinstance(default, (int, float)) or getattr(default, "shape", None) == ()
            if not scalar or isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ValueError(
                    f"{owner}: params[{k!r}] must be a number overriding a scalar field; got "
                    f"{v!r} for a field whose default is {type(default).__name__} "
                    f"{getattr(default, 'shape', '')}"
                )
            dtype = jnp.asarray(default).dtype
            if jnp.issubdtype(dtype, jnp.integer) and v != int(v):
                raise ValueError(f"{owner}: params[{k!r}] is an integer field; got {v!r}")
            overrides[k] = jnp.asarray(v, dtype)
        evo_params = defaults.replace(**overrides)
    return algo, evo_params


@dataclasses.dataclass(frozen=True)
class EvosaxStrategy(StrategyBase):
    """An evosax algorithm searching integer genomes through a continuous relaxation.

    See the module docstring for the two relaxations and their decoding rules.

    Args:
        space: the genome space.
        algorithm: a name from :func:`evosax_algorithm_names` (``"CMA_ES"``, ``"SNES"`` ...).
        population_size: genomes per ``ask``; some algorithms need an even or a minimum size.
        relaxation: ``"logits"`` or ``"random_keys"``.
        maximize: whether higher fitness is better.
        algorithm_kwargs: extra constructor arguments of the evosax class (``optimizer``,
            ``std_schedule`` ...); values must be hashable.
        params: overrides of fields of the algorithm's evosax ``Params`` (numbers).
        std_init: initial std of the search distribution (or of a GA's mutation), set through
            ``Params.std_init`` or a constant ``std_schedule``; ``None``: the relaxation's default
            (evosax's own for logits, 0.25 for random keys).
    """

    space: GenomeSpace
    algorithm: str = "CMA_ES"
    population_size: int = 16
    relaxation: str = "logits"
    maximize: bool = True
    # Mappings on input, frozen to sorted (name, value) tuples so the instance stays hashable.
    algorithm_kwargs: Mapping[str, Any] | tuple | None = None
    params: Mapping[str, float] | tuple | None = None
    std_init: float | None = None

    def __post_init__(self):
        owner = "EvosaxStrategy"
        if not isinstance(self.space, GenomeSpace):
            raise ValueError(f"{owner}: space must be a GenomeSpace; got {self.space!r}")
        names = evosax_algorithm_names()
        if self.algorithm not in names:
            why = f" ({EXCLUDED[self.algorithm]})" if self.algorithm in EXCLUDED else ""
            raise ValueError(
                f"{owner}: unknown or unsupported evosax algorithm {self.algorithm!r}{why}; "
                f"supported: {names}"
            )
        checks.positive_int(f"{owner}.population_size", self.population_size)
        if self.relaxation not in RELAXATIONS:
            raise ValueError(
                f"{owner}: relaxation must be one of {list(RELAXATIONS)}; got {self.relaxation!r}"
            )
        if self.std_init is not None:
            std = self.std_init
            if isinstance(std, bool) or not isinstance(std, numbers.Real) or not 0 < std < np.inf:
                raise ValueError(f"{owner}: std_init must be a positive number; got {std!r}")
            object.__setattr__(self, "std_init", float(std))
        object.__setattr__(self, "maximize", bool(self.maximize))
        object.__setattr__(
            self, "algorithm_kwargs",
            _frozen_items(owner, "algorithm_kwargs", self.algorithm_kwargs))
        object.__setattr__(self, "params", _frozen_items(owner, "params", self.params))
        # Build now, so a bad configuration fails here with a readable error, not inside jit.
        algo, params = self._evosax()
        has_std = "std_init" in {f.name for f in dataclasses.fields(params)} or (
            "std_schedule" in inspect.signature(type(algo).__init__).parameters
        )
        if self.std_init is not None and not has_std:
            raise ValueError(
                f"{owner}: evosax's {self.algorithm} has no initial std (no Params.std_init, "
                f"no std_schedule); got std_init={self.std_init!r}, leave it None"
            )

    # -- static configuration ------------------------------------------------------------------

    @property
    def batch_size(self) -> int:
        """How many genomes one ``ask`` returns: the population size."""
        return self.population_size

    @property
    def num_dims(self) -> int:
        """Length of the continuous vector evosax searches."""
        if self.relaxation == "logits":
            return sum(self.space.cardinalities)
        return self.space.num_genes

    @property
    def _std(self) -> float | None:
        return self.std_init if self.std_init is not None else _DEFAULT_STD[self.relaxation]

    def _evosax(self) -> tuple[Any, Any]:
        return _build(self.algorithm, self.num_dims, self.population_size,
                      self.algorithm_kwargs, self.params, self._std)

    @property
    def _population_based(self) -> bool:
        return isinstance(self._evosax()[0], PopulationBasedAlgorithm)

    # -- relaxation ------------------------------------------------------------------------------

    def decode(self, x: jax.Array) -> jax.Array:
        """Continuous vectors ``float[..., D]`` to genomes ``int32[..., G]`` (module docstring)."""
        x = jnp.nan_to_num(jnp.asarray(x, jnp.float32), nan=0.0, posinf=0.0, neginf=0.0)
        cards = np.asarray(self.space.cardinalities)
        if self.relaxation == "random_keys":
            genes = jnp.floor(jnp.clip(x, 0.0, 1.0) * cards).astype(jnp.int32)
            return jnp.minimum(genes, self.space.upper - 1)
        # Gather every gene's block into one padded [G, max_card] table (static indices), so the
        # argmax runs over all genes at once; padding is -inf and never wins.
        offsets = np.concatenate([[0], np.cumsum(cards)[:-1]])
        cols = np.arange(cards.max())
        valid = cols[None, :] < cards[:, None]
        index = np.where(valid, offsets[:, None] + cols[None, :], 0)
        blocks = jnp.where(valid, x[..., index], -jnp.inf)
        return jnp.argmax(blocks, axis=-1).astype(jnp.int32)

    def _initial_mean(self) -> jax.Array:
        value = 0.0 if self.relaxation == "logits" else 0.5
        return jnp.full((self.num_dims,), value, jnp.float32)

    def _initial_population(self, key: jax.Array) -> jax.Array:
        """A population-based algorithm's first population; it decodes to uniform genomes."""
        shape = (self.population_size, self.num_dims)
        if self.relaxation == "random_keys":
            return jax.random.uniform(key, shape)
        std = self._std if self._std is not None else 1.0
        return std * jax.random.normal(key, shape)

    def _score(self, fitness: jax.Array) -> jax.Array:
        """Scores with every non-finite fitness a failure (``-inf``): evosax's arithmetic
        needs finite values, so an infinite fitness can't be the best either."""
        score = to_score(fitness, self.maximize)
        return jnp.where(jnp.isfinite(score), score, -jnp.inf)

    def _evosax_fitness(self, score: jax.Array) -> jax.Array:
        """Minimised evosax fitness of the scores (failures penalised, finite)."""
        ok = jnp.isfinite(score)
        loss = jnp.where(ok, -score, 0.0)
        worst = jnp.max(jnp.where(ok, loss, -jnp.inf))
        spread = worst - jnp.min(jnp.where(ok, loss, jnp.inf))
        # Worse than every success by at least its spread (and 1): ranks and z-scores put failures
        # last without the overflow a huge constant would cause in float32 variances.
        penalty = jnp.where(jnp.any(ok), worst + jnp.maximum(spread, 1.0), 1.0)
        return jnp.where(ok, loss, penalty)

    # -- strategy protocol ---------------------------------------------------------------------

    def _init(self, key: jax.Array) -> EvosaxState:
        """A fresh search state."""
        algo, params = self._evosax()
        key, k_init, k_pop = jax.random.split(key, 3)
        population = self._initial_population(k_pop)
        if self._population_based:
            # A placeholder with the right structure; the first tell re-initialises it with the
            # evaluated first population.
            fitness = jnp.zeros((self.population_size,), jnp.float32)
            evo_state = algo.init(k_init, population, fitness, params)
        else:
            evo_state = algo.init(k_init, self._initial_mean(), params)
        return EvosaxState(**self.initial(), evo_state=evo_state, population=population, key=key)

    def _ask(self, key: jax.Array, state: EvosaxState) -> tuple[jax.Array, EvosaxState]:
        """``population_size`` genomes to evaluate, ``int32[P, G]``."""
        algo, params = self._evosax()
        if self._population_based:
            population, evo_state = jax.lax.cond(
                state.generation == 0,
                lambda: (self._initial_population(key), state.evo_state),
                lambda: algo.ask(key, state.evo_state, params),
            )
        else:
            population, evo_state = algo.ask(key, state.evo_state, params)
        population = population.astype(jnp.float32)
        state = state.replace(evo_state=evo_state, population=population)
        return self.decode(population), state

    def _tell(self, key: jax.Array, genomes: jax.Array, scores: jax.Array,
              state: EvosaxState) -> EvosaxState:
        """Updates the search with the scores of the genomes of the last ``ask`` (evosax's
        key comes from the state, see :class:`EvosaxState`)."""
        del key
        algo, params = self._evosax()
        key, k_tell = jax.random.split(state.key)
        loss = self._evosax_fitness(scores)
        tell = lambda: algo.tell(k_tell, state.population, loss, state.evo_state, params)[0]
        if self._population_based:
            evo_state = jax.lax.cond(
                state.generation == 0,
                lambda: algo.init(k_tell, state.population, loss, params),
                tell,
            )
        else:
            evo_state = tell()
        return state.replace(evo_state=evo_state, key=key)
