"""Search strategies with the evosax shape: ``init`` / ``ask`` / ``tell`` over immutable state."""

from evonas.strategies.base import (
    Strategy,
    from_score,
    get_strategy,
    list_strategies,
    num_objectives,
    register_strategy,
    to_score,
)
from evonas.strategies.evosax_adapter import EvosaxStrategy, evosax_algorithm_names
from evonas.strategies.genetic_algorithm import GeneticAlgorithm, GeneticAlgorithmState
from evonas.strategies.map_elites import MapElites, MapElitesState
from evonas.strategies.nsga2 import NSGA2, NSGA2State
from evonas.strategies.random_search import RandomSearch, RandomSearchState
from evonas.strategies.regularized_evolution import (
    RegularizedEvolution,
    RegularizedEvolutionState,
)
from evonas.strategies.weighted_sum import WeightedSum, WeightedSumState

__all__ = [
    "EvosaxStrategy",
    "GeneticAlgorithm",
    "GeneticAlgorithmState",
    "MapElites",
    "MapElitesState",
    "NSGA2",
    "NSGA2State",
    "RandomSearch",
    "RandomSearchState",
    "RegularizedEvolution",
    "RegularizedEvolutionState",
    "Strategy",
    "WeightedSum",
    "WeightedSumState",
    "evosax_algorithm_names",
    "from_score",
    "get_strategy",
    "list_strategies",
    "num_objectives",
    "register_strategy",
    "to_score",
]
