"""Execution plans: how a population is split into groups that share one compiled program.

* ``masked``: one group at ``max_bounds()``: one compile whatever the genomes, every individual
  pays the fully masked supernet's compute.
* ``grouped``: one group per distinct ``bounds(genome)`` at exact shape, its members vmapped in
  one program: no wasted compute, one compile per new shape signature.
* ``auto``: an analytic cost model (:class:`CostModel`) estimates the seconds of each way to run
  the population and picks the cheapest. Its candidates:

  - ``grouped``: the exact groups, each run the cheapest way (:func:`best_execution`): all members
    vmapped in one call, or one (per device) at a time through a program of the device count's
    size (the same program, so the same single compile), or split by standalone module
    (``encoding.build``) so that every part trains the plain model instead of the supernet;
  - ``merged``: greedy merges of exact groups (two groups train together at ``join(a, b)``,
    trading executed FLOPs and the supernet's overhead for one compile less);
  - ``masked``: one group at ``max_bounds()``.

The size of a group's program (its individual axis, ``Group.size``) may be smaller than its
membership: the loop then runs the members through the program in consecutive calls. On XLA:CPU a
vmapped group costs more per individual than one individual alone (measured 2x per individual
at 2, 3x at 4, 4-5x at 8, for the small CNNs of the throughput benchmark), so there the model
runs members one at a time; where batching is nearly free (the accelerator constants of
:meth:`CostModel.for_platform`, not measured here) it vmaps. The ``masked`` plan's size is
chosen the same way (the population padded to the device count, or the device count); either
way it compiles one program.

A group whose members all build the same standalone module trains that module
(``TrainConfig.exact_modules``, except under ``masked``); the model knows it through
``PlanCosts.module_of`` and charges other groups ``CostModel.supernet_penalty``.

All plans start from the same initial values and see the same batches, so they give the same
numbers up to float tolerance.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class Group:
    """Individuals trained by one program.

    Attributes:
        bounds: the static shapes of the group's module.
        members: indices of the individuals in the population.
        size: the program's individual axis, a multiple of the device count: ``len(members)``
            padded (all at once), or less (the members go through the program in consecutive
            calls; the last call padded), or a power of two to reuse a compiled program; padding
            is discarded.
        exact: every member builds the same standalone module, which the group trains instead
            of the supernet at ``bounds`` (never under ``masked``).
    """

    bounds: Any
    members: tuple[int, ...]
    size: int
    exact: bool = False

    @property
    def runs(self) -> int:
        """Calls of the program that train every member (before memory chunking)."""
        return -(-len(self.members) // self.size)


@dataclasses.dataclass(frozen=True)
class CostModel:
    """Estimated wall seconds of a plan on this machine.

    For a group whose program has ``size`` individuals and runs ``runs`` times::

        seconds = [compile if the program is new] + runs * steps * step
        step = step_overhead + size * (1 + vmap_penalty * log2(size)) * per_individual
        per_individual = 3 * macs * batch_size / macs_per_second [* supernet_penalty
                         + supernet_step_seconds]
        compile = compile_seconds [+ supernet_compile_seconds_per_mmac * macs / 1e6]

    where ``macs`` are the executed multiply-accumulates per example of the group's bounds
    (``cost()["executed_flops"]``; forward + backward is about 3x the forward pass), and the
    bracketed supernet terms apply to groups that train the supernet rather than one standalone
    module.

    The defaults were measured on the project's 2-core CPU machine (jax 0.10.2, small 1-D CNNs on
    MNIST-1D, batch 128, ``TrainConfig.xla="fast"``), the training program compiled and run on
    its own: a standalone CNN's train + evaluation programs compile (with tracing) in about
    0.45 s; it trains at 5e10-9e10 MAC/s; vmapping a group of ``n`` costs 2x per individual at 2,
    3x at 4, 4-5x at 8, against the same individuals run one after another; the
    supernet's step costs 1-2x the standalone module's per MAC at small joined bounds (4x at
    ``max_bounds()``) plus about 1 ms of elementwise work (masks, pools, the mixing of every
    kind and activation) that MACs do not count, and supernet programs compile in about
    0.3 s + 0.55 s per million executed MACs; a call costs about 0.25 ms whatever the model.
    (For tiny MLPs the supernet term overestimates, which only makes ``auto`` prefer exact
    programs.) :meth:`for_platform` gives these on CPUs and rough, unmeasured accelerator
    constants elsewhere (there a batched program is nearly free: ``vmap_penalty`` near 0).

    Attributes:
        compile_seconds: compile time of a new group's programs.
        supernet_compile_seconds_per_mmac: extra compile seconds of a supernet program per
            million executed MACs per example.
        macs_per_second: training throughput of a single exact-shape model.
        vmap_penalty: relative per-individual slowdown per doubling of the program's size.
        supernet_penalty: step time of the supernet over the standalone module at equal MACs.
        supernet_step_seconds: extra seconds per individual-step of a supernet program.
        step_overhead: fixed seconds per step and program call (dispatch, optimiser bookkeeping).
    """

    compile_seconds: float = 0.45
    supernet_compile_seconds_per_mmac: float = 0.55
    macs_per_second: float = 6e10
    vmap_penalty: float = 1.0
    supernet_penalty: float = 2.0
    supernet_step_seconds: float = 1e-3
    step_overhead: float = 2.5e-4

    @classmethod
    def for_platform(cls, platform: str) -> CostModel:
        """The CPU constants measured here for ``"cpu"``; for accelerators, unmeasured guesses
        that let batching win (compiles slower, batched programs nearly free)."""
        if platform == "cpu":
            return cls()
        return cls(compile_seconds=2.0, supernet_compile_seconds_per_mmac=0.1,
                   macs_per_second=1e12, vmap_penalty=0.02, supernet_penalty=1.2,
                   supernet_step_seconds=1e-5, step_overhead=2e-4)

    def group_seconds(self, macs: float, size: int, steps: int, batch_size: int,
                      compiled: bool, runs: int = 1, exact: bool = True) -> float:
        """Estimated seconds of one group (see the class docstring)."""
        per_individual = 3.0 * macs * batch_size / self.macs_per_second
        if not exact:
            per_individual = per_individual * self.supernet_penalty + self.supernet_step_seconds
        compute = size * (1.0 + self.vmap_penalty * math.log2(max(size, 1))) * per_individual
        compile_s = self.compile_seconds
        if not exact:
            compile_s += self.supernet_compile_seconds_per_mmac * macs / 1e6
        return (0.0 if compiled else compile_s) + runs * steps * (self.step_overhead + compute)


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
        macs_of: computes the executed MACs of a bounds (from ``encoding.cost``).
        is_compiled: whether a (bounds, size) program is already compiled.
        steps, batch_size: the training budget.
        model: the cost model.
        measured: seconds per step measured for a (bounds, size, exact) program in an earlier
            call, or ``None``; a measurement replaces the model's compute estimate
            (self-calibration across generations).
        module_of: individual index -> a hashable key of its standalone module (``None``: the
            bounds decide the module, every exact group trains it); a group trains the
            standalone module when all its members share one.
        exact_modules: whether groups that share a module train it (``TrainConfig.exact_modules``).
        macs: ``bounds -> executed MACs per example`` (filled lazily by ``macs_of``).
    """

    macs_of: Callable[[Any], float]
    is_compiled: Callable[[Any, int], bool]
    steps: int
    batch_size: int
    model: CostModel
    measured: Callable[[Any, int, bool], float | None] = lambda bounds, size, exact: None
    module_of: Callable[[int], Hashable] | None = None
    exact_modules: bool = True
    macs: dict[Any, float] = dataclasses.field(default_factory=dict)

    def exact(self, members: Sequence[int]) -> bool:
        """Whether a group of ``members`` sharing one bounds trains one standalone module."""
        if not self.exact_modules:
            return False
        if self.module_of is None:
            return True
        return len({self.module_of(i) for i in members}) == 1

    def group(self, bounds: Any, size: int, runs: int = 1, exact: bool = True) -> float:
        """Estimated seconds of ``runs`` calls of a program of ``size`` individuals."""
        step = self.measured(bounds, size, exact)
        if step is not None and math.isfinite(step):
            return runs * self.steps * step
        if bounds not in self.macs:
            self.macs[bounds] = float(self.macs_of(bounds))
        return self.model.group_seconds(self.macs[bounds], size, self.steps, self.batch_size,
                                        self.is_compiled(bounds, size), runs, exact)

    def of(self, g: Group) -> float:
        """Estimated seconds of a group."""
        return self.group(g.bounds, g.size, g.runs, g.exact)

    def total(self, groups: Sequence[Group]) -> float:
        return sum(self.of(g) for g in groups)


def reuse_padding(groups: list[Group], costs: PlanCosts) -> list[Group]:
    """Pads a group to the next power of two where that reuses a compiled program and is cheaper
    than compiling its exact size."""
    out = []
    for g in groups:
        padded = dataclasses.replace(g, size=max(g.size, 1 << (g.size - 1).bit_length()))
        if padded.size != g.size and costs.of(padded) < costs.of(g):
            g = padded
        out.append(g)
    return out


def best_size(group: Group, costs: PlanCosts, multiple: int) -> Group:
    """``group`` with the cheaper program size: all members at once, or ``multiple`` (one per
    device) at a time through the same program."""
    sizes = sorted({round_size(len(group.members), multiple), multiple}, reverse=True)
    options = [dataclasses.replace(group, size=s) for s in sizes]
    return min(options, key=costs.of)  # ties keep the one-call program


def best_execution(group: Group, costs: PlanCosts, multiple: int) -> list[Group]:
    """The cheapest way to run an exact-bounds group: one program (see :func:`best_size`), or
    one program per standalone module among its members (each then trains the plain model)
    when they build more than one."""
    group = dataclasses.replace(group, exact=costs.exact(group.members))
    whole = [best_size(group, costs, multiple)]
    if costs.module_of is None or not costs.exact_modules or group.exact:
        return whole
    parts: dict[Hashable, list[int]] = {}
    for i in group.members:
        parts.setdefault(costs.module_of(i), []).append(i)
    split = [best_size(Group(group.bounds, tuple(m), round_size(len(m), multiple), True), costs,
                       multiple) for m in parts.values()]
    # Programs of one bounds but different modules are different programs: each compiles.
    split_seconds = costs.total(split)
    split_seconds += costs.model.compile_seconds * sum(
        costs.is_compiled(g.bounds, g.size) for g in split[1:])
    return split if split_seconds < costs.total(whole) else whole


def greedy_merge(encoding: Any, groups: list[Group], costs: PlanCosts, multiple: int,
                 neighbours: int = 4) -> list[Group]:
    """Merges pairs of groups while a merge lowers the estimated seconds.

    Candidates are each group's ``neighbours`` nearest groups by executed MACs (so a merge costs
    a few ``cost()`` calls, not one per pair of a large population). A merged group trains the
    supernet at the joined bounds (its members build different modules).
    """
    groups = list(groups)
    while len(groups) > 1:
        order = sorted(range(len(groups)), key=lambda i: costs.group(groups[i].bounds, 1))
        best, best_gain = None, 0.0
        for rank, i in enumerate(order):
            for j in order[rank + 1: rank + 1 + neighbours]:
                a, b = groups[i], groups[j]
                merged = best_size(
                    Group(encoding.join(a.bounds, b.bounds), a.members + b.members,
                          round_size(len(a.members) + len(b.members), multiple)),
                    costs, multiple)
                gain = costs.of(a) + costs.of(b) - costs.of(merged)
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
        groups = [best_size(g, costs, multiple)
                  for g in masked_group(encoding, len(genomes), multiple)]
        return "masked", groups, costs.total(groups)
    exact = [dataclasses.replace(g, exact=costs.exact(g.members))
             for g in exact_groups(encoding, genomes, multiple)]
    if plan == "grouped":
        return "grouped", exact, costs.total(exact)
    grouped = [part for g in exact for part in best_execution(g, costs, multiple)]
    candidates = {
        "masked": [best_size(g, costs, multiple)
                   for g in masked_group(encoding, len(genomes), multiple)],
        "grouped": reuse_padding(grouped, costs),
        "merged": reuse_padding(greedy_merge(encoding, grouped, costs, multiple), costs),
    }
    estimates = {name: costs.total(groups) for name, groups in candidates.items()}
    name = min(estimates, key=estimates.get)  # ties keep the first: masked, then grouped
    return name, candidates[name], estimates[name]
