"""Successive halving inside one training call (Jamieson & Talwalkar 2016; Li et al. 2017,
"Hyperband"): everyone trains to the first rung and is evaluated, the best ``1 / eta`` (by
validation accuracy) continue, with the same optimiser state and batches, to the next rung, and
so on to the full budget. ``evonas.evaluators.halving`` asks for it; ``train_population`` runs
it over its groups' chunks.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np

from evonas import checks
from evonas.train.cache import ProgramCache
from evonas.train.jobs import DeviceData, Job, keep, member_keys, train_steps
from evonas.train.plans import round_size
from evonas.train.programs import GroupSpec, Layout, initial_state
from evonas.train.sharding import PopulationSharding


@dataclasses.dataclass(frozen=True)
class Halving:
    """The schedule of successive halving.

    Attributes:
        rungs: steps at which the living are evaluated and the best ``1 / eta`` promoted;
            increasing, each below the full budget and a multiple of the steps per call
            (checked against the training config by :meth:`check`).
        eta: the halving rate (``>= 2``): the share promoted from one rung to the next is
            ``1 / eta``, rounded up.
    """

    rungs: tuple[int, ...]
    eta: int = 3

    def __post_init__(self):
        rungs = tuple(self.rungs)
        if not rungs:
            raise ValueError("halving.rungs must list at least one step to rank at; got []")
        for r in rungs:
            checks.positive_int("halving.rungs[]", r)
        if any(b <= a for a, b in zip(rungs, rungs[1:])):
            raise ValueError(f"halving.rungs must increase; got {list(rungs)}")
        checks.integer("halving.eta", self.eta, low=2)
        object.__setattr__(self, "rungs", tuple(int(r) for r in rungs))

    def check(self, steps: int, steps_per_call: int) -> None:
        """The rungs fit a budget of ``steps`` trained ``steps_per_call`` at a time.

        Raises:
            ValueError: a rung at or past the budget, or not a multiple of the steps per call.
        """
        if self.rungs[-1] >= steps:
            raise ValueError(f"halving.rungs {list(self.rungs)} must be below train.steps="
                             f"{steps} (the full budget, which is the last rung)")
        bad = [r for r in self.rungs if r % steps_per_call]
        if bad:
            raise ValueError(f"halving.rungs {bad} must be multiples of "
                             f"train.steps_per_call={steps_per_call}")


class Halved(NamedTuple):
    steps: np.ndarray  # int64[P]: steps each individual trained
    outputs: list[np.ndarray]  # fail_step, fail_loss, train_loss, loss_sum, confusion: [P, ...]
    step_seconds: list[float]  # per group, the mean over its timed chunks (NaN: none timed)


def _survivor_size(living: int, size: int, devices: int) -> int:
    """Chunk size for ``living`` survivors of a group whose chunks held ``size``: the next power
    of two (so halving compiles a few sizes, not one per count), rounded to the devices."""
    return min(size, round_size(1 << max(living - 1, 0).bit_length(), devices))


def run_halving(halving: Halving, cache: ProgramCache, jobs: list[list[Job]], init: Any,
                genomes: np.ndarray, data: DeviceData, sharding: PopulationSharding,
                steps: int, outputs: list[np.ndarray], kept: Any,
                agree: Callable[[float], float]) -> Halved:
    """Successive halving inside one call: every chunk trains to the first rung and is
    evaluated; the best ``1 / eta`` of the living (by validation accuracy; a failed one never)
    continue from their state, with the same batches, to the next rung, and so on to
    ``steps``.

    Between rungs the states wait on the host, one per individual, and each group's survivors
    are packed into chunks of their own (a power of two, see :func:`_survivor_size`): the
    stopped cost nothing further. A survivor's numbers are those it would have had trained
    without stops (the chunk it shares does not change them). ``outputs`` (arrays over the
    population) receive each individual's numbers at its last rung, ``kept`` (when given) its
    trained parameters (see :func:`_keep`).
    """
    budgets = [*halving.rungs, steps]
    alive = np.ones(len(genomes), bool)
    trained = np.zeros(len(genomes), np.int64)
    accuracy = np.full(len(genomes), -np.inf)
    states: dict[int, Any] = {}  # individual -> its state, host arrays without the chunk axis
    specs: dict[int, GroupSpec] = {}  # group -> its spec with the packed layout
    times: list[list[float]] = [[] for _ in jobs]
    for k, budget in enumerate(budgets):
        start = budgets[k - 1] if k else 0
        for g, group_jobs in enumerate(jobs):
            job = group_jobs[0]  # every chunk of a group shares its spec, cut and size
            for index, real in _rung_chunks(k, group_jobs, alive, sharding.count):
                if k == 0:
                    params = job.cut(jax.tree.map(lambda a, i=index: a[i], init))
                    specs[g] = spec = dataclasses.replace(job.spec, layout=Layout.of(params))
                    state = initial_state(spec, params)
                else:
                    spec = specs[g]
                    state = jax.tree.map(lambda *rows: np.stack(rows),
                                         *[states[int(i)] for i in index])
                state, seconds = train_steps(cache, spec, sharding.split(state),
                                              sharding.split(genomes[index]), data, start,
                                              budget, member_keys(data, index, sharding))
                seconds = agree(seconds)
                loss_sum, confusion = cache.evaluate(spec, state.params,
                                                     sharding.split(genomes[index]),
                                                     data.x_eval, data.y_eval, data.split,
                                                     data.num_splits)
                state, loss_sum, confusion = sharding.gather((state, loss_sum, confusion))
                if kept is not None:
                    keep(kept, job._replace(index=index, real=real),
                          jax.tree.map(lambda a, i=index: a[i], init), state.params)
                seen = (job.seen[0], len(index))
                cache.seen.add(seen)
                if np.isfinite(seconds):
                    cache.step_seconds[(*seen, job.exact)] = seconds
                    times[g].append(seconds)
                chunk = (state.fail_step, state.fail_loss, state.loss, np.asarray(loss_sum),
                         np.asarray(confusion))
                idx = index[:real]  # padding individuals are discarded
                for out, value in zip(outputs, chunk):
                    out[idx] = value[:real]
                for j, i in enumerate(idx):
                    states[int(i)] = jax.tree.map(lambda a, j=j: a[j], state)
                val = chunk[4][:real, 0]
                correct = np.trace(val, axis1=1, axis2=2) / np.maximum(val.sum(axis=(1, 2)), 1)
                accuracy[idx] = np.where(chunk[0][:real] >= 0, -np.inf, correct)
        trained[alive] = budget
        if k + 1 < len(budgets):
            alive = _promote(alive, accuracy, halving.eta)
            for i in np.flatnonzero(~alive):
                states.pop(int(i), None)  # a stopped individual's state is not needed again
    return Halved(trained, outputs, [float(np.mean(t)) if t else float("nan") for t in times])


def _rung_chunks(rung: int, group_jobs: list[Job], alive: np.ndarray, devices: int
                 ) -> list[tuple[np.ndarray, int]]:
    """A group's chunks at ``rung``: its own chunks at the first, then its living members
    packed into chunks of a power of two (each with its number of real members)."""
    if rung == 0:
        return [(j.index, j.real) for j in group_jobs]
    members = np.concatenate([j.index[:j.real] for j in group_jobs])
    living = members[alive[members]]
    if not len(living):
        return []
    size = _survivor_size(len(living), len(group_jobs[0].index), devices)
    return [(np.concatenate([part, np.full(size - len(part), part[0])]), len(part))
            for part in np.array_split(living, range(size, len(living), size))]


def _promote(alive: np.ndarray, accuracy: np.ndarray, eta: int) -> np.ndarray:
    """The best ``1 / eta`` (rounded up) of the living by validation accuracy, ties to the
    first; a failed individual (``-inf``) never."""
    living = np.flatnonzero(alive & np.isfinite(accuracy))
    order = living[np.lexsort((living, -accuracy[living]))]
    promoted = np.zeros_like(alive)
    promoted[order[:math.ceil(len(living) / eta)]] = True
    return promoted
