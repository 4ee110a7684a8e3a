"""Constraints such as ``params <= 200000`` or ``edgegpu_latency <= 5``: parsing, checking, and
whether any architecture of a space can meet them.

Used by experiments (``search.constraints``) and by the tabular evaluator; a bound may carry the
metric's unit for readability: ``ms`` on a latency, ``mJ`` on an energy.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

CONSTRAINT_OPERATORS = ("<=", ">=", "<", ">")

_CONSTRAINT = re.compile(
    r"^\s*([A-Za-z_]\w*)\s*(<=|>=|<|>)\s*([-+0-9.eE_]+)\s*([A-Za-z]+)?\s*$")
# The unit a bound may be written with, by the metric name's ending.
_UNITS = {"latency": "ms", "energy": "mJ"}


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
        expected = next((u for end, u in _UNITS.items() if metric.endswith(end)), None)
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


def closest_to_feasible(encoding: Any, constraints: Sequence[Constraint], key: jax.Array,
                        samples: int = 4096, evaluations: int = 4096
                        ) -> tuple[np.ndarray, dict[str, float], float]:
    """The architecture of ``encoding`` that best meets cost ``constraints``, and its costs.

    ``samples`` random genomes, then (only if none of them is feasible) a genetic algorithm of
    ``evaluations`` evaluations that minimises :func:`violation`: a feasible architecture that
    random sampling misses (a corner of the space) is still found. Everything is jitted; the
    costs are the encoding's analytic ``cost``.

    Returns:
        ``(genome, costs, violation)``: violation 0 means the constraints can be met.
    """
    from evonas.benchmarks.search import search
    from evonas.strategies.genetic_algorithm import GeneticAlgorithm

    cost = jax.vmap(encoding.cost)
    k_sample, k_search = jax.random.split(key)

    def measure(genomes):
        return violation(constraints, cost(genomes))

    genomes = encoding.space.sample(k_sample, samples)
    scores = jax.jit(measure)(genomes)
    if float(jnp.min(scores)) > 0.0:
        ga = GeneticAlgorithm(encoding.space, population_size=64, maximize=False)
        trace = jax.jit(lambda k: search(ga, lambda _, g: (measure(g), measure(g)), k,
                                         evaluations))(k_search)
        genomes = jnp.concatenate([genomes, trace.genomes])
        scores = jnp.concatenate([scores, trace.observed])
    best = int(jnp.argmin(scores))
    values = {k: float(v[best]) for k, v in cost(genomes[best:best + 1]).items()}
    return np.asarray(genomes[best]), values, float(scores[best])
