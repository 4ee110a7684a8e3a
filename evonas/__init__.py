"""evonas: evolutionary neural architecture search in JAX.

Genomes are fixed-length integer vectors; strategies evolve whole populations of them as arrays;
evaluators score populations (a tabular benchmark inside jit, or training whole populations of
Flax models at once).

This module is the public API for scripts; the packages below it are documented in
``docs/architecture.md``.
"""

from evonas.benchmarks import Table, get_benchmark, list_benchmarks, register_benchmark
from evonas.data import Dataset, load_dataset
from evonas.genomes import (
    Encoding,
    GenomeSpace,
    TrainableEncoding,
    check_trainable,
    get_encoding,
    list_encodings,
    parse_genome,
    register_encoding,
)
from evonas.objectives import hypervolume, pareto_front, parse_constraint
from evonas.train import TrainConfig, train_module, train_population
from evonas.version import __version__

# The experiment, the evaluators and the store pull in orbax and the report: loaded on first
# use, so `evonas list` and scripts that only use strategies stay quick to import. The
# strategies load on first use too: evosax builds arrays when it is imported, which starts JAX's
# backend, and a multi-process run must call ``jax.distributed.initialize`` before that
# (``evonas.experiment.distributed``).
_LAZY = {
    "Evaluator": "evonas.evaluators",
    "LatencyMeter": "evonas.evaluators",
    "Results": "evonas.evaluators",
    "TabularEvaluator": "evonas.evaluators",
    "TrainingEvaluator": "evonas.evaluators",
    "OneShotEvaluator": "evonas.evaluators",
    "FewShotEvaluator": "evonas.evaluators",
    "register_evaluator": "evonas.evaluators",
    "list_evaluators": "evonas.evaluators",
    "StrategyBase": "evonas.strategies",
    "Feasible": "evonas.strategies",
    "Prefilter": "evonas.strategies",
    "NSGA2": "evonas.strategies",
    "BayesianOptimization": "evonas.strategies",
    "DistributionSearch": "evonas.strategies",
    "EvosaxStrategy": "evonas.strategies",
    "GeneticAlgorithm": "evonas.strategies",
    "GridSearch": "evonas.strategies",
    "LocalSearch": "evonas.strategies",
    "MapElites": "evonas.strategies",
    "QLearning": "evonas.strategies",
    "RandomSearch": "evonas.strategies",
    "RegularizedEvolution": "evonas.strategies",
    "Reinforce": "evonas.strategies",
    "SearchTrace": "evonas.strategies",
    "Strategy": "evonas.strategies",
    "WeightedSum": "evonas.strategies",
    "get_strategy": "evonas.strategies",
    "list_strategies": "evonas.strategies",
    "num_objectives": "evonas.strategies",
    "register_strategy": "evonas.strategies",
    "run_searches": "evonas.strategies",
    "search": "evonas.strategies",
    "selected_true": "evonas.strategies",
    "Experiment": "evonas.experiment",
    "ExperimentConfig": "evonas.experiment",
    "ExperimentResult": "evonas.experiment",
    "bench": "evonas.experiment",
    "load_model": "evonas.store",
    "export_serving": "evonas.store",
    "load_serving": "evonas.store",
    "distil_run": "evonas.experiment.finish",
    "retrain_run": "evonas.experiment.finish",
    "search_classifier": "evonas.experiment.classifier",
    "Classifier": "evonas.experiment.classifier",
    "prune_run": "evonas.experiment.finish",
    "finetune_run": "evonas.experiment.finish",
    "write_report": "evonas.report",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'evonas' has no attribute {name!r}")


__all__ = [
    "BayesianOptimization",
    "Classifier",
    "Dataset",
    "DistributionSearch",
    "Encoding",
    "Evaluator",
    "EvosaxStrategy",
    "Experiment",
    "ExperimentConfig",
    "ExperimentResult",
    "FewShotEvaluator",
    "GeneticAlgorithm",
    "GenomeSpace",
    "GridSearch",
    "LatencyMeter",
    "LocalSearch",
    "MapElites",
    "NSGA2",
    "OneShotEvaluator",
    "Feasible",
    "Prefilter",
    "QLearning",
    "RandomSearch",
    "RegularizedEvolution",
    "Reinforce",
    "Results",
    "SearchTrace",
    "Strategy",
    "StrategyBase",
    "Table",
    "TabularEvaluator",
    "TrainConfig",
    "TrainableEncoding",
    "TrainingEvaluator",
    "WeightedSum",
    "__version__",
    "bench",
    "check_trainable",
    "distil_run",
    "export_serving",
    "finetune_run",
    "get_benchmark",
    "get_encoding",
    "get_strategy",
    "hypervolume",
    "list_benchmarks",
    "list_encodings",
    "list_evaluators",
    "list_strategies",
    "load_dataset",
    "load_model",
    "load_serving",
    "num_objectives",
    "pareto_front",
    "parse_constraint",
    "parse_genome",
    "prune_run",
    "register_benchmark",
    "register_encoding",
    "register_evaluator",
    "register_strategy",
    "retrain_run",
    "run_searches",
    "search",
    "search_classifier",
    "selected_true",
    "train_module",
    "train_population",
    "write_report",
]
