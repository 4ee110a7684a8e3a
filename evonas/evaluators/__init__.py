"""Evaluators: ``evaluate(key, genomes) -> Results``."""

from evonas.evaluators.base import Evaluator, Results, describe_estimate, describe_protocol
from evonas.evaluators.latency import LatencyMeter, time_call
from evonas.evaluators.tabular import TabularEvaluator
from evonas.evaluators.training import TrainingEvaluator

__all__ = [
    "Evaluator",
    "LatencyMeter",
    "Results",
    "TabularEvaluator",
    "TrainingEvaluator",
    "describe_estimate",
    "describe_protocol",
    "time_call",
]
