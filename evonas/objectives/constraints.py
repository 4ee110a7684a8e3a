"""Constraints such as ``params <= 200000`` or ``edgegpu_latency <= 5 ms``: parsing and checking.

Used by experiments (``search.constraints``), by the tabular evaluator (inside jit) and by the
feasibility search (``evonas.strategies.search.closest_to_feasible``); a bound may carry the
metric's unit for readability (:func:`evonas.objectives.metrics.unit`: ``ms`` on a latency, ``mJ``
on an energy).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax.numpy as jnp

from evonas.objectives.metrics import unit as metric_unit

CONSTRAINT_OPERATORS = ("<=", ">=", "<", ">")

_CONSTRAINT = re.compile(
    r"^\s*([A-Za-z_]\w*)\s*(<=|>=|<|>)\s*([-+0-9.eE_]+)\s*([A-Za-z]+)?\s*$")


class Constraint(NamedTuple):
    """A bound on one metric of an evaluated architecture, such as ``params <= 200000``."""

    metric: str
    operator: str
    bound: float

    def holds(self, value: float) -> bool:
        """Whether ``value`` satisfies the bound (NaN never does)."""
        if self.operator == "<=":
            return value <= self.bound
        if self.operator == ">=":
            return value >= self.bound
        if self.operator == "<":
            return value < self.bound
        return value > self.bound

    def holds_array(self, value: Any) -> Any:
        """:meth:`holds` on a JAX or numpy array (jit-able); NaN never holds."""
        ops = {"<=": jnp.less_equal, "<": jnp.less, ">=": jnp.greater_equal, ">": jnp.greater}
        return ops[self.operator](value, self.bound)

    def __str__(self) -> str:
        return f"{self.metric} {self.operator} {self.bound:g}"


def parse_constraint(text: str) -> Constraint:
    """Reads ``"METRIC OP NUMBER [UNIT]"`` with ``OP`` one of ``<=, >=, <, >``; the unit, when
    given, must be the metric's (``ms`` for ``*latency``, ``mJ`` for ``*energy``).

    Raises:
        ValueError: naming the text and the expected form.
    """
    match = _CONSTRAINT.match(text) if isinstance(text, str) else None
    bound = None
    if match:
        try:
            bound = float(match.group(3))
        except ValueError:
            bound = None
    if bound is None or not math.isfinite(bound):
        raise ValueError(
            f"constraint {text!r} must look like 'METRIC OP NUMBER' with OP one of "
            f"{list(CONSTRAINT_OPERATORS)}, e.g. 'params <= 200000'"
        )
    metric, unit = match.group(1), match.group(4)
    if unit is not None:
        expected = metric_unit(metric)
        if unit != expected:
            where = f"{metric} is in {expected}" if expected else f"{metric} takes no unit"
            raise ValueError(f"constraint {text!r}: unit {unit!r} not understood ({where})")
    return Constraint(metric, match.group(2), bound)


def violation(constraints: Sequence[Constraint], values: Mapping[str, Any]) -> Any:
    """How far ``values`` are outside ``constraints``: 0 inside, else the sum of each broken
    bound's excess relative to the bound's size. Works on floats and on JAX / numpy arrays."""
    total = 0.0
    for c in constraints:
        value, scale = values[c.metric], max(abs(c.bound), 1e-12)
        excess = value - c.bound if c.operator in ("<=", "<") else c.bound - value
        if c.operator in ("<", ">"):  # a strict bound is broken at equality too
            excess = excess + scale * 1e-9
        total = total + jnp.maximum(excess, 0.0) / scale
    return total
