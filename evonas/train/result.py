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
