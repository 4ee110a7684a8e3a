"""YAML as evonas reads it: configs, ``--set`` values and a run directory's ``config.yaml``.

PyYAML's safe loader builds plain values only, but a small text can still describe a huge or
endless value: aliases that repeat an anchor (``&a [*a, *a, ...]``, nested, a "billion laughs"),
an anchor inside itself, or nesting deeper than Python's recursion allows. A config is a few
hundred values, so what it may expand to is bounded here, each refusal in one line.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

CONFIG_LIMIT = 1 << 20  # bytes of a config file: a few kilobytes in practice
MAX_VALUES = 100_000  # values a config may expand to, aliases counted every time they repeat
MAX_DEPTH = 64  # mappings and lists inside each other


class Loader(yaml.SafeLoader):
    """PyYAML's safe loader, also reading ``1e-3`` as a float (YAML 1.1 wants ``1.0e-3``)."""


Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _measure(value: Any, where: str) -> None:
    """Counts what ``value`` expands to (each alias every time it repeats) without expanding
    it, and refuses too many values, too deep a nesting, or a value inside itself."""
    sizes: dict[int, tuple[int, int]] = {}  # id -> (values, depth), of containers measured
    active: set[int] = set()

    def visit(node: Any) -> tuple[int, int]:
        if not isinstance(node, (dict, list)):
            return 1, 0
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise ValueError(f"{where} holds a value inside itself (a YAML anchor used within "
                             "its own value); a config can't")
        active.add(key)
        children = list(node.items()) if isinstance(node, dict) else [(None, v) for v in node]
        count, depth = 1, 0
        for name, child in children:
            n, d = visit(child)
            count, depth = count + n + (name is not None), max(depth, d + 1)
            if count > MAX_VALUES:
                raise ValueError(f"{where} expands to more than {MAX_VALUES:,} values (YAML "
                                 "aliases that repeat an anchor count every time); a config "
                                 "is a few hundred")
            if depth > MAX_DEPTH:
                raise ValueError(f"{where} nests mappings and lists more than {MAX_DEPTH} deep; "
                                 "a config nests a few")
        active.discard(key)
        sizes[key] = (count, depth)
        return count, depth

    visit(value)


def load_yaml(text: str, where: str = "the YAML text") -> Any:
    """The value of YAML ``text``, checked to be a config's size (``where`` names it in
    errors).

    Raises:
        ValueError: not YAML, or too large, too deep or inside itself (one line).
    """
    try:
        value = yaml.load(text, Loader=Loader)  # noqa: S506 (a SafeLoader subclass)
    except RecursionError:
        raise ValueError(f"{where} nests mappings and lists more than {MAX_DEPTH} deep; a "
                         "config nests a few") from None
    except yaml.YAMLError as err:
        first = str(err).strip().splitlines()
        raise ValueError(f"{where} is not valid YAML: {' '.join(first[:2])[:200]}") from None
    try:
        _measure(value, where)
    except RecursionError:
        raise ValueError(f"{where} nests mappings and lists more than {MAX_DEPTH} deep; a "
                         "config nests a few") from None
    return value
