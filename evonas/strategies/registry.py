"""The name -> strategy registry: the built-in families, ``register_strategy`` and the
entry-point group ``evonas.strategies`` (see :class:`evonas.registry.Registry`).

Built-ins are literal tables, one per family (evosax's pattern); every installed evosax
algorithm is one ``evosax_NAME`` entry. A strategy factory takes the space first:
``factory(space, **params) -> Strategy``.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any

from evonas.genomes.space import GenomeSpace
from evonas.registry import Factory, Registry
from evonas.strategies.base import Strategy
from evonas.strategies.bayesian import BayesianOptimization
from evonas.strategies.distribution import DistributionSearch
from evonas.strategies.evosax_adapter import EvosaxStrategy, evosax_algorithm_names
from evonas.strategies.genetic_algorithm import GeneticAlgorithm
from evonas.strategies.grid import GridSearch, LocalSearch
from evonas.strategies.handoff import Handoff
from evonas.strategies.map_elites import MapElites
from evonas.strategies.nsga2 import NSGA2
from evonas.strategies.random_search import RandomSearch
from evonas.strategies.regularized_evolution import RegularizedEvolution
from evonas.strategies.reinforcement import QLearning, Reinforce
from evonas.strategies.relaxed import relaxed
from evonas.strategies.weighted_sum import WeightedSum

ENTRY_POINT_GROUP = "evonas.strategies"


def weighted_sum(space: GenomeSpace, strategy: str = "regularized_evolution",
                 strategy_params: Mapping[str, Any] | None = None,
                 weights: tuple[float, ...] = (1.0, 1.0),
                 maximize: tuple[bool, ...] = (True, False)) -> WeightedSum:
    """:class:`WeightedSum` over the registered strategy ``strategy`` (built with
    ``strategy_params`` and ``maximize=True``): how a config names it."""
    if not isinstance(strategy, str):
        raise ValueError(f"WeightedSum: strategy must be a registered strategy name; got "
                         f"{strategy!r}")
    if strategy_params is None:
        params: dict[str, Any] = {}
    elif isinstance(strategy_params, Mapping):
        params = dict(strategy_params)
    else:
        raise ValueError("WeightedSum: strategy_params must be a mapping of the wrapped "
                         f"strategy's keyword arguments; got {strategy_params!r}")
    if "maximize" in params:
        raise ValueError("WeightedSum: strategy_params must not set maximize: the wrapped "
                         "strategy always maximises the weighted sum (set the directions in "
                         "WeightedSum.maximize)")
    probe = get_strategy(strategy, space, **params)
    if not isinstance(probe.maximize, bool):
        raise ValueError(f"WeightedSum: the wrapped strategy must be single-objective; "
                         f"{strategy!r} takes {len(probe.maximize)} objectives")
    inner = get_strategy(strategy, space, maximize=True, **params)
    return WeightedSum(space, inner, weights=weights, maximize=maximize)


def hybrid(space: Any, first: str = "drnas", first_params: dict[str, Any] | None = None,
           first_generations: int = 3, then: str = "regularized_evolution",
           then_params: dict[str, Any] | None = None, floor: float = 0.01,
           batch_size: int = 8, maximize: bool = True) -> Handoff:
    """:class:`Handoff` of two registered strategies, by name (how a config names it)::

        strategy: {name: hybrid, params: {first: drnas, first_generations: 3,
                                          then: regularized_evolution,
                                          then_params: {population_size: 16, sample_size: 4}}}
    """
    def build(name: Any, params: Any, where: str) -> Any:
        if not isinstance(name, str):
            raise ValueError(f"hybrid: {where} must be a registered strategy name; got {name!r}")
        if params is not None and not isinstance(params, dict):
            raise ValueError(f"hybrid: {where}_params must be a mapping; got {params!r}")
        params = dict(params or {})
        if "maximize" in params:
            raise ValueError(f"hybrid: {where}_params must not set maximize (the hybrid's)")
        probe = get_strategy(name, space, **params)
        fields = {f.name for f in dataclasses.fields(probe)} if dataclasses.is_dataclass(
            probe) else set()
        field = "population_size" if "batch_size" not in fields and (
            "population_size" in fields) else "batch_size"
        if params.get(field, batch_size) != batch_size:
            raise ValueError(f"hybrid: {where}_params.{field}={params[field]} disagrees with "
                             f"the genomes asked per generation ({batch_size}); remove it")
        params[field] = batch_size
        return get_strategy(name, space, maximize=maximize, **params)

    return Handoff(build(first, first_params, "first"), build(then, then_params, "then"),
                   switch=first_generations, floor=floor)


RANDOM: dict[str, Factory] = {"random_search": RandomSearch}
ENUMERATIVE: dict[str, Factory] = {"grid_search": GridSearch, "local_search": LocalSearch}
MODEL_BASED: dict[str, Factory] = {"bayesian_optimization": BayesianOptimization}
REINFORCEMENT: dict[str, Factory] = {"reinforce": Reinforce, "q_learning": QLearning}
DISTRIBUTION: dict[str, Factory] = {
    "asng": functools.partial(DistributionSearch, method="asng"),
    "pbil": functools.partial(DistributionSearch, method="pbil"),
}
DIFFERENTIABLE: dict[str, Factory] = {
    method: functools.partial(relaxed, method=method) for method in ("darts", "gdas", "drnas")
}
COMBINED: dict[str, Factory] = {"hybrid": hybrid}
EVOLUTIONARY: dict[str, Factory] = {
    "regularized_evolution": RegularizedEvolution,
    "genetic_algorithm": GeneticAlgorithm,
}
MULTI_OBJECTIVE: dict[str, Factory] = {
    "nsga2": NSGA2,
    "map_elites": MapElites,
    "weighted_sum": weighted_sum,
}
EVOSAX: dict[str, Factory] = {
    f"evosax_{name}": functools.partial(EvosaxStrategy, algorithm=name)
    for name in evosax_algorithm_names()
}
BUILTIN_STRATEGIES: dict[str, Factory] = (RANDOM | ENUMERATIVE | EVOLUTIONARY | MODEL_BASED
                                          | REINFORCEMENT | DISTRIBUTION | DIFFERENTIABLE
                                          | COMBINED | MULTI_OBJECTIVE | EVOSAX)

STRATEGIES = Registry("strategy", ENTRY_POINT_GROUP, BUILTIN_STRATEGIES, plural="strategies")


def register_strategy(name: str, factory: Factory, *, overwrite: bool = False) -> None:
    """Makes ``factory(space, **params)`` available as ``get_strategy(name, space, **params)``.

    A plug-in package may instead (or also) list it under the entry-point group
    ``evonas.strategies``.
    """
    STRATEGIES.register(name, factory, overwrite=overwrite)


def list_strategies() -> list[str]:
    """Every strategy name (one ``evosax_NAME`` per installed evosax algorithm), sorted."""
    return STRATEGIES.names()


def get_strategy(name: str, space: GenomeSpace, **params: Any) -> Strategy:
    """The strategy called ``name`` over ``space``, built with ``params``.

    Raises:
        ValueError: an unknown name (listing the known ones), a parameter the strategy does not
            take (naming it and the ones it takes), or a value it rejects.
    """
    return STRATEGIES.build(name, space, skip=("space",), **params)
