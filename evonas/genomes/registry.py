"""The name -> encoding registry: the built-ins, ``register_encoding`` and the entry-point group
``evonas.encodings`` (see :class:`evonas.registry.Registry`)."""

from __future__ import annotations

from typing import Any

from evonas.genomes.cell import CellEncoding
from evonas.genomes.conv import ConvEncoding
from evonas.genomes.encoding import Encoding
from evonas.genomes.mlp import MLPEncoding
from evonas.registry import Factory, Registry, accepts

ENTRY_POINT_GROUP = "evonas.encodings"

BUILTIN_ENCODINGS: dict[str, Factory] = {
    "conv": ConvEncoding,
    "mlp": MLPEncoding,
    "nb201": CellEncoding,
}

ENCODINGS = Registry("encoding", ENTRY_POINT_GROUP, BUILTIN_ENCODINGS)


def register_encoding(name: str, factory: Factory, *, overwrite: bool = False) -> None:
    """Makes ``factory(**options) -> Encoding`` available as ``get_encoding(name, **options)``.

    A plug-in package may call this when it is imported *and* list the same factory under the
    entry-point group ``evonas.encodings``; both together work.

    Args:
        name: the encoding's name, as used in configs and on the command line.
        factory: a callable (often the encoding class) that takes the encoding's options.
        overwrite: replace an existing registration instead of raising.
    """
    ENCODINGS.register(name, factory, overwrite=overwrite)


def list_encodings() -> list[str]:
    """Names of every registered encoding, entry points included, sorted."""
    return ENCODINGS.names()


def encoding_factory(name: str) -> Factory:
    """The factory registered as ``name`` (``ValueError`` listing the known names)."""
    return ENCODINGS.get(name)


def get_encoding(name: str, **options: Any) -> Encoding:
    """The encoding registered as ``name``, constructed with ``options``.

    Raises:
        ValueError: an unknown name (listing the known ones), or an option the factory does
            not take (naming the option, the factory and the options it takes).
    """
    return ENCODINGS.build(name, **options)


def accepts_option(name: str, option: str) -> bool:
    """Whether the factory registered as ``name`` takes the keyword ``option`` (how the
    experiment decides to pass the dataset's ``input_shape`` and ``num_classes``)."""
    return accepts(ENCODINGS.get(name), option)
