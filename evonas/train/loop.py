"""``train_population``: train and evaluate every genome of a population, group by group.

The host loops over groups, calls of a group's program (a group's members may go through a
smaller program in consecutive calls: ``Group.size``, memory chunking) and calls of
``steps_per_call`` unrolled steps; all per-individual work runs inside jitted programs
(``evonas.train.programs``). A group whose members all build one standalone module
(``encoding.build``) trains that module, cut from the same max-bounds initial parameters, unless
the plan is ``masked`` or ``TrainConfig.exact_modules`` is off. Executed costs for planning are
read from a trace of ``encoding.cost`` (constants of the bounds), so planning compiles nothing.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.extend as jex
import numpy as np

from evonas.data.batches import batch_indices
from evonas.genomes.encoding import check_trainable
from evonas.train import distributed
from evonas.train.cache import CompileCounter, ProgramCache, enable_persistent_cache
from evonas.train.config import TrainConfig
from evonas.train.memory import chunk_size, individual_bytes
from evonas.train.metrics import confusion_metrics
from evonas.train.plans import CostModel, Group, PlanCosts, make_plan, round_size
from evonas.train.programs import GroupSpec, Layout, initial_state
from evonas.train.result import PopulationResult
from evonas.train.sharding import PopulationSharding

_PROGRAMS = ("init_population", "train_chunk", "evaluate_group")
# Compile the chunks to come on a background thread while one trains (see _CompileAhead); off
# only to measure what it saves (benchmarks/throughput.py --no-compile-ahead).
COMPILE_AHEAD = True
_EXECUTED = ("executed_params", "executed_flops")


class _DeviceData(NamedTuple):
    """The dataset and the batch indices of every step, on device."""

    x_train: jax.Array
    y_train: jax.Array
    indices: jax.Array  # int32[steps, batch_size]
    x_eval: jax.Array
    y_eval: jax.Array
    split: jax.Array  # int32[N_eval]: 0 validation, 1 test
    num_splits: int
    example: np.ndarray  # [1, *input_shape], for init shapes


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


def _device_data(dataset: Any, config: TrainConfig, sharding: PopulationSharding,
                 key: jax.Array) -> _DeviceData:
    n = len(dataset.y_train)
    if config.batch_size > n:
        raise ValueError(f"TrainConfig.batch_size={config.batch_size} exceeds the {n} training "
                         "examples of the dataset; use at most that many")
    indices = batch_indices(key, n, config.batch_size, config.steps)
    x_eval, y_eval = [dataset.x_val], [dataset.y_val]
    if config.evaluate_test:
        x_eval.append(dataset.x_test)
        y_eval.append(dataset.y_test)
    split = np.concatenate([np.full(len(y), s, np.int32) for s, y in enumerate(y_eval)])
    put = sharding.replicate
    return _DeviceData(put(dataset.x_train), put(dataset.y_train), put(indices),
                       put(np.concatenate(x_eval)), put(np.concatenate(y_eval)), put(split),
                       len(y_eval), np.asarray(dataset.x_train[:1]))


class _ChunkOutput(NamedTuple):
    fail_step: np.ndarray
    fail_loss: np.ndarray
    train_loss: np.ndarray
    loss_sum: np.ndarray
    confusion: np.ndarray
    step_seconds: float
    params: Any  # float32[n, D], packed by the chunk's layout


def inherit(init: Any, start: Any) -> Any:
    """Starting parameters (max-bounds layout, leaves ``[P, ...]``): ``start`` wherever it is
    a number, ``init`` (the usual initialisation) where it is NaN. With ``start`` a parent's
    kept parameters, a child takes its parent's trained values on the part of the layout their
    architectures share and is initialised as usual everywhere else."""
    def one(i, s):  # ``init`` may hold padding rows past the population's
        s = np.asarray(s, i.dtype)
        if s.shape[1:] != i.shape[1:] or len(s) > len(i):
            raise ValueError(f"start parameters of shape {s.shape} don't fit the population's "
                             f"max-bounds layout {(len(i), *i.shape[1:])}")
        out = i.copy()
        out[:len(s)] = np.where(np.isnan(s), i[:len(s)], s)
        return out

    return jax.tree.map(one, init, start)


def _keep(kept: Any, job: _Job, chunk_init: Any, flat: np.ndarray) -> None:
    """Writes a chunk's trained parameters into ``kept`` (max-bounds layout, NaN where the
    chunk did not change a value). The chunk's cut is a selection of the max-bounds
    parameters, a linear map, so its transpose places the trained values back."""
    flat = np.asarray(flat)
    layout = Layout.of(job.cut(chunk_init))
    leaves, offset = [], 0
    for shape in layout.shapes:
        size = int(np.prod(shape))
        leaves.append(flat[:, offset:offset + size].reshape(len(flat), *shape))
        offset += size
    trained = jax.tree.unflatten(layout.treedef, leaves)
    try:
        transpose = jax.linear_transpose(job.cut, chunk_init)
        (values,) = transpose(trained)
        (covered,) = transpose(jax.tree.map(np.ones_like, trained))
    except Exception as err:  # a plug-in's cut that is not a selection: nothing to inherit
        import warnings

        warnings.warn(f"can't keep trained parameters of {len(flat)} individuals: their "
                      f"parameter map is not linear ({type(err).__name__}); their children "
                      "start from scratch", stacklevel=3)
        return
    idx = job.index[:job.real]
    for out, v, c, i in zip(jax.tree.leaves(kept), jax.tree.leaves(values),
                            jax.tree.leaves(covered), jax.tree.leaves(chunk_init)):
        v, c = np.asarray(v)[:job.real], np.asarray(c)[:job.real]
        out[idx] = np.where((c > 0) & (v != i[:job.real]), v, np.nan)


def _run_chunk(cache: ProgramCache, spec: GroupSpec, params: Any, genomes: np.ndarray,
               data: _DeviceData, sharding: PopulationSharding,
               cut: Callable[[Any], Any]) -> _ChunkOutput:
    """Trains and evaluates one chunk from its max-bounds parameters (numpy, ``[n, ...]``),
    cut to the group's module by ``cut``."""
    opts = spec.options
    params = cut(params)
    spec = dataclasses.replace(spec, layout=Layout.of(params))
    state = sharding.split(initial_state(spec, params))
    genomes_d = sharding.split(genomes)
    starts = list(range(0, opts.steps, opts.steps_per_call))
    state = cache.train(spec, state, genomes_d, data.x_train, data.y_train, data.indices,
                        starts[0])
    jax.block_until_ready(state)  # the first call compiles: time the rest as steady state
    t = time.perf_counter()
    for t0 in starts[1:]:
        state = cache.train(spec, state, genomes_d, data.x_train, data.y_train, data.indices, t0)
    jax.block_until_ready(state)
    steps_timed = (len(starts) - 1) * opts.steps_per_call
    step_seconds = (time.perf_counter() - t) / steps_timed if steps_timed else float("nan")
    loss_sum, confusion = cache.evaluate(spec, state.params, genomes_d, data.x_eval, data.y_eval,
                                         data.split, data.num_splits)
    outputs = sharding.gather((state.fail_step, state.fail_loss, state.loss, loss_sum,
                               confusion))
    return _ChunkOutput(*outputs, _agree(sharding, step_seconds), state.params)


def _agree(sharding: PopulationSharding, seconds: float) -> float:
    """A measured time as every process sees it: in a multi-process run the leader's, so the
    plans it steers are the same everywhere."""
    session = distributed.current()
    return session.agree(seconds) if session is not None and sharding.global_ else seconds


class _CompileAhead:
    """Compiles the programs of the chunks to come on a background thread while the host loop
    trains the current one.

    XLA compiles on one core and a small network's training step leaves the other cores mostly
    idle, so on a CPU the compiles of a grouped population overlap its training instead of
    adding to it. A compiled program lands in JAX's executable cache, where the host loop's
    call finds it (it only traces and lowers again). Chunks are compiled in the loop's order,
    each (program, shapes) once; the loop waits for a chunk's compile before running it, so no
    program is compiled twice. A failure here costs nothing: the loop's own call compiles.
    """

    def __init__(self, cache: ProgramCache, sharding: PopulationSharding, data: _DeviceData,
                 init: Any, jobs: list[_Job], num_genes: int, counter: CompileCounter):
        import concurrent.futures

        self._pool = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix="evonas-xla", initializer=counter.adopt_thread)
        self._futures: dict[tuple[Any, int], Any] = {}
        for job in jobs:
            key = (job.spec, len(job.index))
            if key not in self._futures:
                self._futures[key] = self._pool.submit(self._compile, cache, sharding, data,
                                                       init, job, num_genes)

    @staticmethod
    def _compile(cache: ProgramCache, sharding: PopulationSharding, data: _DeviceData,
                 init: Any, job: _Job, num_genes: int) -> None:
        params = job.cut(jax.tree.map(lambda a: a[job.index], init))
        spec = dataclasses.replace(job.spec, layout=Layout.of(params))
        state = initial_state(spec, params)
        placed = lambda a: jax.ShapeDtypeStruct(np.shape(a), np.asarray(a).dtype,
                                                sharding=sharding.population)
        state = jax.tree.map(placed, state)
        genomes = jax.ShapeDtypeStruct((len(job.index), num_genes), np.int32,
                                       sharding=sharding.population)
        cache.compile_train(spec, state, genomes, data.x_train, data.y_train, data.indices, 0)
        cache.compile_evaluate(spec, state.params, genomes, data.x_eval, data.y_eval,
                               data.split, data.num_splits)

    def wait(self, job: _Job) -> None:
        future = self._futures.get((job.spec, len(job.index)))
        if future is not None:
            try:
                future.result()
            except Exception:  # the loop's own call compiles (and raises what matters)
                pass

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class _Job(NamedTuple):
    """One chunk of a group, as the host loop runs it."""

    spec: GroupSpec
    cut: Callable[[Any], Any]
    exact: bool
    seen: tuple[Any, int]
    index: np.ndarray  # int32[size]: population positions (the last chunk padded)
    real: int  # how many of them are real members


class _Halved(NamedTuple):
    steps: np.ndarray  # int64[P]: steps each individual trained
    outputs: list[np.ndarray]  # fail_step, fail_loss, train_loss, loss_sum, confusion: [P, ...]
    step_seconds: list[float]  # per group, the mean over its timed chunks (NaN: none timed)


def _survivor_size(living: int, size: int, devices: int) -> int:
    """Chunk size for ``living`` survivors of a group whose chunks held ``size``: the next power
    of two (so halving compiles a few sizes, not one per count), rounded to the devices."""
    return min(size, round_size(1 << max(living - 1, 0).bit_length(), devices))


def _halving(cache: ProgramCache, jobs: list[list[_Job]], init: Any, genomes: np.ndarray,
             data: _DeviceData, sharding: PopulationSharding, config: TrainConfig,
             outputs: list[np.ndarray], kept: Any = None) -> _Halved:
    """Successive halving inside one call: every chunk trains to the first rung and is
    evaluated; the best ``1 / eta`` of the living (by validation accuracy; a failed one never)
    continue from their state, with the same batches, to the next rung, and so on to
    ``config.steps``.

    Between rungs the states wait on the host, one per individual, and each group's survivors
    are packed into chunks of their own (a power of two, see :func:`_survivor_size`): the
    stopped cost nothing further. A survivor's numbers are those it would have had trained
    without stops (the chunk it shares does not change them). ``outputs`` (arrays over the
    population) receive each individual's numbers at its last rung, ``kept`` (when given) its
    trained parameters (see :func:`_keep`).
    """
    budgets = [*config.rungs, config.steps]
    alive = np.ones(len(genomes), bool)
    steps = np.zeros(len(genomes), np.int64)
    accuracy = np.full(len(genomes), -np.inf)
    states: dict[int, Any] = {}  # individual -> its state, host arrays without the chunk axis
    specs: dict[int, GroupSpec] = {}  # group -> its spec with the packed layout
    times: list[list[float]] = [[] for _ in jobs]
    for k, budget in enumerate(budgets):
        start = budgets[k - 1] if k else 0
        for g, group_jobs in enumerate(jobs):
            job = group_jobs[0]  # every chunk of a group shares its spec, cut and size
            if k == 0:
                chunks = [(j.index, j.real) for j in group_jobs]
            else:
                members = np.concatenate([j.index[:j.real] for j in group_jobs])
                living = members[alive[members]]
                if not len(living):
                    continue
                size = _survivor_size(len(living), len(job.index), sharding.count)
                chunks = [(np.concatenate([part, np.full(size - len(part), part[0])]),
                           len(part)) for part in np.array_split(
                               living, range(size, len(living), size))]
            for index, real in chunks:
                if k == 0:
                    params = job.cut(jax.tree.map(lambda a, i=index: a[i], init))
                    specs[g] = spec = dataclasses.replace(job.spec, layout=Layout.of(params))
                    state = initial_state(spec, params)
                else:
                    spec = specs[g]
                    state = jax.tree.map(lambda *rows: np.stack(rows),
                                         *[states[int(i)] for i in index])
                state, seconds = _train_steps(cache, spec, sharding.split(state),
                                              sharding.split(genomes[index]), data, start,
                                              budget)
                seconds = _agree(sharding, seconds)
                loss_sum, confusion = cache.evaluate(spec, state.params,
                                                     sharding.split(genomes[index]),
                                                     data.x_eval, data.y_eval, data.split,
                                                     data.num_splits)
                state, loss_sum, confusion = sharding.gather((state, loss_sum, confusion))
                if kept is not None:
                    _keep(kept, job._replace(index=index, real=real),
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
        steps[alive] = budget
        if k + 1 < len(budgets):  # promote the best 1/eta of the living, ties to the first
            living = np.flatnonzero(alive & np.isfinite(accuracy))
            order = living[np.lexsort((living, -accuracy[living]))]
            alive = np.zeros_like(alive)
            alive[order[:math.ceil(len(living) / config.eta)]] = True
            for i in np.flatnonzero(~alive):
                states.pop(int(i), None)  # a stopped individual's state is not needed again
    return _Halved(steps, outputs, [float(np.mean(t)) if t else float("nan") for t in times])


def _train_steps(cache: ProgramCache, spec: GroupSpec, state: Any, genomes_d: Any,
                 data: _DeviceData, start: int, stop: int) -> tuple[Any, float]:
    """Steps ``start .. stop`` of a chunk (calls of ``steps_per_call``); seconds per step once
    compiled (NaN when only one call ran)."""
    spc = spec.options.steps_per_call
    starts = list(range(start, stop, spc))
    state = cache.train(spec, state, genomes_d, data.x_train, data.y_train, data.indices,
                        starts[0])
    jax.block_until_ready(state)
    t = time.perf_counter()
    for t0 in starts[1:]:
        state = cache.train(spec, state, genomes_d, data.x_train, data.y_train, data.indices, t0)
    jax.block_until_ready(state)
    timed = (len(starts) - 1) * spc
    return state, (time.perf_counter() - t) / timed if timed else float("nan")


def _chunks(group: Group, size: int) -> list[tuple[np.ndarray, int]]:
    """The group's members cut into chunks of ``size`` (the last padded with its first member),
    each with its number of real members."""
    members = np.asarray(group.members, np.int32)
    out = []
    for start in range(0, len(members), size):
        part = members[start:start + size]
        out.append((np.concatenate([part, np.full(size - len(part), part[0], np.int32)]),
                    len(part)))
    return out


def _executed_costs(encoding: Any, genome: np.ndarray, bounds: Any) -> dict[str, float]:
    """``executed_params`` and ``executed_flops`` of ``encoding.cost(genome, bounds)``.

    They depend on the static bounds alone, so they are constants of the traced ``cost``: read
    from its jaxpr, they cost a trace and no compile (run eagerly, ``cost`` compiles each of its
    few dozen ops once per process, about 1.5 s of a short run). Falls back to running ``cost``
    when an encoding computes them from the genome.
    """
    closed, shapes = jax.make_jaxpr(lambda g: encoding.cost(g, bounds),
                                    return_shape=True)(genome)
    outs = jax.tree.unflatten(jax.tree.structure(shapes), closed.jaxpr.outvars)
    consts = dict(zip(closed.jaxpr.constvars, closed.consts))
    values = {}
    for name in _EXECUTED:
        var = outs[name]
        if isinstance(var, jex.core.Literal):
            values[name] = float(var.val)
        elif var in consts:
            values[name] = float(np.asarray(consts[var]))
        else:
            out = encoding.cost(genome, bounds)
            return {k: float(out[k]) for k in _EXECUTED}
    return values


def _module_key(encoding: Any, genomes: np.ndarray) -> Callable[[int], Any] | None:
    """Individual index -> its standalone module (``encoding.build``; memoised), for the cost
    model to know which members can share an exact program; ``None`` without ``build``."""
    build = getattr(encoding, "build", None)
    if build is None:
        return None
    memo: dict[int, Any] = {}

    def key(i: int) -> Any:
        if i not in memo:
            module = build(genomes[i])[0]
            try:
                hash(module)
            except TypeError:  # unhashable: never shared, the group trains the supernet
                module = ("unhashable", i)
            memo[i] = module
        return memo[i]

    return key


def _exact_module(encoding: Any, genomes: np.ndarray, group: Group) -> tuple[Any, Any]:
    """``(module, cut)`` from ``encoding.build`` when every member of ``group`` builds the same
    standalone module (a group of one always does), else ``(None, None)``."""
    build = getattr(encoding, "build", None)
    if build is None:
        return None, None
    module, cut = build(genomes[group.members[0]])
    try:
        same = all(build(genomes[m])[0] == module for m in group.members[1:])
        hash(module)  # it keys the compiled programs
    except TypeError:  # an unhashable module: train the supernet instead
        return None, None
    return (module, cut) if same else (None, None)


def _reason(step: int, loss: float) -> str | None:
    if step < 0:
        return None
    if np.isfinite(loss):
        return f"gradients became non-finite at step {step}"
    return f"loss became {'nan' if np.isnan(loss) else 'inf'} at step {step}"


def train_population(key: jax.Array, encoding: Any, genomes: Any, dataset: Any,
                     config: TrainConfig, *, cache: ProgramCache | None = None,
                     cost_model: CostModel | None = None,
                     devices: list[Any] | None = None, start: Any = None,
                     keep_params: bool = False) -> PopulationResult:
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
        devices: devices to shard the population over (default: all local devices; in a
            multi-process run, :mod:`evonas.train.distributed`, every process's devices, and the
            call is published to the other processes, which run it too).
        start: (optional) starting parameters in the max-bounds layout, leaves ``[P, ...]``,
            NaN where an individual starts as usual: weight inheritance passes a parent's
            trained parameters (:func:`inherit` of ``keep_params``' output) here.
        keep_params: return each individual's trained parameters in the max-bounds layout
            (``PopulationResult.params``): NaN wherever training left a value untouched (outside
            the individual's architecture, or never reached by a gradient), so a child can take
            exactly what its parent learned.

    Returns:
        A :class:`PopulationResult`.

    Raises:
        ValueError: bad genomes, a batch larger than the train split, or a memory budget too
            small for one individual.
    """
    check_trainable(encoding, require_build=False)
    genomes = _check_genomes(encoding, genomes)
    if config.compile_cache_dir is not None:
        enable_persistent_cache(config.compile_cache_dir)
    cache = cache if cache is not None else ProgramCache()
    cache.trim(config.max_programs)
    options = config.program_options()
    session = distributed.current()
    if session is not None and devices is None:
        if session.leader:
            session.publish_train(key, genomes, config, start, keep_params)
        devices = session.devices
    sharding = PopulationSharding(devices)
    spec_of = lambda bounds: GroupSpec(encoding, bounds, options, int(dataset.num_classes))
    init_key, batch_key = jax.random.split(key)
    began = time.perf_counter()
    with CompileCounter() as counter:
        data = _device_data(dataset, config, sharding, batch_key)
        executed: dict[Any, dict[str, float]] = {}

        def executed_of(bounds: Any) -> dict[str, float]:
            if bounds not in executed:
                executed[bounds] = _executed_costs(encoding, genomes[0], bounds)
            return executed[bounds]

        if cost_model is None:
            cost_model = CostModel.for_platform(sharding.devices[0].platform)
        costs = PlanCosts(
            macs_of=lambda b: executed_of(b)["executed_flops"],
            is_compiled=lambda b, size: (spec_of(b), size) in cache.seen,
            steps=config.steps, batch_size=config.batch_size,
            model=cost_model,
            measured=lambda b, size, exact: cache.step_seconds.get((spec_of(b), size, exact)),
            module_of=_module_key(encoding, genomes),
            exact_modules=config.exact_modules,
        )
        plan, groups, estimate = make_plan(config.plan, encoding, genomes, sharding.count, costs)

        padded = np.arange(round_size(len(genomes), sharding.count)) % len(genomes)
        index_d, genomes_d = sharding.split((padded.astype(np.int32), genomes[padded]))
        init = cache.init(encoding, init_key, index_d, genomes_d, data.example, xla=config.xla)
        init = sharding.gather(init)  # host copy: groups take slices of it
        if start is not None:
            init = inherit(init, start)
        kept = (jax.tree.map(lambda a: np.full((len(genomes), *a.shape[1:]), np.nan, a.dtype),
                             init) if keep_params else None)
        act = cache.activations(encoding, tuple(dataset.x_train.shape[1:]), config.batch_size)
        max_macs = executed_of(encoding.max_bounds())["executed_flops"]
        p, s = len(genomes), data.num_splits
        c = int(dataset.num_classes)
        fail_step, fail_loss = np.full(p, -1, np.int64), np.zeros(p, np.float32)
        train_loss = np.zeros(p, np.float32)
        loss_sum, confusion = np.zeros((p, s), np.float64), np.zeros((p, s, c, c), np.float64)
        step_seconds = []
        jobs = []
        for group in groups:
            cost = executed_of(group.bounds)
            need = individual_bytes(cost["executed_params"], cost["executed_flops"], max_macs,
                                    act, options)
            size = min(group.size, chunk_size(config.memory_budget_mb, need, sharding.count))
            spec = spec_of(group.bounds)
            cut = lambda p, b=group.bounds: encoding.slice_params(p, b)
            exact = False
            if group.exact and config.exact_modules and plan != "masked":
                module, exact_cut = _exact_module(encoding, genomes, group)
                if module is not None:
                    spec, cut, exact = dataclasses.replace(spec, exact=module), exact_cut, True
            seen = (spec_of(group.bounds), size)  # what the cost model asks about
            jobs.append([_Job(spec, cut, exact, seen, index, real)
                         for index, real in _chunks(group, size)])
        if config.rungs:
            halved = _halving(cache, jobs, init, genomes, data, sharding, config,
                              [fail_step, fail_loss, train_loss, loss_sum, confusion], kept)
            steps_trained, step_seconds = halved.steps, halved.step_seconds
        else:
            steps_trained = np.full(len(genomes), config.steps, np.int64)
        flat = [job for group_jobs in jobs for job in group_jobs]
        ahead = (_CompileAhead(cache, sharding, data, init, flat, genomes.shape[1], counter)
                 if COMPILE_AHEAD and not config.rungs and len(flat) > 1 else None)
        for group_jobs in jobs if not config.rungs else ():
            times = []
            for job in group_jobs:
                if ahead is not None:
                    ahead.wait(job)
                chunk_params = jax.tree.map(lambda a, i=job.index: a[i], init)
                out = _run_chunk(cache, job.spec, chunk_params, genomes[job.index], data,
                                 sharding, job.cut)
                if kept is not None:
                    _keep(kept, job, chunk_params, sharding.gather(out.params))
                cache.seen.add(job.seen)
                if np.isfinite(out.step_seconds):
                    cache.step_seconds[(*job.seen, job.exact)] = out.step_seconds
                idx, real = job.index[:job.real], job.real  # padding individuals are discarded
                fail_step[idx], fail_loss[idx] = out.fail_step[:real], out.fail_loss[:real]
                train_loss[idx] = out.train_loss[:real]
                loss_sum[idx], confusion[idx] = out.loss_sum[:real], out.confusion[:real]
                times.append(out.step_seconds)
            step_seconds.append(float(np.mean(times)))
        if ahead is not None:
            ahead.close()
    seconds = time.perf_counter() - began

    failed = fail_step >= 0
    metrics: dict[str, np.ndarray] = {"train_loss": np.where(failed, np.nan, train_loss)}
    for split_id, prefix in enumerate(("val", "test")[:s]):
        measured = confusion_metrics(confusion[:, split_id], loss_sum[:, split_id])
        for name, values in measured.items():
            metrics[f"{prefix}_{name}"] = np.where(failed, np.nan, values).astype(np.float32)
    return PopulationResult(
        steps=steps_trained,
        params=kept,
        metrics=metrics,
        failed=failed,
        reasons=[_reason(int(st), float(lo)) for st, lo in zip(fail_step, fail_loss)],
        seconds=seconds,
        compile_seconds=counter.seconds,
        compiles=counter.compiles,
        disk_cache_hits=counter.disk_hits,
        program_compiles={name[4:-1]: n for name, n in counter.by_name.items()
                          if name[4:-1] in _PROGRAMS},
        plan=plan,
        groups=tuple(groups),
        estimated_seconds=estimate,
        step_seconds=tuple(step_seconds),
    )
