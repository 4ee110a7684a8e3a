"""Experiments: the typed configuration of a search (the host loop will join it here)."""

from evonas.experiment.config import (
    Constraint,
    DatasetConfig,
    DisplayConfig,
    EncodingConfig,
    ExperimentConfig,
    FinalConfig,
    ObjectiveConfig,
    SearchConfig,
    StrategyConfig,
    parse_constraint,
)

__all__ = [
    "Constraint",
    "DatasetConfig",
    "DisplayConfig",
    "EncodingConfig",
    "ExperimentConfig",
    "FinalConfig",
    "ObjectiveConfig",
    "SearchConfig",
    "StrategyConfig",
    "parse_constraint",
]
