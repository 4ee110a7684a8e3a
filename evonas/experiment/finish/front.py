"""The ``front`` step of a multi-objective run, and the best under budgets (``evonas front``).

The front is computed from the history over ``search.objectives`` (feasible architectures only;
a cached re-evaluation counts once). The step retrains up to ``final.front.size`` members on train
+ validation (spread evenly along the front when it is larger; a tabular run reads their scores
from the table instead), tests them and exports each like the single best, to ``front/<id>/``;
``front/front.json`` is written last, so its presence means the step is complete and a resumed
run skips it. ``best_within_budgets`` answers the user's question "what is the most accurate
network under 20k parameters?" for several budgets at once, and :func:`front_summary` is what
``evonas front`` prints.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax

from evonas import streams
from evonas.experiment.config import ExperimentConfig
from evonas.experiment.finish.context import Finish, scorer_for
from evonas.objectives import (
    HISTORY_COLUMNS,
    best_within,
    front_rows,
    hypervolume_by_generation,
    row_value,
)
from evonas.store.layout import BUDGETS_FILE
from evonas.store.run_dir import RunLock


def spread(front: Sequence[dict[str, Any]], k: int, name: str) -> list[dict[str, Any]]:
    """``k`` members of ``front`` evenly spaced in the order of objective ``name`` (its two ends
    always included); all of them when the front has at most ``k``."""
    ordered = sorted(front, key=lambda r: (row_value(r, name), r["id"]))
    if len(ordered) <= k:
        return ordered
    if k == 1:
        return ordered[:1]
    picks = sorted({round(i * (len(ordered) - 1) / (k - 1)) for i in range(k)})
    return [ordered[i] for i in picks]


def member(row: dict[str, Any], objectives: Sequence[tuple[str, bool]]) -> dict[str, Any]:
    """A history row as a front or budget entry: id, genome, description, objective values,
    params and FLOPs."""
    return {"id": row["id"], "genome": row["genome"], "description": row["description"],
            "objectives": {name: row_value(row, name) for name, _ in objectives},
            "params": row["params"], "flops": row["flops"]}


class Front:
    """A multi-objective run's front: up to ``final.front.size`` members retrained, tested and
    exported to ``front/<id>/``; ``front/front.json`` written last."""

    name = "front"

    def wanted(self, finish: Finish) -> bool:
        return finish.config.search.multiobjective and finish.config.final.front.size > 0

    def done(self, finish: Finish) -> bool:
        return finish.paths.front_file.is_file()

    def run(self, finish: Finish) -> None:
        config = finish.config
        objectives = config.search.objective_directions
        front = front_rows(finish.rows, objectives)
        if not front:
            return
        key = streams.stream(config.search.seed, "front")
        steps = config.final.retrain.steps
        second = objectives[1][0] if len(objectives) > 1 else "params"
        members = []
        for row in spread(front, config.final.front.size, second):
            params, scores, _ = finish.score(row, steps, jax.random.fold_in(key, row["id"]))
            finish.export(finish.paths.front / str(row["id"]), row, params, scores)
            members.append({**member(row, objectives), **scores, "directory": str(row["id"])})
        curve = hypervolume_by_generation(finish.rows, objectives)
        result = {
            "objectives": [{"name": n, "direction": "max" if m else "min"}
                           for n, m in objectives],
            "front_size": len(front),
            "hypervolume": curve[-1][1] if curve else 0.0,
            "retrain_steps": steps if finish.scorer.trains else 0,
            "members": members,
        }
        finish.write_json(finish.paths.front_file, result)


def parse_budgets(text: str) -> tuple[str, list[float]]:
    """``"params=20000,100000"`` -> ``("params", [20000.0, 100000.0])``.

    Raises:
        ValueError: naming the text and the expected form.
    """
    metric, sep, values = str(text).partition("=")
    metric = metric.strip()
    try:
        bounds = [float(v) for v in values.split(",") if v.strip()]
    except ValueError:
        bounds = []
    if not sep or not metric.isidentifier() or not bounds or not all(
            math.isfinite(b) for b in bounds):
        raise ValueError(f"--budget {text!r} must look like METRIC=V1,V2,... (e.g. "
                         f"params=20000,100000)")
    return metric, bounds


def best_within_budgets(rows: Sequence[dict[str, Any]], config: ExperimentConfig, metric: str,
                        bounds: Sequence[float]) -> list[tuple[float, dict[str, Any] | None]]:
    """For each bound, the feasible architecture with ``metric <= bound`` and the best first
    objective (None when no evaluated architecture is within it)."""
    objective = config.search.objective_directions[0]
    return [(b, best_within(rows, objective, metric, b)) for b in bounds]


def export_within_budgets(finish: Finish,
                          chosen: Sequence[tuple[float, dict[str, Any] | None]], metric: str,
                          steps: int) -> list[dict[str, Any]]:
    """Retrains, tests and exports the architecture chosen for each budget, like the best.

    Each goes to ``budgets/<metric>-<bound>/``; ``budgets/budgets.json`` lists them (written
    last). An architecture chosen for several budgets is retrained once, from the budgets
    stream's key of its id.

    Returns:
        One entry per budget: the bound, and the chosen architecture with its test accuracy
        and directory, or ``None`` where nothing was within the budget.
    """
    done: dict[int, tuple[Any, dict[str, float]]] = {}
    entries = []
    objectives = finish.config.search.objective_directions
    key = streams.stream(finish.config.search.seed, "budgets")
    out_dir = finish.paths.budgets
    for bound, row in chosen:
        if row is None:
            entries.append({"metric": metric, "bound": bound, "architecture": None})
            continue
        if row["id"] not in done:
            params, scores, _ = finish.score(row, steps, jax.random.fold_in(key, row["id"]))
            done[row["id"]] = (params, scores)
        params, scores = done[row["id"]]
        name = f"{metric}-{bound:g}"
        finish.export(out_dir / name, row, params, scores,
                      extra={"budget": {"metric": metric, "bound": bound}})
        entries.append({"metric": metric, "bound": bound, "directory": name,
                        "architecture": {**member(row, objectives), **scores}})
    finish.write_json(out_dir / BUDGETS_FILE,
                      {"retrain_steps": steps if finish.scorer.trains else 0, "budgets": entries})
    return entries


def front_table(rows: Sequence[dict[str, Any]], objectives: Sequence[tuple[str, bool]]
                ) -> list[dict[str, Any]]:
    """The front as table rows (id, objective values, params, FLOPs, description)."""
    return [member(r, objectives) for r in front_rows(rows, objectives)]


def recorded_metrics(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Every metric some history row recorded (the names a ``--budget`` may use)."""
    return sorted({k for r in rows for k in (r.get("metrics") or {})} | set(HISTORY_COLUMNS))


def front_summary(rows: Sequence[dict[str, Any]], config: ExperimentConfig,
                  budgets: Sequence[tuple[str, Sequence[float]]] = (),
                  export_to: Path | None = None, steps: int | None = None,
                  legacy_keys: bool = False) -> dict[str, Any]:
    """A run's Pareto front and, per budget, the best architecture within it: ``evonas front``.

    A single-objective run's front is taken against ``params``.

    Args:
        rows: the run's history rows.
        config: the run's experiment.
        budgets: ``(metric, [bounds])`` pairs (from :func:`parse_budgets`).
        export_to: where to retrain (or look up), test and export the chosen architectures
            (``run/budgets``); None only chooses them.
        steps: retraining steps (default ``final.retrain.steps``).
        legacy_keys: the run is of before fingerprint version 3 (:attr:`Finish.legacy_keys`).

    Returns:
        ``{"objectives": [...], "front": [members], "budgets": [entries]}`` (no ``budgets`` key
        without budgets); an entry's ``architecture`` is None where nothing is within it.

    Raises:
        ValueError: a budget on a metric the run did not record (naming those it did).
    """
    objectives = config.search.objective_directions
    if len(objectives) == 1:  # a single-objective run: its front against parameters
        objectives = (*objectives, ("params", False))
    for metric, _ in budgets:
        if all(math.isnan(row_value(r, metric)) for r in rows):
            raise ValueError(f"--budget names {metric!r}, which this run did not record; "
                             f"recorded: {recorded_metrics(rows)}")
    out: dict[str, Any] = {
        "objectives": [{"name": n, "direction": "max" if m else "min"} for n, m in objectives],
        "front": front_table(rows, objectives),
    }
    entries: list[dict[str, Any]] = []
    # Exporting writes into the run directory: own it meanwhile (a live run is refused).
    lock = RunLock(export_to.parent) if export_to is not None and budgets else None
    try:
        _budget_entries(rows, config, budgets, export_to, steps, objectives, entries,
                        legacy_keys)
    finally:
        if lock is not None:
            lock.release()
    if budgets:
        out["budgets"] = entries
    return out


def _budget_entries(rows: Sequence[dict[str, Any]], config: ExperimentConfig,
                    budgets: Sequence[tuple[str, Sequence[float]]], export_to: Path | None,
                    steps: int | None, objectives: Sequence[tuple[str, bool]],
                    entries: list[dict[str, Any]], legacy_keys: bool) -> None:
    """Appends to ``entries`` the best architecture within each budget (exported to
    ``export_to`` when given)."""
    finish = None
    for metric, bounds in budgets:
        chosen = best_within_budgets(rows, config, metric, bounds)
        if export_to is not None and any(row is not None for _, row in chosen):
            if finish is None:  # loads the data only when needed
                finish = Finish(config, export_to.parent, list(rows), *scorer_for(config),
                                legacy_keys=legacy_keys)
            entries += export_within_budgets(finish, chosen, metric,
                                             steps or config.final.retrain.steps)
        else:
            entries += [{"metric": metric, "bound": b,
                         "architecture": None if row is None else member(row, objectives)}
                        for b, row in chosen]
        for entry, (_, row) in zip(entries[-len(chosen):], chosen):
            if row is not None:
                entry["value"] = row_value(row, metric)
