"""One registry pattern for encodings, strategies and benchmarks: name -> factory.

A :class:`Registry` answers a name from three sources, in this order:

1. what the user registered at run time (:meth:`Registry.register`, e.g.
   ``evonas.register_encoding``);
2. the installed packages' entry points of the registry's group (``evonas.encodings``,
   ``evonas.strategies``, ``evonas.benchmarks``), loaded only when their name is asked for;
3. the built-ins: a literal ``{name: class}`` table in each package's ``__init__`` (evosax's
   pattern, ``evosax/algorithms/__init__.py``): nothing registers itself as a side effect of an
   import.

A plug-in may both be listed as an entry point *and* call ``register`` when its module is
imported (the common way a package registers itself): loading the entry point imports the
module, the module registers its factory, and that registration is what the name resolves to.
A built-in name can't be taken by an entry point (it is skipped with a warning), so installing a
package never changes what ``"mlp"`` means.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from evonas.checks import did_you_mean

Factory = Callable[..., Any]


def describe_factory(factory: Any) -> str:
    """``module.QualName`` of a factory, for messages."""
    module = getattr(factory, "__module__", None)
    qualname = getattr(factory, "__qualname__", None) or type(factory).__name__
    return f"{module}.{qualname}" if module else qualname


def _same_definition(a: Any, b: Any) -> bool:
    """Two factories defined at the same place (a module imported, or reloaded, twice)."""
    return a is b or (
        getattr(a, "__module__", None) is not None
        and getattr(a, "__module__", None) == getattr(b, "__module__", None)
        and getattr(a, "__qualname__", None) == getattr(b, "__qualname__", None)
    )


def parameters(factory: Factory) -> tuple[list[str], bool]:
    """The keyword names ``factory`` accepts, and whether it takes ``**kwargs`` as well."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # a builtin or C callable: can't tell, accept anything
        return [], True
    names, extra = [], False
    for p in signature.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            extra = True
        elif p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            names.append(p.name)
    return names, extra


def accepts(factory: Factory, option: str) -> bool:
    """Whether ``factory`` takes the keyword ``option``."""
    names, extra = parameters(factory)
    return extra or option in names


def call_with_options(kind: str, name: str, factory: Factory, args: tuple,
                      options: Mapping[str, Any], skip: tuple[str, ...] = ()) -> Any:
    """``factory(*args, **options)``, with an option it does not take refused in one line.

    Args:
        kind: what is being built (``"encoding"``), for messages.
        name: its registered name.
        factory: the callable.
        args: positional arguments (a strategy's space).
        options: keyword options from the user.
        skip: parameters filled by ``args``, not to be listed as options.

    Raises:
        ValueError: ``"encoding 'mlp' (evonas.genomes.mlp.MLPEncoding) takes no option 'depth';
            its options: input_shape, num_classes, ..."``, or the factory's own TypeError.
    """
    names, extra = parameters(factory)
    if not extra:
        for option in options:
            if option not in names:
                listed = [n for n in names if n not in skip]
                raise ValueError(
                    f"{kind} {name!r} ({describe_factory(factory)}) takes no option {option!r}"
                    f"{did_you_mean(option, listed)}; its options: {', '.join(listed) or 'none'}"
                )
    try:
        return factory(*args, **options)
    except TypeError as err:
        raise ValueError(f"{kind} {name!r} ({describe_factory(factory)}) rejected options "
                         f"{dict(options)}: {err}") from None


class Registry:
    """Name -> factory for one kind of plug-in; see the module docstring.

    Args:
        kind: ``"encoding"``, ``"strategy"`` or ``"benchmark"`` (for messages).
        group: the entry-point group, e.g. ``"evonas.encodings"``.
        builtins: the built-in ``{name: factory}`` table.
        plural: the kind's plural, for messages (default ``kind + "s"``).
    """

    def __init__(self, kind: str, group: str, builtins: Mapping[str, Factory],
                 plural: str | None = None):
        self.kind = kind
        self.plural = plural or f"{kind}s"
        self.group = group
        self._builtins = dict(builtins)
        self._registered: dict[str, Factory] = {}
        self._loaded: dict[str, Factory] = {}
        self._entry_points: dict[str, importlib.metadata.EntryPoint] | None = None

    # -- sources -------------------------------------------------------------------------------

    def entry_points(self) -> dict[str, importlib.metadata.EntryPoint]:
        """The group's entry points by name (read once; a built-in name is skipped)."""
        if self._entry_points is None:
            found: dict[str, importlib.metadata.EntryPoint] = {}
            for ep in importlib.metadata.entry_points(group=self.group):
                if ep.name in self._builtins:
                    warnings.warn(f"entry point {ep.value!r} of group {self.group!r} names the "
                                  f"built-in {self.kind} {ep.name!r}; it is ignored: rename it",
                                  stacklevel=3)
                    continue
                if ep.name in found and found[ep.name].value != ep.value:
                    warnings.warn(f"two entry points of group {self.group!r} are named "
                                  f"{ep.name!r} ({found[ep.name].value!r} and {ep.value!r}); "
                                  f"the first is used", stacklevel=3)
                    continue
                found[ep.name] = ep
            self._entry_points = found
        return self._entry_points

    def register(self, name: str, factory: Factory, *, overwrite: bool = False) -> None:
        """Makes ``factory`` what ``name`` resolves to.

        Registering the same definition again (a module imported twice) is a no-op, and so is a
        plug-in registering the name its own entry point declares.

        Raises:
            ValueError: an empty name, a built-in name, or a name taken by another factory
                (unless ``overwrite``).
            TypeError: ``factory`` is not callable.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} name must be a non-empty string; got {name!r}")
        if not callable(factory):
            raise TypeError(f"the factory registered as {self.kind} {name!r} must be callable; "
                            f"got {factory!r}")
        if name in self._builtins and not overwrite:
            raise ValueError(f"{name!r} is a built-in {self.kind}; register yours under another "
                             "name (or pass overwrite=True to replace it in this process)")
        taken = self._registered.get(name) or self._loaded.get(name)
        if taken is not None and not overwrite and not _same_definition(taken, factory):
            raise ValueError(f"a {self.kind} named {name!r} is already registered "
                             f"({describe_factory(taken)}); pass overwrite=True to replace it")
        self._registered[name] = factory

    # -- lookups -------------------------------------------------------------------------------

    def names(self) -> list[str]:
        """Every name: built-in, registered and installed (entry points), sorted."""
        return sorted(set(self._builtins) | set(self._registered) | set(self.entry_points()))

    def __contains__(self, name: object) -> bool:
        return name in self.names()

    def get(self, name: str) -> Factory:
        """The factory registered as ``name`` (an entry point is imported on first use).

        Raises:
            ValueError: an unknown name (listing the known ones), or a plug-in that fails to load.
        """
        if name in self._registered:
            return self._registered[name]
        if name in self._loaded:
            return self._loaded[name]
        entry = self.entry_points().get(name) if isinstance(name, str) else None
        if entry is not None:
            try:
                factory = entry.load()
            except Exception as err:  # a broken plug-in: say which, in one line
                first = str(err).strip().splitlines()[0] if str(err).strip() else ""
                raise ValueError(f"the {self.kind} {name!r} from entry point {entry.value!r} "
                                 f"(group {self.group!r}) could not be loaded: "
                                 f"{type(err).__name__}: {first}") from None
            # Importing the plug-in may have registered the name itself: that registration wins.
            factory = self._registered.get(name, factory)
            self._loaded[name] = factory
            return factory
        if name in self._builtins:
            return self._builtins[name]
        known = self.names()
        raise ValueError(f"unknown {self.kind} {name!r}{did_you_mean(name, known)}; "
                         f"known {self.plural}: {known}")

    def build(self, name: str, *args: Any, skip: tuple[str, ...] = (), **options: Any) -> Any:
        """``get(name)(*args, **options)`` with unknown options refused in one line
        (see :func:`call_with_options`)."""
        return call_with_options(self.kind, name, self.get(name), args, options, skip)
