"""``train_population``: train and evaluate every genome of a population, group by group.

Three steps: **plan** (the execution plan's groups of members that share a program, each cut
into chunks that fit the memory budget), **run** (the host loops over groups, calls of a group's
program and calls of ``steps_per_call`` unrolled steps; all per-individual work runs inside
jitted programs, ``evonas.train.programs``, while the chunks to come compile on a background
thread), **metrics** (confusion matrices to accuracy, loss and F1 per split). A group whose
members all build one standalone module (``encoding.build``) trains that module, cut from the
same max-bounds initial parameters, unless the plan is ``masked`` or
``TrainConfig.exact_modules`` is off. Executed costs for planning are read from a trace of
``encoding.cost`` (constants of the bounds), so planning compiles nothing.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import jax
import numpy as np

from evonas.genomes.encoding import check_trainable
from evonas.train.cache import CompileCounter, ProgramCache, enable_persistent_cache
from evonas.train.config import TrainConfig
from evonas.train.halving import Halving, run_halving
from evonas.train.jobs import (
    CompileAhead,
    DeviceData,
    Job,
    chunks,
    device_data,
    exact_module,
    executed_costs,
    failure_reason,
    inherit,
    keep,
    module_key,
    run_chunk,
)
from evonas.train.memory import chunk_size, fit_eval_batch, individual_bytes
from evonas.train.metrics import confusion_metrics
from evonas.train.plans import CostModel, PlanCosts, make_plan, round_size
from evonas.train.programs import GroupSpec
from evonas.train.result import PopulationResult
from evonas.train.sharding import PopulationSharding

_PROGRAMS = ("init_population", "train_chunk", "evaluate_group")
# Compile the chunks to come on a background thread while one trains (see CompileAhead); off
# only to measure what it saves (benchmarks/throughput.py --no-compile-ahead).
COMPILE_AHEAD = True


class Session(Protocol):
    """What the trainer needs of a multi-process run (``evonas.experiment.distributed``): the
    devices of every process, and a measured time made every process's."""

    @property
    def devices(self) -> list[Any]:
        """Every process's devices, in JAX's global order: the population's mesh."""
        ...

    def agree(self, value: float) -> float:
        """The leader's ``value`` on every process."""
        ...


class _Plan(NamedTuple):
    """What planning decided: the plan's name, its groups and estimate, and the chunks."""

    name: str
    groups: list[Any]
    estimate: float
    jobs: list[list[Job]]


class _Outputs(NamedTuple):
    """Per-individual arrays the host loop fills, chunk by chunk."""

    fail_step: np.ndarray
    fail_loss: np.ndarray
    train_loss: np.ndarray
    loss_sum: np.ndarray
    confusion: np.ndarray

    @classmethod
    def empty(cls, size: int, splits: int, classes: int) -> _Outputs:
        return cls(np.full(size, -1, np.int64), np.zeros(size, np.float32),
                   np.zeros(size, np.float32), np.zeros((size, splits), np.float64),
                   np.zeros((size, splits, classes, classes), np.float64))


def _check_genomes(encoding: Any, genomes: Any) -> np.ndarray:
    genomes = np.asarray(genomes)
    g = encoding.space.num_genes
    if genomes.ndim != 2 or genomes.shape[1] != g or genomes.shape[0] < 1:
        raise ValueError(f"genomes must be an int array [P, {g}] with P >= 1 (one row per "
                         f"individual of this encoding); got shape {genomes.shape}")
    inside = np.all((genomes >= 0) & (genomes < np.asarray(encoding.space.cardinalities)), axis=1)
    if not inside.all():
        i = int(np.argmin(inside))
        raise ValueError(f"genome {i} = {genomes[i].tolist()} lies outside the space; gene upper "
                         f"bounds (exclusive) are {list(encoding.space.cardinalities)}")
    return genomes.astype(np.int32)


def _plan(encoding: Any, genomes: np.ndarray, dataset: Any, config: TrainConfig,
          cache: ProgramCache, sharding: PopulationSharding,
          cost_model: CostModel | None) -> _Plan:
    """Groups the population by the plan (a cost model's choice under ``auto``) and cuts each
    group into chunks that fit ``config.memory_budget_mb`` per device."""
    act = cache.activations(encoding, tuple(dataset.x_train.shape[1:]), config.batch_size)
    options = fit_eval_batch(config.program_options(), act, config.memory_budget_mb)
    spec_of = lambda bounds: GroupSpec(encoding, bounds, options, int(dataset.num_classes))
    executed: dict[Any, dict[str, float]] = {}

    def executed_of(bounds: Any) -> dict[str, float]:
        if bounds not in executed:
            executed[bounds] = executed_costs(encoding, genomes[0], bounds)
        return executed[bounds]

    if cost_model is None:
        cost_model = CostModel.for_platform(sharding.devices[0].platform)
    costs = PlanCosts(
        macs_of=lambda b: executed_of(b)["executed_flops"],
        is_compiled=lambda b, size: (spec_of(b), size) in cache.seen,
        steps=config.steps, batch_size=config.batch_size, model=cost_model,
        measured=lambda b, size, exact: cache.step_seconds.get((spec_of(b), size, exact)),
        module_of=module_key(encoding, genomes), exact_modules=config.exact_modules,
    )
    plan, groups, estimate = make_plan(config.plan, encoding, genomes, sharding.count, costs)
    max_macs = executed_of(encoding.max_bounds())["executed_flops"]
    jobs = []
    for group in groups:
        cost = executed_of(group.bounds)
        need = individual_bytes(cost["executed_params"], cost["executed_flops"], max_macs, act,
                                options)
        size = min(group.size, chunk_size(config.memory_budget_mb, need, sharding.count))
        spec = spec_of(group.bounds)
        cut = lambda p, b=group.bounds: encoding.slice_params(p, b)
        exact = False
        if group.exact and config.exact_modules and plan != "masked":
            module, exact_cut = exact_module(encoding, genomes, group)
            if module is not None:
                spec, cut, exact = dataclasses.replace(spec, exact=module), exact_cut, True
        seen = (spec_of(group.bounds), size)  # what the cost model asks about
        jobs.append([Job(spec, cut, exact, seen, index, real)
                     for index, real in chunks(group, size)])
    return _Plan(plan, groups, estimate, jobs)


def _initial_params(cache: ProgramCache, encoding: Any, key: jax.Array, genomes: np.ndarray,
                    data: DeviceData, sharding: PopulationSharding, xla: str, start: Any,
                    keep_params: bool) -> tuple[Any, Any]:
    """Every individual's initial max-bounds parameters on the host (``start`` mixed in), and
    the NaN-filled tree that kept trained parameters go into (None without ``keep_params``)."""
    padded = np.arange(round_size(len(genomes), sharding.count)) % len(genomes)
    index_d, genomes_d = sharding.split((padded.astype(np.int32), genomes[padded]))
    init = sharding.gather(cache.init(encoding, key, index_d, genomes_d, data.example, xla=xla))
    if start is not None:
        init = inherit(init, start)
    kept = (jax.tree.map(lambda a: np.full((len(genomes), *a.shape[1:]), np.nan, a.dtype), init)
            if keep_params else None)
    return init, kept


def _run_jobs(cache: ProgramCache, plan: _Plan, init: Any, genomes: np.ndarray,
              data: DeviceData, sharding: PopulationSharding, outputs: _Outputs, kept: Any,
              agree: Callable[[float], float], counter: CompileCounter) -> list[float]:
    """Trains and evaluates every chunk in order, compiling the ones to come ahead; returns
    each group's mean seconds per step."""
    flat = [job for group_jobs in plan.jobs for job in group_jobs]
    ahead = (CompileAhead(cache, sharding, data, init, flat, genomes.shape[1], counter)
             if COMPILE_AHEAD and len(flat) > 1 else None)
    step_seconds = []
    for group_jobs in plan.jobs:
        times = []
        for job in group_jobs:
            if ahead is not None:
                ahead.wait(job)
            chunk_params = jax.tree.map(lambda a, i=job.index: a[i], init)
            out = run_chunk(cache, job.spec, chunk_params, genomes[job.index], data, sharding,
                            job.cut, agree, job.index)
            if kept is not None:
                keep(kept, job, chunk_params, sharding.gather(out.params))
            cache.seen.add(job.seen)
            if np.isfinite(out.step_seconds):
                cache.step_seconds[(*job.seen, job.exact)] = out.step_seconds
            idx, real = job.index[:job.real], job.real  # padding individuals are discarded
            for array, value in zip(outputs, out[:5]):
                array[idx] = value[:real]
            times.append(out.step_seconds)
        step_seconds.append(float(np.mean(times)))
    if ahead is not None:
        ahead.close()
    return step_seconds


def _metrics(outputs: _Outputs, splits: int) -> dict[str, np.ndarray]:
    """``train_loss`` and every split's confusion metrics, NaN where an individual failed."""
    failed = outputs.fail_step >= 0
    metrics: dict[str, np.ndarray] = {"train_loss": np.where(failed, np.nan, outputs.train_loss)}
    for split_id, prefix in enumerate(("val", "test")[:splits]):
        measured = confusion_metrics(outputs.confusion[:, split_id],
                                     outputs.loss_sum[:, split_id])
        for name, values in measured.items():
            metrics[f"{prefix}_{name}"] = np.where(failed, np.nan, values).astype(np.float32)
    return metrics


def train_population(key: jax.Array, encoding: Any, genomes: Any, dataset: Any,
                     config: TrainConfig, *, cache: ProgramCache | None = None,
                     cost_model: CostModel | None = None,
                     devices: list[Any] | None = None, start: Any = None,
                     keep_params: bool = False, halving: Halving | None = None,
                     session: Session | None = None) -> PopulationResult:
    """Trains every genome of a population and measures it on the validation split.

    Individual ``i`` starts from ``supernet(max_bounds()).init(fold_in(init_key, i), ...)``
    (cut to its group's bounds, or by ``encoding.build``'s map for a group that trains the
    standalone module), with ``init_key, batch_key = split(key)``; every individual
    sees the same batches, drawn on device from ``batch_key``. An individual whose loss or
    gradients stop being finite is frozen and marked failed; the others are unaffected.

    Args:
        key: a ``jax.random`` key; the same key, genomes and config give the same numbers under
            every plan (up to float tolerance).
        encoding: a trainable encoding (``evonas.genomes.TrainableEncoding``).
        genomes: ``int[P, G]``.
        dataset: an ``evonas.data.Dataset`` (train, validation, test arrays).
        config: the training configuration.
        cache: compiled programs to reuse; pass the same cache every generation (``None``: a
            fresh one, so only the persistent compilation cache carries over).
        cost_model: the plans' cost model (default: ``CostModel.for_platform`` of the first
            device: measured constants on a CPU).
        devices: devices to shard the population over (default: the session's, else all local
            devices).
        start: (optional) starting parameters in the max-bounds layout, leaves ``[P, ...]``,
            NaN where an individual starts as usual: weight inheritance passes a parent's
            trained parameters (:func:`inherit` of ``keep_params``' output) here.
        keep_params: return each individual's trained parameters in the max-bounds layout
            (``PopulationResult.params``): NaN wherever training left a value untouched (outside
            the individual's architecture, or never reached by a gradient), so a child can take
            exactly what its parent learned.
        halving: successive halving inside the call (:class:`~evonas.train.halving.Halving`).
        session: a multi-process run's session: every process calls this with the same
            arguments, the population is sharded over every process's devices and measured
            step times are the leader's.

    Returns:
        A :class:`PopulationResult`.

    Raises:
        ValueError: bad genomes, a batch larger than the train split, a halving schedule that
            does not fit ``config``, or a memory budget too small for one individual.
    """
    check_trainable(encoding, require_build=False)
    genomes = _check_genomes(encoding, genomes)
    if halving is not None:
        halving.check(config.steps, config.steps_per_call)
    if config.compile_cache_dir is not None:
        enable_persistent_cache(config.compile_cache_dir)
    cache = cache if cache is not None else ProgramCache()
    cache.trim(config.max_programs)
    if devices is None and session is not None:
        devices = session.devices
    sharding = PopulationSharding(devices)
    agree = session.agree if session is not None and sharding.global_ else (lambda x: x)
    init_key, batch_key = jax.random.split(key)
    began = time.perf_counter()
    with CompileCounter() as counter:
        data = device_data(dataset, config, sharding, batch_key)
        plan = _plan(encoding, genomes, dataset, config, cache, sharding, cost_model)
        init, kept = _initial_params(cache, encoding, init_key, genomes, data, sharding,
                                     config.xla, start, keep_params)
        outputs = _Outputs.empty(len(genomes), data.num_splits, int(dataset.num_classes))
        if halving is not None:
            halved = run_halving(halving, cache, plan.jobs, init, genomes, data, sharding,
                                 config.steps, list(outputs), kept, agree)
            steps, step_seconds = halved.steps, halved.step_seconds
        else:
            steps = np.full(len(genomes), config.steps, np.int64)
            step_seconds = _run_jobs(cache, plan, init, genomes, data, sharding, outputs, kept,
                                     agree, counter)
    return _result(outputs, data.num_splits, steps, step_seconds, kept, plan, counter,
                   time.perf_counter() - began)


def _result(outputs: _Outputs, splits: int, steps: np.ndarray, step_seconds: list[float],
            kept: Any, plan: _Plan, counter: CompileCounter, seconds: float
            ) -> PopulationResult:
    """The call's :class:`PopulationResult`: metrics, failures and what the call cost."""
    return PopulationResult(
        steps=steps, params=kept, metrics=_metrics(outputs, splits),
        failed=outputs.fail_step >= 0,
        reasons=[failure_reason(int(st), float(lo))
                 for st, lo in zip(outputs.fail_step, outputs.fail_loss)],
        seconds=seconds, compile_seconds=counter.seconds,
        compiles=counter.compiles, disk_cache_hits=counter.disk_hits,
        program_compiles={name[4:-1]: n for name, n in counter.by_name.items()
                          if name[4:-1] in _PROGRAMS},
        plan=plan.name, groups=tuple(plan.groups), estimated_seconds=plan.estimate,
        step_seconds=tuple(step_seconds),
    )
