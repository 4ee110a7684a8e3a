"""Execution plans: how a population is split into groups that share one compiled program.

* ``masked``: one group at ``max_bounds()``: one compile whatever the genomes, every individual
  pays the fully masked supernet's compute.
* ``grouped``: one group per distinct ``bounds(genome)`` at exact shape: no wasted compute, one
  compile per new shape signature.
* ``auto``: an analytic cost model (:class:`CostModel`) estimates the seconds of ``masked``, of
  exact groups and of greedy merges of groups (two groups train together at ``join(a, b)``,
  trading executed FLOPs for one compile less) and picks the cheapest.

All plans start from the same initial values and see the same batches, so they give the same
numbers up to float tolerance.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class Group:
    """Individuals trained together by one program.

    Attributes:
        bounds: the static shapes of the group's module.
        members: indices of the individuals in the population.
        size: the program's individual axis (``len(members)`` padded to a multiple of the device
            count, or to a power of two to reuse a compiled program); padding is discarded.
    """

    bounds: Any
    members: tuple[int, ...]
    size: int


@dataclasses.dataclass(frozen=True)
class CostModel:
    """Estimated wall seconds of a plan on this machine.

    ``seconds = sum over groups of [compile_seconds if the program is new]
    + steps * (step_overhead + size * 3 * macs * batch_size / macs_per_second
    * (1 + vmap_penalty * log2(size)))``, where ``macs`` are the executed multiply-accumulates
    per example of the group's bounds (``cost()["executed_flops"]``; forward + backward is about
    3x the forward pass).

    The defaults were measured on the project's 2-core CPU machine (jax 0.10.2, small 1-D CNNs
    on MNIST-1D, batch 128): init + train-step + eval programs compile in about 1.5 s; a
    single small CNN trains at about 4e10 MAC/s (a third to a half of the matmul peak); vmapping
    conv layers over a group costs extra per individual on XLA:CPU (about +25 % per doubling of
    the group). On accelerators a batched program is nearly free, so set ``vmap_penalty`` near 0.

    Attributes:
        compile_seconds: compile time of a new group's programs.
        macs_per_second: training throughput of a single exact-shape model.
        vmap_penalty: relative per-individual slowdown per doubling of the group size.
        step_overhead: fixed seconds per step and program (dispatch, optimiser bookkeeping).
    """

    compile_seconds: float = 1.5
    macs_per_second: float = 4e10
    vmap_penalty: float = 0.25
    step_overhead: float = 2e-4

    def group_seconds(self, macs: float, size: int, steps: int, batch_size: int,
                      compiled: bool) -> float:
        """Estimated seconds of one group (see the class docstring)."""
        slowdown = 1.0 + self.vmap_penalty * math.log2(max(size, 1))
        compute = size * 3.0 * macs * batch_size / self.macs_per_second * slowdown
        return (0.0 if compiled else self.compile_seconds) + steps * (self.step_overhead + compute)


def round_size(n: int, multiple: int) -> int:
    """``n`` rounded up to a multiple of ``multiple`` (the device count)."""
    return -(-n // multiple) * multiple


def exact_groups(encoding: Any, genomes: np.ndarray, multiple: int) -> list[Group]:
    """One group per distinct ``bounds(genome)``, in order of first appearance."""
    by_bounds: dict[Any, list[int]] = {}
    for i, genome in enumerate(genomes):  # host-side planning, not a hot path
        by_bounds.setdefault(encoding.bounds(genome), []).append(i)
    return [Group(b, tuple(m), round_size(len(m), multiple)) for b, m in by_bounds.items()]


def masked_group(encoding: Any, num: int, multiple: int) -> list[Group]:
    """The whole population in one group at ``max_bounds()``."""
    return [Group(encoding.max_bounds(), tuple(range(num)), round_size(num, multiple))]


@dataclasses.dataclass
class PlanCosts:
    """What the cost model needs about a population: executed MACs of bounds, compiled keys.

    Attributes:
        macs: ``bounds -> executed MACs per example`` (filled lazily by ``macs_of``).
        macs_of: computes the executed MACs of a bounds (from ``encoding.cost``).
        is_compiled: whether a (bounds, size) program is already compiled.
        steps, batch_size: the training budget.
        model: the cost model.
        measured: seconds per step measured for a (bounds, size) program in an earlier call, or
            ``None``; a measurement replaces the model's compute estimate (self-calibration
            across generations).
    """

    macs_of: Callable[[Any], float]
    is_compiled: Callable[[Any, int], bool]
    steps: int
    batch_size: int
    model: CostModel
    measured: Callable[[Any, int], float | None] = lambda bounds, size: None
    macs: dict[Any, float] = dataclasses.field(default_factory=dict)

    def group(self, bounds: Any, size: int) -> float:
        step = self.measured(bounds, size)
        if step is not None and math.isfinite(step):
            return self.steps * step
        if bounds not in self.macs:
            self.macs[bounds] = float(self.macs_of(bounds))
        return self.model.group_seconds(self.macs[bounds], size, self.steps, self.batch_size,
                                        self.is_compiled(bounds, size))

    def total(self, groups: Sequence[Group]) -> float:
        return sum(self.group(g.bounds, g.size) for g in groups)


def reuse_padding(groups: list[Group], costs: PlanCosts) -> list[Group]:
    """Pads a group to the next power of two where that reuses a compiled program and is cheaper
    than compiling its exact size."""
    out = []
    for g in groups:
        padded = max(g.size, 1 << (g.size - 1).bit_length())
        if padded != g.size and costs.group(g.bounds, padded) < costs.group(g.bounds, g.size):
            g = dataclasses.replace(g, size=padded)
        out.append(g)
    return out


def greedy_merge(encoding: Any, groups: list[Group], costs: PlanCosts, multiple: int,
                 neighbours: int = 4) -> list[Group]:
    """Merges pairs of groups while a merge lowers the estimated seconds.

    Candidates are each group's ``neighbours`` nearest groups by executed MACs (so a merge costs
    a few ``cost()`` calls, not one per pair of a large population).
    """
    groups = list(groups)
    while len(groups) > 1:
        order = sorted(range(len(groups)), key=lambda i: costs.group(groups[i].bounds, 1))
        best, best_gain = None, 0.0
        for rank, i in enumerate(order):
            for j in order[rank + 1: rank + 1 + neighbours]:
                a, b = groups[i], groups[j]
                merged = Group(encoding.join(a.bounds, b.bounds), a.members + b.members,
                               round_size(len(a.members) + len(b.members), multiple))
                gain = (costs.group(a.bounds, a.size) + costs.group(b.bounds, b.size)
                        - costs.group(merged.bounds, merged.size))
                if gain > best_gain:
                    best, best_gain = (i, j, merged), gain
        if best is None:
            break
        i, j, merged = best
        groups = [g for k, g in enumerate(groups) if k not in (i, j)] + [merged]
    return groups


def make_plan(plan: str, encoding: Any, genomes: np.ndarray, multiple: int,
              costs: PlanCosts) -> tuple[str, list[Group], float]:
    """The groups of ``plan`` for ``genomes`` and their estimated seconds.

    Args:
        plan: ``"masked"``, ``"grouped"`` or ``"auto"``.
        encoding: the trainable encoding.
        genomes: ``int32[P, G]`` on the host.
        multiple: group sizes are padded to a multiple of this (the device count).
        costs: the cost model and what it knows of the population.

    Returns:
        ``(name, groups, estimated_seconds)``; for ``auto`` the name says what it chose:
        ``"masked"``, ``"grouped"`` or ``"merged"``.
    """
    if plan == "masked":
        groups = masked_group(encoding, len(genomes), multiple)
        return "masked", groups, costs.total(groups)
    exact = exact_groups(encoding, genomes, multiple)
    if plan == "grouped":
        return "grouped", exact, costs.total(exact)
    candidates = {
        "masked": masked_group(encoding, len(genomes), multiple),
        "grouped": reuse_padding(exact, costs),
        "merged": reuse_padding(greedy_merge(encoding, exact, costs, multiple), costs),
    }
    estimates = {name: costs.total(groups) for name, groups in candidates.items()}
    name = min(estimates, key=estimates.get)  # ties keep the first: masked, then grouped
    return name, candidates[name], estimates[name]
