"""``SuccessiveHalving``: successive halving inside each population's training (Jamieson &
Talwalkar 2016; Li et al. 2017, "Hyperband"), around a training evaluator.

Everyone trains to the first rung and is evaluated; the best ``1 / eta`` (by validation accuracy)
continue, with the same optimiser state and batches, to the next rung, and so on to the full
budget (``evonas.train.halving``). The history records each architecture's steps as its fidelity.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from evonas.evaluators.base import Results, Wrapper
from evonas.train.halving import Halving


class SuccessiveHalving(Wrapper):
    """Successive halving around a :class:`~evonas.evaluators.TrainingEvaluator`.

    Args:
        inner: the training evaluator (its ``train`` and ``config``).
        rungs: steps at which the living are ranked; increasing, below ``train.steps``,
            multiples of ``train.steps_per_call``.
        eta: the halving rate (``>= 2``).
    """

    def __init__(self, inner: Any, rungs: Sequence[int], eta: int = 3):
        super().__init__(inner)
        if not hasattr(inner, "train"):
            raise ValueError(f"successive halving trains the architectures itself: it wraps a "
                             f"training evaluator, not {type(inner).__name__}")
        self.halving = Halving(tuple(rungs), eta)
        self.halving.check(inner.config.steps, inner.config.steps_per_call)

    def evaluate(self, key: jax.Array, genomes: jax.Array) -> Results:
        return self.inner.train(key, np.asarray(genomes, np.int32), halving=self.halving)
