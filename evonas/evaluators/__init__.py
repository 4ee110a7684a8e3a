"""Evaluators: ``evaluate(key, genomes) -> Results``, the only place that knows how a fitness is
obtained.

Base evaluators (training, a table, a one-shot supernet; plug-ins through the registry) and the
wrappers that compose around them, each one module: analytic costs and their constraints,
measured latency, zero-cost proxies, weight inheritance, successive halving, constraints on
measured metrics.
"""

from evonas.evaluators.base import (
    Evaluator,
    Results,
    Screen,
    Wrapper,
    describe_estimate,
    describe_protocol,
    merge,
    uses_parents,
)
from evonas.evaluators.constraints import Constrain
from evonas.evaluators.costs import Costs
from evonas.evaluators.halving import SuccessiveHalving
from evonas.evaluators.inherit import Inherit
from evonas.evaluators.latency import Latency, LatencyMeter, time_call
from evonas.evaluators.oneshot import FewShotEvaluator, OneShotEvaluator
from evonas.evaluators.proxies import Proxies
from evonas.evaluators.registry import (
    BUILTIN_EVALUATORS,
    ENTRY_POINT_GROUP,
    EVALUATORS,
    Context,
    get_evaluator,
    list_evaluators,
    register_evaluator,
)
from evonas.evaluators.tabular import TabularEvaluator
from evonas.evaluators.training import TrainingEvaluator

__all__ = [
    "BUILTIN_EVALUATORS",
    "ENTRY_POINT_GROUP",
    "EVALUATORS",
    "Constrain",
    "Context",
    "Costs",
    "Evaluator",
    "Inherit",
    "Latency",
    "LatencyMeter",
    "FewShotEvaluator",
    "OneShotEvaluator",
    "Proxies",
    "Results",
    "Screen",
    "SuccessiveHalving",
    "TabularEvaluator",
    "TrainingEvaluator",
    "Wrapper",
    "describe_estimate",
    "describe_protocol",
    "get_evaluator",
    "list_evaluators",
    "merge",
    "register_evaluator",
    "time_call",
    "uses_parents",
]
