"""Training: the population trainer and the standalone trainer.

``train_population(key, encoding, genomes, dataset, config)`` initialises, trains and evaluates
a population under an execution plan (``masked``, ``grouped`` or ``auto``, see
``evonas.train.plans``), with divergence isolation, memory chunking and the population axis
sharded over the local devices. ``train_module`` trains one standalone module (retraining after
the search) with the same loss and optimiser step (``evonas.train.step``).
"""

from evonas.train.cache import CompileCounter, ProgramCache, enable_persistent_cache
from evonas.train.config import OPTIMIZERS, PLANS, SCHEDULES, ProgramOptions, TrainConfig
from evonas.train.halving import Halving
from evonas.train.loop import inherit, train_population
from evonas.train.metrics import confusion_metrics
from evonas.train.plans import CostModel, Group
from evonas.train.proxies import PROXIES, zero_cost_scores
from evonas.train.result import PopulationResult
from evonas.train.standalone import accuracy, predict_logits, train_for_seconds, train_module
from evonas.train.step import cross_entropy, descent_step, distillation_loss

__all__ = [
    "OPTIMIZERS",
    "PROXIES",
    "PLANS",
    "SCHEDULES",
    "CompileCounter",
    "CostModel",
    "Group",
    "Halving",
    "PopulationResult",
    "ProgramCache",
    "ProgramOptions",
    "TrainConfig",
    "accuracy",
    "confusion_metrics",
    "cross_entropy",
    "descent_step",
    "distillation_loss",
    "enable_persistent_cache",
    "predict_logits",
    "train_for_seconds",
    "train_module",
    "inherit",
    "train_population",
    "zero_cost_scores",
]
