"""Genome spaces, the ``Encoding`` protocols and the built-in encodings.

- :class:`GenomeSpace`: named integer genes; host helpers and a jit-able ``rank``.
- :class:`Encoding` / :class:`TrainableEncoding`: the protocols, each method documented;
  :func:`check_trainable` names what an encoding lacks.
- The built-in encodings ``mlp``, ``conv`` (chain CNN, 1-D/2-D) and ``nb201`` (the
  NAS-Bench-201 cell), and the one registry of encodings.
"""

from evonas.genomes.cell import CellEncoding
from evonas.genomes.conv import ConvEncoding
from evonas.genomes.encoding import (
    Encoding,
    TrainableEncoding,
    batched_cost,
    canonical_genomes,
    check_trainable,
    cost_names,
    parse_genome,
    trainable_problems,
)
from evonas.genomes.mlp import MLPEncoding
from evonas.genomes.registry import (
    BUILTIN_ENCODINGS,
    ENCODINGS,
    ENTRY_POINT_GROUP,
    accepts_option,
    encoding_factory,
    get_encoding,
    list_encodings,
    register_encoding,
)
from evonas.genomes.space import GenomeSpace

__all__ = [
    "BUILTIN_ENCODINGS",
    "ENCODINGS",
    "ENTRY_POINT_GROUP",
    "CellEncoding",
    "ConvEncoding",
    "Encoding",
    "GenomeSpace",
    "batched_cost",
    "cost_names",
    "MLPEncoding",
    "TrainableEncoding",
    "accepts_option",
    "canonical_genomes",
    "check_trainable",
    "trainable_problems",
    "encoding_factory",
    "get_encoding",
    "list_encodings",
    "parse_genome",
    "register_encoding",
]
