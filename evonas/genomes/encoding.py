"""The ``Encoding`` protocol and the one name -> encoding registry.

An encoding is a small set of pure functions over a :class:`GenomeSpace` (and, for trainable
encodings, one fixed-shape Flax supernet):

* ``space``: the genome space.
* ``describe(genome) -> dict``: readable and JSON-serialisable (host side).
* ``cost(genome) -> {name: scalar}``: analytic costs, jit- and vmap-able. Keys ``params`` and
  ``flops`` are the useful cost of the architecture itself; trainable encodings add
  ``executed_params`` and ``executed_flops``, what the fixed-shape supernet really computes.

Trainable encodings add (the contract the population trainer relies on):

* ``decode(genome) -> Arch``: a fixed-shape pytree of arrays (masks, one-hot selectors, integer
  switches), jit/vmap-able; always shaped for the largest network of the space.
* ``bounds(genome) -> Bounds``: host side, hashable: the exact static shapes of this architecture
  (its *shape signature*: the genes that change tensor shapes; the others stay masks).
  ``join(a, b) -> Bounds`` is the smallest bounds that hold both; ``max_bounds()`` holds every
  genome.
* ``supernet(bounds=None) -> flax.linen.Module``: ``module.apply(variables, arch, x)`` computes the
  network ``arch`` selects, with parameter shapes fixed by ``bounds`` (``None``: ``max_bounds()``,
  the fully masked supernet). Shapes never depend on genome values. ``module.init(key, arch, x)``
  initialises the active part like the standalone module would (fan-in of the real shape).
* ``slice_params(params, bounds)``: the max-bounds parameters cut down to ``bounds`` (static
  slicing), so every plan starts from the same initial values and gives the same numbers.
* ``cost(genome, bounds=None)``: ``params`` / ``flops`` (useful) and ``executed_params`` /
  ``executed_flops`` (what the module at ``bounds`` computes).
* ``build(genome) -> (module, to_params)``: the standalone exact-shape module of that architecture
  and the map from max-bounds supernet parameters to its parameters (host side, for export).

New encodings register with :func:`register_encoding` or, from another package, under the
entry-point group ``evonas.encodings`` (the entry point names a factory).
"""

from __future__ import annotations

import difflib
import importlib.metadata
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import jax

from evonas.genomes.space import GenomeSpace

ENTRY_POINT_GROUP = "evonas.encodings"


@runtime_checkable
class Encoding(Protocol):
    """What every encoding provides; see the module docstring."""

    name: str
    space: GenomeSpace

    def describe(self, genome: Any) -> dict[str, Any]: ...

    def cost(self, genome: jax.Array) -> dict[str, jax.Array]: ...


@runtime_checkable
class TrainableEncoding(Encoding, Protocol):
    """An encoding whose architectures can be trained: a fixed-shape supernet plus exact builds."""

    def decode(self, genome: jax.Array) -> Any: ...

    def bounds(self, genome: Any) -> Any: ...

    def join(self, a: Any, b: Any) -> Any: ...

    def max_bounds(self) -> Any: ...

    def supernet(self, bounds: Any = None) -> Any: ...

    def slice_params(self, params: Any, bounds: Any) -> Any: ...

    def build(self, genome: Any) -> tuple[Any, Callable[[Any], Any]]: ...


EncodingFactory = Callable[..., Encoding]

# The one module-level registry evonas keeps (STYLE.md, guideline 1).
_REGISTRY: dict[str, EncodingFactory] = {}
_entry_points_loaded = False


def register_encoding(name: str, factory: EncodingFactory, *, overwrite: bool = False) -> None:
    """Makes ``factory(**options) -> Encoding`` available as ``get_encoding(name, **options)``.

    Args:
        name: the encoding's name, as used in configs and on the command line.
        factory: a callable (often the encoding class) that takes the encoding's options.
        overwrite: replace an existing registration instead of raising.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"an encoding name must be a non-empty string; got {name!r}")
    if not callable(factory):
        raise TypeError(f"the factory registered as {name!r} must be callable; got {factory!r}")
    if name in _REGISTRY and not overwrite and _REGISTRY[name] is not factory:
        raise ValueError(
            f"an encoding named {name!r} is already registered; pass overwrite=True to replace it"
        )
    _REGISTRY[name] = factory


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in _REGISTRY:
            _REGISTRY[ep.name] = _LazyEntryPoint(ep)


class _LazyEntryPoint:
    """Defers importing a plug-in package until its encoding is asked for."""

    def __init__(self, ep: importlib.metadata.EntryPoint):
        self.ep = ep

    def __call__(self, **options: Any) -> Encoding:
        factory = self.ep.load()
        _REGISTRY[self.ep.name] = factory
        return factory(**options)


def list_encodings() -> list[str]:
    """Names of every registered encoding, entry points included, sorted."""
    _load_entry_points()
    return sorted(_REGISTRY)


def get_encoding(name: str, **options: Any) -> Encoding:
    """The encoding registered as ``name``, constructed with ``options``.

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    _load_entry_points()
    if name not in _REGISTRY:
        known = sorted(_REGISTRY)
        hint = difflib.get_close_matches(str(name), known, n=1)
        extra = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise ValueError(f"unknown encoding {name!r}{extra}; known encodings: {known}")
    return _REGISTRY[name](**options)
