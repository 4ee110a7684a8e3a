"""What a generation says about the search: its summary, and the two ends a search can't go on
from (nothing feasible, everything failed), each with what to change."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evonas.experiment.config import ExperimentConfig
from evonas.objectives import row_value


def summary(fitness: np.ndarray, maximize: bool, seconds: float) -> dict[str, Any]:
    ok = sorted(float(f) for f in fitness if np.isfinite(f))
    if not ok:
        return {"best": None, "median": None, "worst": None, "wall_seconds": seconds}
    best, worst = (ok[-1], ok[0]) if maximize else (ok[0], ok[-1])
    return {"best": best, "median": statistics.median(ok), "worst": worst,
            "wall_seconds": seconds}


class InfeasibleError(ValueError):
    """No architecture of the first generation met the search's constraints."""


class AllFailedError(ValueError):
    """Every architecture evaluated so far failed: the search has nothing to select from."""


def failure_hint(config: ExperimentConfig, reasons: Sequence[str]) -> str:
    """What to change when evaluations fail for ``reasons``."""
    text = " ".join(reasons)
    if "nan" in text or "inf" in text or "non-finite" in text:
        return (f"the loss diverged: lower train.learning_rate (now "
                f"{config.train.learning_rate:g}) or check the data")
    if "constraint" in text:
        return "loosen search.constraints"
    return "check the encoding and the evaluator"


def check_not_all_failed(rows: Sequence[dict[str, Any]], generation: int, succeeded: bool,
                          config: ExperimentConfig, run_dir: Path) -> None:
    """Stops a search in which every architecture evaluated so far failed.

    Raises:
        AllFailedError: naming the most common reasons and what to change; the generation is
            already in the history.
    """
    if succeeded or any(not r["failed"] for r in rows):
        return
    counts: dict[str, int] = {}
    for r in rows:
        counts[str(r["reason"])] = counts.get(str(r["reason"]), 0) + 1
    common = sorted(counts.items(), key=lambda kv: -kv[1])[:3]
    reasons = "; ".join(f"{why} ({n} of {len(rows)})" for why, n in common)
    raise AllFailedError(
        f"every architecture evaluated so far failed (generation {generation}: {reasons}): "
        f"{failure_hint(config, [why for why, _ in common])}. The search stops with nothing "
        f"to select; its rows are kept in {run_dir}; start a new run with the change"
    )


def check_feasible(rows: Sequence[dict[str, Any]], config: ExperimentConfig,
                    run_dir: Path) -> None:
    """Stops a search whose first generation has no feasible architecture.

    Infeasible architectures all rank last, so with none feasible a strategy has nothing to
    select from and would search blindly to the end of the budget. The generation is already in
    the history (nothing is lost); the message names the constraints and the closest values.

    Raises:
        InfeasibleError: when every row of the generation failed a constraint.
    """
    if any(not r["failed"] or not str(r["reason"] or "").startswith("constraint")
           for r in rows):
        return
    parts = []
    for c in config.search.parsed_constraints():
        values = [row_value(r, c.metric) for r in rows]
        values = [v for v in values if np.isfinite(v)]
        if values:
            closest = min(values) if c.operator in ("<=", "<") else max(values)
            parts.append(f"{c.metric} {c.operator} {c.bound:g} (closest: {closest:g})")
        else:
            parts.append(f"{c.metric} {c.operator} {c.bound:g}")
    reasons = sorted({str(r["reason"]) for r in rows if r["reason"]})[:3]
    raise InfeasibleError(
        f"no architecture of the first generation ({len(rows)} evaluated) meets the "
        f"constraints: {'; '.join(parts)}. The search stops: with every architecture "
        f"infeasible a strategy has nothing to select. Reasons: {reasons}. The generation is "
        f"kept in {run_dir}; loosen search.constraints and start a new run"
    )


def reasons_of(rows: Sequence[dict[str, Any]]) -> tuple[str, ...]:
    """The distinct failure reasons of a generation, most common first (at most 3)."""
    counts: dict[str, int] = {}
    for r in rows:
        if r["failed"] and r["reason"]:
            counts[str(r["reason"])] = counts.get(str(r["reason"]), 0) + 1
    return tuple(why for why, _ in sorted(counts.items(), key=lambda kv: -kv[1])[:3])


def better(a: float | None, b: float | None, maximize: bool) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b) if maximize else min(a, b)
