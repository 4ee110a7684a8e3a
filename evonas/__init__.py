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

__all__ = [
    "Encoding",
    "Evaluator",
    "EvosaxStrategy",
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
    "list_encodings",
    "list_strategies",
    "register_encoding",
    "register_strategy",
]
