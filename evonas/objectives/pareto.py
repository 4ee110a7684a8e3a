"""Pareto fronts and exact hypervolume of point sets, each objective maximised or minimised.

Host-side (numpy) library functions for reports, benchmarks and the command line.

- ``pareto_front``: the non-dominated points (Pareto 1896; the notion every multi-objective
  optimiser uses, e.g. Deb, Pratap, Agarwal & Meyarivan 2002, "A Fast and Elitist Multiobjective
  Genetic Algorithm: NSGA-II", IEEE TEVC).
- ``hypervolume``: the Lebesgue measure of the region the points dominate, bounded by a
  reference point (Zitzler & Thiele 1998, "Multiobjective Optimization Using Evolutionary
  Algorithms — A Comparative Case Study", PPSN). Exact for any number of objectives by a
  dimension sweep (While, Hingston, Barone & Huband 2006, "A Faster Algorithm for Calculating
  Hypervolume", IEEE TEVC): O(N log N) in 2-D, an O(N log N) sweep over the third objective that
  keeps the 2-D front of the points seen so far in 3-D (Beume, Fonseca, López-Ibáñez, Paquete &
  Vahrenhold 2009, "On the Complexity of Computing the Hypervolume Indicator", IEEE TEVC), and
  slices of the 3-D path beyond.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import numpy as np

_CHUNK = 1024  # rows compared at once by pareto_front: bounds memory to CHUNK x N x M booleans

ArrayLike2D = np.ndarray | Sequence[Sequence[float]]


def pareto_front(points: ArrayLike2D, maximize: np.ndarray | Sequence[bool]) -> np.ndarray:
    """Indices of the points that no other point dominates.

    A point dominates another when it is at least as good in every objective and strictly
    better in one. Equal points do not dominate each other, so duplicates on the front are all
    kept. Rows with a NaN are never on the front and never dominate.

    Args:
        points: ``float[N, M]``, one row per point, one column per objective.
        maximize: ``bool[M]``: ``True`` where higher is better, ``False`` where lower is.

    Returns:
        ``int64[K]``: the indices of the front, ascending.

    Raises:
        ValueError: when the shapes disagree.
    """
    pts = np.asarray(points, dtype=np.float64)
    mask = np.asarray(maximize, dtype=bool)
    if pts.ndim == 1 and mask.ndim == 1 and pts.size == 0:
        return np.zeros((0,), np.int64)
    if pts.ndim != 2 or mask.shape != (pts.shape[1],):
        raise ValueError(
            f"pareto_front needs points of shape [N, M] and maximize of shape [M]; got "
            f"{pts.shape} and {mask.shape}"
        )
    valid = ~np.isnan(pts).any(axis=1)
    # Negate maximised objectives so that lower is better everywhere.
    cost = np.where(mask, -pts, pts)[valid]
    if cost.shape[1] == 2:
        return np.flatnonzero(valid)[_front_2d(cost)].astype(np.int64)
    on_front = np.ones(len(cost), dtype=bool)
    for start in range(0, len(cost), _CHUNK):
        block = cost[start:start + _CHUNK, None, :]  # [B, 1, M]: the points being judged
        no_worse = np.all(cost[None, :, :] <= block, axis=-1)  # [B, N]
        better = np.any(cost[None, :, :] < block, axis=-1)
        on_front[start:start + _CHUNK] = ~np.any(no_worse & better, axis=1)
    return np.flatnonzero(valid)[on_front].astype(np.int64)


def _front_2d(cost: np.ndarray) -> np.ndarray:
    """``bool[N]``: the non-dominated rows of ``cost`` (2 columns, minimised), in O(N log N).

    Sorted by (x, y), a point is dominated exactly when a point of smaller x has y <= its y, or a
    point of the same x has a smaller y; equal points do not dominate each other.
    """
    on_front = np.zeros(len(cost), dtype=bool)
    if len(cost) == 0:
        return on_front
    order = np.lexsort((cost[:, 1], cost[:, 0]))
    x, y = cost[order, 0], cost[order, 1]
    starts = np.concatenate([[True], x[1:] != x[:-1]])
    group = np.cumsum(starts) - 1
    group_min = y[starts][group]  # sorted by y within a group: its first y is its minimum
    running = np.minimum.accumulate(y)
    before = np.concatenate([[np.inf], running[np.flatnonzero(starts)[1:] - 1]])[group]
    on_front[order] = (y == group_min) & (y < before)
    return on_front


def hypervolume(
    points: ArrayLike2D,
    reference: np.ndarray | Sequence[float],
    maximize: np.ndarray | Sequence[bool],
) -> float:
    """The exact hypervolume that ``points`` dominate, bounded by ``reference``.

    The volume of the union of the boxes spanned by each point and the reference point. Only
    points strictly better than the reference in every objective count; rows with a NaN count for
    nothing, and duplicates or dominated points add nothing, so the result is the hypervolume of
    the set's Pareto front.

    Args:
        points: ``float[N, M]`` objective values (``N`` may be 0).
        reference: ``float[M]``, the point the volume is measured from: usually the worst value
            of each objective (below every maximised, above every minimised objective).
        maximize: ``bool[M]``: ``True`` where higher is better, ``False`` where lower is.

    Returns:
        The hypervolume, a Python float (``0.0`` when no point beats the reference).

    Raises:
        ValueError: when the shapes disagree, or the reference has a NaN.
    """
    mask = np.asarray(maximize, dtype=bool)
    ref = np.asarray(reference, dtype=np.float64)
    pts = np.asarray(points, dtype=np.float64)
    if mask.ndim != 1 or mask.size == 0 or ref.shape != mask.shape:
        raise ValueError(
            f"hypervolume needs reference of shape [M] and maximize of shape [M] with M >= 1; "
            f"got {ref.shape} and {mask.shape}"
        )
    if pts.ndim == 1 and pts.size == 0:  # [] for "no points"
        pts = pts.reshape(0, mask.size)
    if pts.ndim != 2 or pts.shape[1] != mask.size:
        raise ValueError(
            f"hypervolume needs points of shape [N, M] with M = {mask.size} (the length of "
            f"maximize and reference); got {pts.shape}"
        )
    if np.isnan(ref).any():
        raise ValueError(f"hypervolume: reference must not contain NaN; got {ref.tolist()}")
    # Minimise everything, relative to the reference: a point counts where all its coordinates
    # are negative (NaN compares False, so NaN rows drop out here too).
    cost = np.where(mask, ref - pts, pts - ref)
    cost = cost[np.all(cost < 0.0, axis=1)]
    if len(cost) == 0:
        return 0.0
    return float(_volume(cost))


def _volume(cost: np.ndarray) -> float:
    """Hypervolume of ``cost`` (minimised, every entry < 0) against the origin."""
    num_objectives = cost.shape[1]
    if num_objectives == 1:
        return float(-cost.min())
    if num_objectives == 2:
        return _volume_2d(cost)
    if num_objectives == 3:
        return _volume_3d(cost)
    return _volume_sweep(cost)


def _volume_2d(cost: np.ndarray) -> float:
    """O(N log N): sort by the first objective, keep the points that lower the running minimum
    of the second (the front, as a staircase), and add up the staircase's rectangles."""
    order = np.lexsort((cost[:, 1], cost[:, 0]))
    x, y = cost[order, 0], cost[order, 1]
    before = np.minimum.accumulate(y)
    keep = np.empty(len(y), dtype=bool)
    keep[0] = True
    keep[1:] = y[1:] < before[:-1]
    x, y = x[keep], y[keep]
    widths = np.diff(x, append=0.0)
    return float(np.dot(widths, -y))


def _volume_3d(cost: np.ndarray) -> float:
    """Sweep up the third objective, keeping the 2-D front of the points passed so far.

    The 2-D front is a staircase (x ascending, y strictly descending) whose area is updated in
    amortised O(log N) per point: an inserted point removes the steps it dominates, which are
    contiguous, and each step is removed at most once.
    """
    order = np.argsort(cost[:, 2], kind="stable")
    xs_all, ys_all, zs_all = (cost[order, k].tolist() for k in range(3))
    xs: list[float] = []
    ys: list[float] = []
    area = 0.0
    volume = 0.0
    count = len(xs_all)
    for i in range(count):
        px, py = xs_all[i], ys_all[i]
        j = bisect.bisect_right(xs, px)
        # Dominated (weakly) by the step at or before px: nothing to add.
        if not (j > 0 and ys[j - 1] <= py):
            if j > 0 and xs[j - 1] == px:  # same x, higher: p replaces that step
                j -= 1
            upper = ys[j - 1] if j > 0 else 0.0  # the staircase's height just left of px
            k = j
            covered = 0.0
            left, height = px, upper
            while k < len(xs) and ys[k] >= py:
                covered += (xs[k] - left) * -height
                left, height = xs[k], ys[k]
                k += 1
            right = xs[k] if k < len(xs) else 0.0
            covered += (right - left) * -height
            area += (right - px) * -py - covered
            xs[j:k] = [px]
            ys[j:k] = [py]
        next_z = zs_all[i + 1] if i + 1 < count else 0.0
        volume += area * (next_z - zs_all[i])
    return volume


def _volume_sweep(cost: np.ndarray) -> float:
    """Any M >= 4: slices along the last objective, each an (M-1)-objective hypervolume.

    The points below the current slice are kept as their (M-1)-objective front, updated one point
    at a time; a point that front already dominates leaves the slice's volume unchanged, so it
    costs one dominance check instead of a new (M-1)-objective volume.
    """
    order = np.argsort(cost[:, -1], kind="stable")
    cost = cost[order]
    z = cost[:, -1]
    heights = np.diff(z, append=0.0)
    front = cost[:0, :-1]
    area = 0.0
    volume = 0.0
    for i in range(len(cost)):
        point = cost[i, :-1]
        if not np.any(np.all(front <= point, axis=1)):
            front = np.concatenate([front[~np.all(point <= front, axis=1)], point[None]])
            area = _volume(front)
        volume += heights[i] * area
    return volume
