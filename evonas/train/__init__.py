"""The population trainer: every generation's models trained at once, group by group.

``train_population(key, encoding, genomes, dataset, config)`` initialises, trains and evaluates
a population under an execution plan (``masked``, ``grouped`` or ``auto``, see
``evonas.train.plans``), with divergence isolation, memory chunking and the population axis
sharded over the local devices.
"""

from evonas.train.cache import CompileCounter, ProgramCache, enable_persistent_cache
from evonas.train.config import OPTIMIZERS, PLANS, SCHEDULES, ProgramOptions, TrainConfig
from evonas.train.loop import train_population
from evonas.train.metrics import confusion_metrics
from evonas.train.plans import CostModel, Group
from evonas.train.result import PopulationResult

__all__ = [
    "OPTIMIZERS",
    "PLANS",
    "SCHEDULES",
    "CompileCounter",
    "CostModel",
    "Group",
    "PopulationResult",
    "ProgramCache",
    "ProgramOptions",
    "TrainConfig",
    "confusion_metrics",
    "enable_persistent_cache",
    "train_population",
]
