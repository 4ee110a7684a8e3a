"""Genome spaces, the ``Encoding`` protocol and the built-in encodings."""

from evonas.genomes.cell import CellEncoding
from evonas.genomes.conv import ConvEncoding
from evonas.genomes.encoding import (
    ENTRY_POINT_GROUP,
    Encoding,
    TrainableEncoding,
    get_encoding,
    list_encodings,
    register_encoding,
)
from evonas.genomes.mlp import MLPEncoding
from evonas.genomes.space import GenomeSpace

register_encoding("nb201", CellEncoding)
register_encoding("mlp", MLPEncoding)
register_encoding("conv", ConvEncoding)

__all__ = [
    "CellEncoding",
    "ConvEncoding",
    "ENTRY_POINT_GROUP",
    "Encoding",
    "GenomeSpace",
    "MLPEncoding",
    "TrainableEncoding",
    "get_encoding",
    "list_encodings",
    "register_encoding",
]
