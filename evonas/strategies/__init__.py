"""Search strategies with the evosax shape: ``init`` / ``ask`` / ``tell`` over immutable state.

Families: random, grid and local search; evolutionary (regularized evolution, the genetic
algorithm); model-based (Bayesian optimisation with a neural ensemble or a GP); reinforcement
(REINFORCE, Q-learning); distribution-based (ASNG, PBIL); differentiable (DARTS, GDAS, DrNAS
on the encoding's relaxed supernet, bound to the data); multi-objective (NSGA-II, MAP-Elites,
the weighted sum); every evosax algorithm through a continuous relaxation.
``evonas.strategies.search`` runs a whole search in one compiled program
and many of them vmapped over seeds.
"""

from evonas.strategies.base import (
    Counted,
    MultiObjectiveBase,
    State,
    Strategy,
    StrategyBase,
    adapt,
    beliefs,
    bind,
    diagnostics,
    from_score,
    num_objectives,
    to_score,
)
from evonas.strategies.bayesian import BayesianOptimization, BayesianOptimizationState
from evonas.strategies.distribution import DistributionSearch, DistributionState
from evonas.strategies.evosax_adapter import EvosaxStrategy, evosax_algorithm_names
from evonas.strategies.feasible import Feasible
from evonas.strategies.genetic_algorithm import GeneticAlgorithm, GeneticAlgorithmState
from evonas.strategies.grid import GridSearch, GridSearchState, LocalSearch, LocalSearchState
from evonas.strategies.handoff import Handoff, HandoffState
from evonas.strategies.map_elites import MapElites, MapElitesState
from evonas.strategies.nsga2 import NSGA2, NSGA2State
from evonas.strategies.prefilter import Prefilter
from evonas.strategies.random_search import RandomSearch, RandomSearchState
from evonas.strategies.registry import (
    BUILTIN_STRATEGIES,
    ENTRY_POINT_GROUP,
    STRATEGIES,
    get_strategy,
    list_strategies,
    register_strategy,
)
from evonas.strategies.regularized_evolution import (
    RegularizedEvolution,
    RegularizedEvolutionState,
)
from evonas.strategies.reinforcement import (
    QLearning,
    QLearningState,
    Reinforce,
    ReinforceState,
)
from evonas.strategies.relaxed import RelaxedSearch, RelaxedState, relaxed
from evonas.strategies.search import (
    COUNTS,
    EvaluateFn,
    SearchTrace,
    closest_to_feasible,
    run_searches,
    search,
    selected_true,
    summarize,
)
from evonas.strategies.weighted_sum import WeightedSum, WeightedSumState

__all__ = [
    "ReinforceState",
    "Reinforce",
    "QLearningState",
    "QLearning",
    "LocalSearchState",
    "LocalSearch",
    "GridSearchState",
    "Handoff",
    "HandoffState",
    "GridSearch",
    "DistributionState",
    "DistributionSearch",
    "BayesianOptimizationState",
    "BayesianOptimization",
    "BUILTIN_STRATEGIES",
    "Counted",
    "MultiObjectiveBase",
    "Feasible",
    "Prefilter",
    "State",
    "StrategyBase",
    "adapt",
    "COUNTS",
    "ENTRY_POINT_GROUP",
    "NSGA2",
    "STRATEGIES",
    "EvaluateFn",
    "EvosaxStrategy",
    "GeneticAlgorithm",
    "GeneticAlgorithmState",
    "MapElites",
    "MapElitesState",
    "NSGA2State",
    "RandomSearch",
    "RandomSearchState",
    "RegularizedEvolution",
    "RegularizedEvolutionState",
    "RelaxedSearch",
    "RelaxedState",
    "SearchTrace",
    "Strategy",
    "WeightedSum",
    "WeightedSumState",
    "beliefs",
    "bind",
    "diagnostics",
    "closest_to_feasible",
    "evosax_algorithm_names",
    "from_score",
    "get_strategy",
    "list_strategies",
    "num_objectives",
    "register_strategy",
    "relaxed",
    "run_searches",
    "search",
    "selected_true",
    "summarize",
    "to_score",
]
