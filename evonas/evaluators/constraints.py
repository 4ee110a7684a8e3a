"""``Constrain``: constraints on what the inner evaluator measured (``val_acc >= 0.9``), checked
after it ran: an architecture that breaks one fails, with the bound as the reason."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from evonas.evaluators.base import Results, Wrapper, violations
from evonas.objectives.constraints import Constraint


class Constrain(Wrapper):
    """Fails every evaluated architecture whose measured metrics break ``constraints``.

    Args:
        inner: the evaluator.
        constraints: bounds on metrics the inner evaluator measures.
    """

    def __init__(self, inner: Any, constraints: Sequence[Constraint]):
        super().__init__(inner)
        self.constraints = tuple(constraints)

    def evaluate(self, key: jax.Array, genomes: jax.Array,
                 parents: list[list[str]] | None = None) -> Results:
        results = self.inner_evaluate(key, np.asarray(genomes, np.int32), parents)
        metrics = {k: np.asarray(v, np.float64) for k, v in results.metrics.items()}
        failed = np.array(results.failed, bool)
        broken = violations(self.constraints, metrics, len(failed))
        reasons = [results.reason(i) if failed[i] else broken[i] for i in range(len(failed))]
        failed |= np.asarray([r is not None for r in broken])
        return results.replace(failed=failed, reasons=tuple(reasons))
