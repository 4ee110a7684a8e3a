"""Search constraints such as ``params <= 200000``: parsing and checking."""

from __future__ import annotations

import math
import re
from typing import NamedTuple

CONSTRAINT_OPERATORS = ("<=", ">=", "<", ">")

_CONSTRAINT = re.compile(r"^\s*([A-Za-z_]\w*)\s*(<=|>=|<|>)\s*([-+0-9.eE_]+)\s*$")


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


def parse_constraint(text: str) -> Constraint:
    """Reads ``"METRIC OP NUMBER"`` with ``OP`` one of ``<=, >=, <, >``.

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
    return Constraint(match.group(1), match.group(2), bound)
