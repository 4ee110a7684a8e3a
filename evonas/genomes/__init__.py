"""Genome spaces, the ``Encoding`` protocol and the built-in encodings."""

from evonas.genomes.encoding import (
    ENTRY_POINT_GROUP,
    Encoding,
    TrainableEncoding,
    get_encoding,
    list_encodings,
    register_encoding,
)
from evonas.genomes.space import GenomeSpace

__all__ = [
    "ENTRY_POINT_GROUP",
    "Encoding",
    "GenomeSpace",
    "TrainableEncoding",
    "get_encoding",
    "list_encodings",
    "register_encoding",
]
