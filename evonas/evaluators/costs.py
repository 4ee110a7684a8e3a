"""``Costs``: every genome's analytic costs, and the constraints on them checked before the inner
evaluator runs (an architecture over a parameter budget is never trained)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from evonas.evaluators.base import Screen
from evonas.genomes.encoding import batched_cost, cost_names
from evonas.objectives.constraints import Constraint


class Costs(Screen):
    """Computes ``encoding.cost`` of every genome (one compiled, vmapped program, kept by this
    wrapper) into ``Results.costs``; genomes that break a constraint on an analytic cost fail
    with the bound as the reason and are not evaluated.

    Args:
        inner: the evaluator of the genomes that meet the constraints.
        encoding: the encoding (its ``cost``).
        constraints: bounds on analytic costs (``params <= 200000``).
    """

    into = "costs"

    def __init__(self, inner: Any, encoding: Any, constraints: Sequence[Constraint] = ()):
        super().__init__(inner, constraints)
        self.cost_encoding = encoding
        self.measures = cost_names(encoding)
        self._cost = batched_cost(encoding)

    def measure(self, key: jax.Array, genomes: np.ndarray) -> dict[str, np.ndarray]:
        return {k: np.asarray(v, np.float64)
                for k, v in self._cost(jnp.asarray(genomes, jnp.int32)).items()}
