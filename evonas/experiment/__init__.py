"""Experiments: the typed configuration of a search, its host loop, the final stage, and the
library behind the command line (``bench``, ``describe``, ``front_summary``)."""

from evonas.experiment.bench import bench
from evonas.experiment.config import (
    DatasetConfig,
    DisplayConfig,
    EncodingConfig,
    EvaluatorConfig,
    ExperimentConfig,
    FinalConfig,
    LatencyConfig,
    ObjectiveConfig,
    SearchConfig,
    StrategyConfig,
)
from evonas.experiment.describe import describe, read_genome
from evonas.experiment.final import evaluate_model
from evonas.experiment.front import front_summary, parse_budgets
from evonas.experiment.runner import Experiment, ExperimentResult, InfeasibleError

__all__ = [
    "DatasetConfig",
    "DisplayConfig",
    "EncodingConfig",
    "EvaluatorConfig",
    "Experiment",
    "ExperimentConfig",
    "ExperimentResult",
    "FinalConfig",
    "InfeasibleError",
    "LatencyConfig",
    "ObjectiveConfig",
    "SearchConfig",
    "StrategyConfig",
    "bench",
    "describe",
    "evaluate_model",
    "front_summary",
    "parse_budgets",
    "read_genome",
]
