"""``PopulationResult``: what training a population measured."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from evonas.train.plans import Group


@dataclasses.dataclass(frozen=True)
class PopulationResult:
    """Per-individual metrics and what the run cost.

    Attributes:
        steps: ``int64[P]``, optimiser steps each individual trained (below
            ``TrainConfig.steps`` for those successive halving stopped at a rung).
        params: with ``keep_params``, each individual's trained parameters in the max-bounds
            layout (leaves ``[P, ...]``, NaN wherever training left a value untouched), else
            None.
        metrics: ``{name: float32[P]}``: ``val_acc``, ``val_loss``, ``val_precision``,
            ``val_recall``, ``val_f1`` (macro averages), ``train_loss`` (the last finite step's),
            and the same ``test_*`` when ``TrainConfig.evaluate_test``. NaN where failed.
        failed: ``bool[P]``, individuals whose loss or gradients stopped being finite.
        reasons: why each individual failed (``"loss became nan at step 37"``), else ``None``.
        seconds: wall seconds of the whole call (compiles included).
        compile_seconds: seconds spent in XLA compiles during the call.
        compiles: programs really compiled during the call (persistent-cache loads excluded).
        disk_cache_hits: programs loaded from JAX's persistent compilation cache.
        program_compiles: compiles (or disk loads) of the trainer's own programs by name
            (``init_population``, ``train_chunk``, ``evaluate_group``).
        plan: the plan run: ``"masked"``, ``"grouped"`` or, chosen by ``auto``, ``"merged"``.
        groups: the groups run, with their bounds, members, program size (members beyond it
            go through the program in consecutive calls) and whether they trained one
            standalone module (``exact``).
        estimated_seconds: the cost model's estimate of the plan.
        step_seconds: per group, seconds per training step once compiled (from the host loop).
    """

    steps: np.ndarray
    params: Any
    metrics: dict[str, np.ndarray]
    failed: np.ndarray
    reasons: list[str | None]
    seconds: float
    compile_seconds: float
    compiles: int
    disk_cache_hits: int
    program_compiles: dict[str, int]
    plan: str
    groups: tuple[Group, ...]
    estimated_seconds: float
    step_seconds: tuple[float, ...]

    def summary(self) -> dict[str, Any]:
        """A JSON-serialisable summary (no per-individual arrays)."""
        return {
            "plan": self.plan,
            "groups": len(self.groups),
            "group_sizes": [g.size for g in self.groups],
            "failed": int(self.failed.sum()),
            "seconds": self.seconds,
            "compile_seconds": self.compile_seconds,
            "compiles": self.compiles,
            "disk_cache_hits": self.disk_cache_hits,
            "program_compiles": dict(self.program_compiles),
            "estimated_seconds": self.estimated_seconds,
        }


def merge_results(parts: list[tuple[np.ndarray, PopulationResult]], size: int
                  ) -> PopulationResult:
    """One result of a population of ``size`` trained in parts: ``(indices, result)`` each,
    ``indices`` the part's positions in the population. Costs add up; groups keep their
    members' population positions."""
    import jax

    first = parts[0][1]

    def scatter(get: Any, fill: Any) -> Any:
        out = None
        for index, result in parts:
            value = np.asarray(get(result))
            if out is None:
                out = np.full((size, *value.shape[1:]), fill, value.dtype)
            out[index] = value
        return out

    params = None
    if first.params is not None:
        params = jax.tree.map(
            lambda *leaves: _scatter_leaves(parts, leaves, size), *[r.params for _, r in parts])
    reasons: list[str | None] = [None] * size
    for index, result in parts:
        for i, reason in zip(index, result.reasons):
            reasons[int(i)] = reason
    compiles: dict[str, int] = {}
    for _, result in parts:
        for name, n in result.program_compiles.items():
            compiles[name] = compiles.get(name, 0) + n
    return PopulationResult(
        steps=scatter(lambda r: r.steps, 0),
        params=params,
        metrics={name: scatter(lambda r, n=name: r.metrics[n], np.nan) for name in first.metrics},
        failed=scatter(lambda r: r.failed, False),
        reasons=reasons,
        seconds=sum(r.seconds for _, r in parts),
        compile_seconds=sum(r.compile_seconds for _, r in parts),
        compiles=sum(r.compiles for _, r in parts),
        disk_cache_hits=sum(r.disk_cache_hits for _, r in parts),
        program_compiles=compiles,
        plan="+".join(dict.fromkeys(r.plan for _, r in parts)),
        groups=tuple(dataclasses.replace(g, members=tuple(int(index[m]) for m in g.members))
                     for index, r in parts for g in r.groups),
        estimated_seconds=sum(r.estimated_seconds for _, r in parts),
        step_seconds=tuple(t for _, r in parts for t in r.step_seconds),
    )


def _scatter_leaves(parts: list[tuple[np.ndarray, PopulationResult]], leaves: tuple[Any, ...],
                    size: int) -> np.ndarray:
    out = np.full((size, *np.shape(leaves[0])[1:]), np.nan, np.asarray(leaves[0]).dtype)
    for (index, _), leaf in zip(parts, leaves):
        out[index] = leaf
    return out
