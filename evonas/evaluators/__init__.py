"""Evaluators: ``evaluate(key, genomes) -> Results``."""

from evonas.evaluators.base import Evaluator, Results, describe_protocol
from evonas.evaluators.tabular import TabularEvaluator
from evonas.evaluators.training import TrainingEvaluator

__all__ = ["Evaluator", "Results", "TabularEvaluator", "TrainingEvaluator", "describe_protocol"]
