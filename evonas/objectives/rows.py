"""Objective values of history rows, the Pareto front of a run and its hypervolume.

A history row stores what was measured (``metrics``: ``val_acc``, ``latency``, ``depth``, ...)
and the analytic ``params`` / ``flops``; an objective is any of them by name. A row that failed
(diverged, or broke a constraint) has no objective values: it is never on a front and never best.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from evonas.objectives.metrics import HISTORY_COLUMNS
from evonas.objectives.pareto import hypervolume, pareto_front


def row_value(row: Mapping[str, Any], name: str) -> float:
    """The value of metric ``name`` in a history row (NaN when the row has none)."""
    value = row.get(name) if name in HISTORY_COLUMNS else None
    if value is None:
        value = (row.get("metrics") or {}).get(name)
    try:
        value = float(value)
    except (TypeError, ValueError):
        return math.nan
    return value if math.isfinite(value) else math.nan


def feasible(row: Mapping[str, Any]) -> bool:
    """Evaluated, not failed, within every constraint (the runner fails violators)."""
    return not row.get("failed") and row.get("fitness") is not None


def objective_matrix(rows: Sequence[Mapping[str, Any]],
                     objectives: Sequence[tuple[str, bool]]) -> np.ndarray:
    """``float64[N, M]``: each row's objective values; NaN rows where the row is infeasible.

    Args:
        rows: history rows.
        objectives: ``(name, maximize)`` per objective.
    """
    out = np.full((len(rows), len(objectives)), np.nan)
    for i, row in enumerate(rows):
        if feasible(row):
            out[i] = [row_value(row, name) for name, _ in objectives]
    return out


def unique_rows(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The first row of each architecture (cached re-evaluations repeat an earlier row)."""
    seen, out = set(), []
    for row in rows:
        key = row.get("genome_key") or tuple(row.get("genome") or ())
        if key not in seen:
            seen.add(key)
            out.append(row)
    return out


def front_rows(rows: Sequence[Mapping[str, Any]], objectives: Sequence[tuple[str, bool]]
               ) -> list[Mapping[str, Any]]:
    """The non-dominated feasible architectures, sorted by the first objective (best first)."""
    rows = unique_rows(rows)
    points = objective_matrix(rows, objectives)
    front = [rows[i] for i in pareto_front(points, [m for _, m in objectives])]
    name, maximize = objectives[0]
    return sorted(front, key=lambda r: (-row_value(r, name) if maximize else row_value(r, name),
                                        r["id"]))


def reference_point(points: np.ndarray, maximize: Sequence[bool]) -> np.ndarray:
    """The worst value of each objective among ``points`` (NaN rows ignored): the nadir.

    A front member at the nadir in some objective adds no volume; that is the usual price of a
    reference point taken from the data (the NAS-Bench-201 benchmark uses the table's worst).
    """
    ok = points[~np.isnan(points).any(axis=1)]
    if not len(ok):
        return np.full(points.shape[1], np.nan)
    return np.where(np.asarray(maximize), ok.min(axis=0), ok.max(axis=0))


def hypervolume_by_generation(rows: Sequence[Mapping[str, Any]],
                              objectives: Sequence[tuple[str, bool]],
                              reference: np.ndarray | None = None) -> list[tuple[int, float]]:
    """``[(generation, hypervolume of everything evaluated up to it)]`` in generation order.

    Args:
        rows: history rows with their ``generation``.
        objectives: ``(name, maximize)`` per objective.
        reference: the reference point; default the nadir of all feasible rows
            (:func:`reference_point`), so the curve's scale is the run's own.
    """
    maximize = [m for _, m in objectives]
    points = objective_matrix(rows, objectives)
    if reference is None:
        reference = reference_point(points, maximize)
    generations = np.asarray([int(r.get("generation") or 0) for r in rows])
    if np.isnan(reference).any():
        return [(int(g), 0.0) for g in sorted(set(generations.tolist()))]
    # The volume of a set is its front's: carry the front from generation to generation, so each
    # step costs its own rows plus the front, not everything before it.
    front = points[:0]
    curve = []
    for g in sorted(set(generations.tolist())):
        candidates = np.concatenate([front, points[generations == g]])
        front = candidates[pareto_front(candidates, maximize)]
        curve.append((int(g), hypervolume(front, reference, maximize)))
    return curve


def best_within(rows: Sequence[Mapping[str, Any]], objective: tuple[str, bool], metric: str,
                bound: float) -> Mapping[str, Any] | None:
    """The feasible row with the best ``objective`` among those with ``metric <= bound``.

    Ties go to the earlier evaluation. None when no feasible row is within the bound.
    """
    name, maximize = objective
    within = [r for r in unique_rows(rows) if feasible(r)
              and row_value(r, metric) <= bound and not math.isnan(row_value(r, name))]
    if not within:
        return None
    sign = -1.0 if maximize else 1.0
    return min(within, key=lambda r: (sign * row_value(r, name), r["id"]))
