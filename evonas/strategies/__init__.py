"""Search strategies with the evosax shape: ``init`` / ``ask`` / ``tell`` over immutable state."""

from evonas.strategies.base import (
    Strategy,
    from_score,
    get_strategy,
    list_strategies,
    register_strategy,
    to_score,
)
from evonas.strategies.evosax_adapter import EvosaxStrategy, evosax_algorithm_names
from evonas.strategies.genetic_algorithm import GeneticAlgorithm, GeneticAlgorithmState
from evonas.strategies.random_search import RandomSearch, RandomSearchState
from evonas.strategies.regularized_evolution import (
    RegularizedEvolution,
    RegularizedEvolutionState,
)

__all__ = [
    "EvosaxStrategy",
    "GeneticAlgorithm",
    "GeneticAlgorithmState",
    "RandomSearch",
    "RandomSearchState",
    "RegularizedEvolution",
    "RegularizedEvolutionState",
    "Strategy",
    "evosax_algorithm_names",
    "from_score",
    "get_strategy",
    "list_strategies",
    "register_strategy",
    "to_score",
]
