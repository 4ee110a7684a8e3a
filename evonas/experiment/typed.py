"""Typed loading of nested config dataclasses: YAML parsing, type coercion, readable errors.

Shared by the sections of ``ExperimentConfig``. Value checks (ranges, choices, names) are
``evonas.checks``; this module turns YAML into typed dataclasses and names the key that is wrong.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from evonas.checks import did_you_mean
from evonas.store import configfile

# -- YAML ------------------------------------------------------------------------------------


def load_yaml(text: str, where: str = "the YAML text") -> Any:
    """Parses YAML text the way config files and ``--set`` values are read (bounded in size and
    depth: :func:`evonas.store.configfile.load_yaml`).

    Raises:
        ValueError: not YAML, or not a config's size (one line naming ``where``).
    """
    return configfile.load_yaml(text, where)


# -- generic checks --------------------------------------------------------------------------


def describe_type(hint: Any) -> str:
    if hint is Any:
        return "any value"
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if len(args) == 2 and type(None) in args and any(dataclasses.is_dataclass(a)
                                                         for a in args):
            section = next(a for a in args if a is not type(None))
            return f"{describe_type(section)}, true (its defaults), or null (off)"
        return " or ".join("null" if a is type(None) else describe_type(a) for a in args)
    if origin is dict:
        return "a mapping"
    if origin is tuple:
        return f"a list of {describe_type(args[0])}"
    if dataclasses.is_dataclass(hint):
        return f"a mapping with keys {[f.name for f in dataclasses.fields(hint)]}"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
        hint, getattr(hint, "__name__", str(hint))
    )


def coerce(path: str, value: Any, hint: Any) -> Any:
    """``value`` checked against the type hint ``hint`` (ints widen to floats, lists to tuples).

    Raises:
        ValueError: naming ``path``, the bad value and the expected type.
    """
    if hint is Any:
        return value
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if (len(inner) == 1 and dataclasses.is_dataclass(inner[0]) and type(None) in args
                and isinstance(value, bool)):
            # A section that can be off: true is the section with its defaults, false is off.
            return inner[0]() if value else None
        if len(inner) == 1 and dataclasses.is_dataclass(inner[0]) and isinstance(value, Mapping):
            return coerce(path, value, inner[0])  # its own checks name the key that is wrong
        if len(inner) == 1:
            try:
                return coerce(path, value, inner[0])
            except ValueError:
                pass  # re-raised below with the full union as the expected type
    elif dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        if isinstance(value, Mapping):
            return from_mapping(hint, value, path)
    elif origin is dict:
        if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
            return copy.deepcopy(dict(value))
    elif origin is tuple:
        if isinstance(value, Sequence) and not isinstance(value, str):
            return tuple(coerce(f"{path}[{i}]", v, args[0]) for i, v in enumerate(value))
    elif hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    raise ValueError(
        f"{path} must be {describe_type(hint)}; got {value!r} ({type(value).__name__})"
    )


def unknown_key(path: str, key: str, valid: Sequence[str]) -> ValueError:
    section = f"section {path.rsplit('.', 1)[0]!r}" if "." in path else "the top level"
    return ValueError(f"unknown key {path!r}{did_you_mean(key, valid)} in {section}; valid keys: "
                      f"{', '.join(valid)}")


def from_mapping(cls: type, mapping: Any, path: str, base: Any = None) -> Any:
    """Builds the dataclass ``cls`` from a mapping, rejecting unknown keys and bad types.

    Keys left out take ``base``'s values when given, else the class defaults; a section whose
    default is an instance other than its class's default (``ExperimentConfig.train =
    TrainConfig(steps=200)``) starts from that instance, so a YAML that sets one key of it
    keeps the others.
    """
    where = path or "the config"
    if not isinstance(mapping, Mapping):
        raise ValueError(
            f"{where} must be a mapping of keys to values; got {mapping!r} "
            f"({type(mapping).__name__})"
        )
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    names = list(fields)
    kwargs = {} if base is None else {n: getattr(base, n) for n in names}
    for key, value in mapping.items():
        full = f"{path}.{key}" if path else str(key)
        if key not in names:
            raise unknown_key(full, key, names)
        default = fields[key].default
        if (dataclasses.is_dataclass(default) and not isinstance(default, type)
                and isinstance(value, Mapping) and default != type(default)()):
            kwargs[key] = from_mapping(type(default), value, full, base=default)
        else:
            kwargs[key] = coerce(full, value, hints[key])
    try:
        return cls(**kwargs)
    except ValueError as err:
        # Sections defined elsewhere (TrainConfig) name themselves by class; name the YAML path.
        prefix = f"{cls.__name__}."
        if path and str(err).startswith(prefix):
            raise ValueError(str(err).replace(prefix, f"{path}.")) from None
        raise


def check_fields(obj: Any, path: str) -> None:
    """Coerces every field of a frozen dataclass in place (so direct construction is checked)."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = coerce(f"{path}.{f.name}" if path else f.name, getattr(obj, f.name), hints[f.name])
        object.__setattr__(obj, f.name, value)
