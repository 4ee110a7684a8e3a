"""``Proxies``: zero-cost proxies of every genome (scores of the untrained network,
``evonas.train.proxies``), recorded as metrics and usable as objectives and constraints."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from evonas.evaluators.base import Screen
from evonas.objectives.constraints import Constraint
from evonas.train import ProgramCache
from evonas.train.proxies import check_proxies, zero_cost_scores


class Proxies(Screen):
    """Scores every genome that reaches it with the zero-cost proxies ``names`` (one compiled
    program for the population, from the evaluation key, so the networks scored are those the
    inner evaluator's training starts from); genomes that break a constraint on a proxy fail
    untrained.

    Args:
        inner: the evaluator of the genomes that meet the constraints.
        encoding: a trainable encoding.
        dataset: an ``evonas.data.Dataset`` (one batch of its training split is used).
        names: the proxies (``naswot``, ``synflow``, ``grad_norm``, ``snip``).
        constraints: bounds on the proxies.
        cache: where the compiled program is kept between generations.
    """

    def __init__(self, inner: Any, encoding: Any, dataset: Any, names: Sequence[str],
                 constraints: Sequence[Constraint] = (), cache: ProgramCache | None = None):
        super().__init__(inner, constraints)
        self.measures = check_proxies("evaluator.proxies", names, encoding)
        self.proxy_encoding = encoding
        self.dataset = dataset
        self.cache = cache if cache is not None else ProgramCache()

    def measure(self, key: jax.Array, genomes: np.ndarray) -> dict[str, np.ndarray]:
        return zero_cost_scores(key, self.proxy_encoding, genomes, self.dataset, self.measures,
                                cache=self.cache)
