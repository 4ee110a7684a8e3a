"""Structured pruning helpers shared by the encodings' ``prune_channels`` hooks.

A structured prune removes whole units (dense units, conv channels) with the smallest norms and
maps the network back to a smaller genome *of the same space*: every pruned width is one of the
space's width choices, so the result is an ordinary architecture with its analytic costs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from evonas.genomes.encoding import batched_cost


def check_sparsity(sparsity: Any) -> float:
    """``sparsity`` as a float in (0, 1).

    Raises:
        ValueError: one line naming the value and what is allowed.
    """
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)) or not (
            0.0 < float(sparsity) < 1.0):
        raise ValueError(f"sparsity={sparsity!r} is not allowed; it is the share of parameters "
                         "to remove, strictly between 0 and 1")
    return float(sparsity)


def shrink_genome(encoding: Any, genome: np.ndarray, width_genes: Sequence[int],
                  sparsity: float, steps: int = 100) -> np.ndarray:
    """The largest uniform shrink of ``genome``'s width genes whose analytic parameter count is
    at most ``(1 - sparsity)`` of the original's.

    Each width gene (an index into ``encoding.widths``) becomes the widest choice at most ``r``
    times its width, for ``r`` from just below 1 down to 0 (never below the narrowest choice);
    the first ``r`` that meets the budget wins. When even the narrowest widths do not, they are
    returned (the caller reports the sparsity reached).
    """
    widths = np.asarray(encoding.widths, np.float64)
    genome = np.asarray(genome)
    candidates = [np.array(genome)]  # the genome itself first: its count is the base
    for r in np.linspace(1.0, 0.0, steps + 1)[1:]:
        candidate = np.array(genome)
        for pos in width_genes:
            limit = max(r * widths[genome[pos]], widths.min())
            allowed = np.flatnonzero(widths <= limit + 1e-9)
            candidate[pos] = allowed[np.argmax(widths[allowed])]
        candidates.append(candidate)
    # One compiled, vmapped cost for every candidate (an eager cost per candidate dispatched
    # each of its operations one by one: seconds per genome).
    params = np.asarray(batched_cost(encoding)(np.stack(candidates))["params"], np.float64)
    target = (1.0 - sparsity) * params[0]
    fits = np.flatnonzero(params[1:] <= target)
    return candidates[1 + fits[0]] if len(fits) else candidates[-1]


def keep_largest(norms: np.ndarray, n: int) -> np.ndarray:
    """Indices of the ``n`` largest ``norms``, in their original order (ties: the earlier)."""
    order = np.argsort(-np.asarray(norms), kind="stable")[:n]
    return np.sort(order)


def unit_norms(kernel: np.ndarray) -> np.ndarray:
    """The L2 norm of each output unit's incoming weights (the kernel's last axis)."""
    kernel = np.asarray(kernel)
    return np.linalg.norm(kernel.reshape(-1, kernel.shape[-1]), axis=0)
