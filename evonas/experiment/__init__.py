"""Experiments: the typed configuration of a search, its host loop, final retraining, export."""

from evonas.experiment.config import (
    Constraint,
    DatasetConfig,
    DisplayConfig,
    EncodingConfig,
    ExperimentConfig,
    FinalConfig,
    LatencyConfig,
    ObjectiveConfig,
    SearchConfig,
    StrategyConfig,
    parse_constraint,
)
from evonas.experiment.load import evaluate_model, load_model
from evonas.experiment.runner import Experiment, ExperimentResult, InfeasibleError

__all__ = [
    "Constraint",
    "DatasetConfig",
    "DisplayConfig",
    "EncodingConfig",
    "Experiment",
    "ExperimentConfig",
    "ExperimentResult",
    "FinalConfig",
    "InfeasibleError",
    "LatencyConfig",
    "ObjectiveConfig",
    "SearchConfig",
    "StrategyConfig",
    "evaluate_model",
    "load_model",
    "parse_constraint",
]
