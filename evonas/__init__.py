"""evonas: evolutionary neural architecture search in JAX.

Genomes are fixed-length integer vectors; strategies evolve whole populations of them as arrays;
evaluators score populations (a tabular benchmark inside jit, or training whole populations of
Flax models at once).
"""

from evonas.evaluators import Evaluator, Results, TabularEvaluator
from evonas.genomes import (
    Encoding,
    GenomeSpace,
    TrainableEncoding,
    get_encoding,
    list_encodings,
    register_encoding,
)
from evonas.pareto import hypervolume, pareto_front
from evonas.strategies import (
    EvosaxStrategy,
    GeneticAlgorithm,
    RandomSearch,
    RegularizedEvolution,
    Strategy,
    get_strategy,
    list_strategies,
    register_strategy,
)

__version__ = "0.1.0"

# The experiment layer pulls in orbax and the report: loaded on first use, so `evonas list` and
# scripts that only use strategies stay quick to import.
_LAZY = {"Experiment": "evonas.experiment", "ExperimentConfig": "evonas.experiment",
         "load_model": "evonas.experiment"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'evonas' has no attribute {name!r}")


__all__ = [
    "Encoding",
    "Evaluator",
    "EvosaxStrategy",
    "Experiment",
    "ExperimentConfig",
    "GeneticAlgorithm",
    "GenomeSpace",
    "RandomSearch",
    "RegularizedEvolution",
    "Results",
    "Strategy",
    "TabularEvaluator",
    "TrainableEncoding",
    "get_encoding",
    "get_strategy",
    "hypervolume",
    "list_encodings",
    "list_strategies",
    "load_model",
    "pareto_front",
    "register_encoding",
    "register_strategy",
]
