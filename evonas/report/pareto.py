"""``pareto_front``: the non-dominated points of a set, each objective maximised or minimised."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_CHUNK = 1024  # rows compared at once: bounds memory to CHUNK x N x M booleans


def pareto_front(points: np.ndarray | Sequence[Sequence[float]],
                 maximize_mask: np.ndarray | Sequence[bool]) -> np.ndarray:
    """Indices of the points that no other point dominates.

    A point dominates another when it is at least as good in every objective and strictly
    better in one. Equal points do not dominate each other, so duplicates on the front are all
    kept. Rows with a NaN are never on the front and never dominate.

    Args:
        points: ``float[N, M]``, one row per point, one column per objective.
        maximize_mask: ``bool[M]``: ``True`` where higher is better, ``False`` where lower is.

    Returns:
        ``int64[K]``: the indices of the front, ascending.

    Raises:
        ValueError: when the shapes disagree.
    """
    pts = np.asarray(points, dtype=np.float64)
    mask = np.asarray(maximize_mask, dtype=bool)
    if pts.ndim == 1 and mask.ndim == 1 and pts.size == 0:
        return np.zeros((0,), np.int64)
    if pts.ndim != 2 or mask.shape != (pts.shape[1],):
        raise ValueError(
            f"pareto_front needs points of shape [N, M] and maximize_mask of shape [M]; got "
            f"{pts.shape} and {mask.shape}"
        )
    valid = ~np.isnan(pts).any(axis=1)
    # Negate maximised objectives so that lower is better everywhere.
    cost = np.where(mask, -pts, pts)[valid]
    on_front = np.ones(len(cost), dtype=bool)
    for start in range(0, len(cost), _CHUNK):
        block = cost[start:start + _CHUNK, None, :]  # [B, 1, M]: the points being judged
        no_worse = np.all(cost[None, :, :] <= block, axis=-1)  # [B, N]
        better = np.any(cost[None, :, :] < block, axis=-1)
        on_front[start:start + _CHUNK] = ~np.any(no_worse & better, axis=1)
    return np.flatnonzero(valid)[on_front].astype(np.int64)
