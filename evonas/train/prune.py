"""Unstructured magnitude pruning: masks, a gradual sparsity schedule, counts.

Each weight matrix or kernel (a leaf with two or more axes) loses its smallest-magnitude entries
(layer by layer, so that no layer is emptied); biases are kept. The standalone trainer applies
the masks after every update (``train_module(..., sparsity_schedule=...)``), so pruned weights
stay zero while the rest fine-tune; the schedule raises the sparsity gradually (Zhu & Gupta 2017).
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np


def _prunable(leaf: Any) -> bool:
    return np.ndim(leaf) >= 2


def magnitude_masks(variables: Any, sparsity: float) -> Any:
    """Masks (``float32``, the variables' tree) zeroing the ``sparsity`` share of each weight
    leaf's smallest magnitudes; ones for biases and other vectors."""

    def mask(leaf: Any) -> np.ndarray:
        leaf = np.asarray(leaf)
        if not _prunable(leaf) or sparsity <= 0:
            return np.ones(leaf.shape, np.float32)
        drop = int(round(sparsity * leaf.size))
        keep = np.ones(leaf.size, np.float32)
        keep[np.argsort(np.abs(leaf).ravel(), kind="stable")[:drop]] = 0.0
        return keep.reshape(leaf.shape)

    return jax.tree.map(mask, variables)


def cubic_schedule(sparsity: float, steps: int, increments: int = 10
                   ) -> tuple[tuple[int, float], ...]:
    """``((step, sparsity), ...)``: Zhu & Gupta's cubic ramp ``s_i = s (1 - (1 - i / n)^3)``,
    pruned at ``n = increments`` evenly spaced steps over the first two thirds of ``steps`` (the
    first at step 0, the last reaching ``sparsity``); the last third fine-tunes at it."""
    ramp = max(1, (2 * steps) // 3)
    return tuple(((i - 1) * ramp // increments,
                  float(sparsity * (1.0 - (1.0 - i / increments) ** 3)))
                 for i in range(1, increments + 1))


def count_nonzero(variables: Any) -> int:
    """The number of non-zero parameters."""
    return int(sum(np.count_nonzero(np.asarray(leaf)) for leaf in jax.tree.leaves(variables)))


def count_params(variables: Any) -> int:
    """The number of parameters."""
    return int(sum(np.size(leaf) for leaf in jax.tree.leaves(variables)))
