"""The pieces of the population trainer's host loop: the data on device, a group's chunks
(``Job``), training and evaluating one chunk, compiling the chunks to come ahead, keeping trained
parameters, and the costs that plan a population (``evonas.train.loop`` puts them together)."""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.extend as jex
import jax.numpy as jnp
import numpy as np

from evonas.data.batches import batch_indices
from evonas.train.cache import CompileCounter, ProgramCache
from evonas.train.config import TrainConfig
from evonas.train.plans import Group
from evonas.train.programs import GroupSpec, Layout, initial_state
from evonas.train.sharding import PopulationSharding

EXECUTED = ("executed_params", "executed_flops")


AUGMENT_STREAM = 0x617567  # fold_in(batch key, this): the image pipeline's draws


class DeviceData(NamedTuple):
    """The dataset and the batch indices of every step, on device."""

    x_train: jax.Array
    y_train: jax.Array
    indices: jax.Array  # int32[steps, batch_size]
    x_eval: jax.Array
    y_eval: jax.Array
    split: jax.Array  # int32[N_eval]: 0 validation, 1 test
    num_splits: int
    example: np.ndarray  # [1, *input_shape], for init shapes
    augment_key: jax.Array | None = None  # the population's augmentation key (None: off)


def member_keys(data: DeviceData, members: np.ndarray, sharding: PopulationSharding
                ) -> jax.Array | None:
    """``uint32[n, 2]``: the augmentation key data of the population members ``members``
    (``fold_in(augment_key, member)``: a member's draws do not depend on its chunk), or None
    without augmentation."""
    if data.augment_key is None:
        return None
    keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(
        data.augment_key, jnp.asarray(members, jnp.int32))
    return sharding.split(np.asarray(jax.random.key_data(keys)))


def device_data(dataset: Any, config: TrainConfig, sharding: PopulationSharding,
                 key: jax.Array) -> DeviceData:
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
    augment_key = None
    if config.augment is not None and config.augment.active:
        augment_key = jax.random.fold_in(key, AUGMENT_STREAM)  # the batches keep using key
    return DeviceData(put(dataset.x_train), put(dataset.y_train), put(indices),
                       put(np.concatenate(x_eval)), put(np.concatenate(y_eval)), put(split),
                       len(y_eval), np.asarray(dataset.x_train[:1]), augment_key)


class ChunkOutput(NamedTuple):
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


def keep(kept: Any, job: Job, chunk_init: Any, flat: np.ndarray) -> None:
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
        warnings.warn(f"can't keep trained parameters of {len(flat)} individuals: their "
                      f"parameter map is not linear ({type(err).__name__}); their children "
                      "start from scratch", stacklevel=3)
        return
    idx = job.index[:job.real]
    for out, v, c, i in zip(jax.tree.leaves(kept), jax.tree.leaves(values),
                            jax.tree.leaves(covered), jax.tree.leaves(chunk_init)):
        v, c = np.asarray(v)[:job.real], np.asarray(c)[:job.real]
        out[idx] = np.where((c > 0) & (v != i[:job.real]), v, np.nan)


def run_chunk(cache: ProgramCache, spec: GroupSpec, params: Any, genomes: np.ndarray,
              data: DeviceData, sharding: PopulationSharding, cut: Callable[[Any], Any],
              agree: Callable[[float], float], members: np.ndarray) -> ChunkOutput:
    """Trains and evaluates one chunk from its max-bounds parameters (numpy, ``[n, ...]``),
    cut to the group's module by ``cut``; ``agree`` makes its measured step time every
    process's (the leader's, in a multi-process run); ``members`` are the chunk's population
    positions (their augmentation keys)."""
    opts = spec.options
    params = cut(params)
    spec = dataclasses.replace(spec, layout=Layout.of(params))
    state = sharding.split(initial_state(spec, params))
    genomes_d = sharding.split(genomes)
    keys = member_keys(data, members, sharding)
    starts = list(range(0, opts.steps, opts.steps_per_call))
    state = cache.train(spec, state, genomes_d, data.x_train, data.y_train, data.indices,
                        starts[0], keys)
    jax.block_until_ready(state)  # the first call compiles: time the rest as steady state
    t = time.perf_counter()
    for t0 in starts[1:]:
        state = cache.train(spec, state, genomes_d, data.x_train, data.y_train, data.indices, t0,
                            keys)
    jax.block_until_ready(state)
    steps_timed = (len(starts) - 1) * opts.steps_per_call
    step_seconds = (time.perf_counter() - t) / steps_timed if steps_timed else float("nan")
    loss_sum, confusion = cache.evaluate(spec, state.params, genomes_d, data.x_eval, data.y_eval,
                                         data.split, data.num_splits)
    outputs = sharding.gather((state.fail_step, state.fail_loss, state.loss, loss_sum,
                               confusion))
    return ChunkOutput(*outputs, agree(step_seconds), state.params)


class CompileAhead:
    """Compiles the programs of the chunks to come on a background thread while the host loop
    trains the current one.

    XLA compiles on one core and a small network's training step leaves the other cores mostly
    idle, so on a CPU the compiles of a grouped population overlap its training instead of
    adding to it. A compiled program lands in JAX's executable cache, where the host loop's
    call finds it (it only traces and lowers again). Chunks are compiled in the loop's order,
    each (program, shapes) once; the loop waits for a chunk's compile before running it, so no
    program is compiled twice. A failure here costs nothing: the loop's own call compiles.
    """

    def __init__(self, cache: ProgramCache, sharding: PopulationSharding, data: DeviceData,
                 init: Any, jobs: list[Job], num_genes: int, counter: CompileCounter):
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
    def _compile(cache: ProgramCache, sharding: PopulationSharding, data: DeviceData,
                 init: Any, job: Job, num_genes: int) -> None:
        params = job.cut(jax.tree.map(lambda a: a[job.index], init))
        spec = dataclasses.replace(job.spec, layout=Layout.of(params))
        state = initial_state(spec, params)
        placed = lambda a: jax.ShapeDtypeStruct(np.shape(a), np.asarray(a).dtype,
                                                sharding=sharding.population)
        state = jax.tree.map(placed, state)
        genomes = jax.ShapeDtypeStruct((len(job.index), num_genes), np.int32,
                                       sharding=sharding.population)
        keys = None if data.augment_key is None else jax.ShapeDtypeStruct(
            (len(job.index), 2), np.uint32, sharding=sharding.population)
        cache.compile_train(spec, state, genomes, data.x_train, data.y_train, data.indices, 0,
                            keys)
        cache.compile_evaluate(spec, state.params, genomes, data.x_eval, data.y_eval,
                               data.split, data.num_splits)

    def wait(self, job: Job) -> None:
        future = self._futures.get((job.spec, len(job.index)))
        if future is not None:
            try:
                future.result()
            except Exception:  # the loop's own call compiles (and raises what matters)
                pass

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class Job(NamedTuple):
    """One chunk of a group, as the host loop runs it."""

    spec: GroupSpec
    cut: Callable[[Any], Any]
    exact: bool
    seen: tuple[Any, int]
    index: np.ndarray  # int32[size]: population positions (the last chunk padded)
    real: int  # how many of them are real members


def train_steps(cache: ProgramCache, spec: GroupSpec, state: Any, genomes_d: Any,
                 data: DeviceData, start: int, stop: int, keys: Any = None
                 ) -> tuple[Any, float]:
    """Steps ``start .. stop`` of a chunk (calls of ``steps_per_call``); seconds per step once
    compiled (NaN when only one call ran). ``keys``: :func:`member_keys` of the chunk."""
    spc = spec.options.steps_per_call
    starts = list(range(start, stop, spc))
    state = cache.train(spec, state, genomes_d, data.x_train, data.y_train, data.indices,
                        starts[0], keys)
    jax.block_until_ready(state)
    t = time.perf_counter()
    for t0 in starts[1:]:
        state = cache.train(spec, state, genomes_d, data.x_train, data.y_train, data.indices, t0,
                            keys)
    jax.block_until_ready(state)
    timed = (len(starts) - 1) * spc
    return state, (time.perf_counter() - t) / timed if timed else float("nan")


def chunks(group: Group, size: int) -> list[tuple[np.ndarray, int]]:
    """The group's members cut into chunks of ``size`` (the last padded with its first member),
    each with its number of real members."""
    members = np.asarray(group.members, np.int32)
    out = []
    for start in range(0, len(members), size):
        part = members[start:start + size]
        out.append((np.concatenate([part, np.full(size - len(part), part[0], np.int32)]),
                    len(part)))
    return out


def executed_costs(encoding: Any, genome: np.ndarray, bounds: Any) -> dict[str, float]:
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
    for name in EXECUTED:
        var = outs[name]
        if isinstance(var, jex.core.Literal):
            values[name] = float(var.val)
        elif var in consts:
            values[name] = float(np.asarray(consts[var]))
        else:
            out = encoding.cost(genome, bounds)
            return {k: float(out[k]) for k in EXECUTED}
    return values


def module_key(encoding: Any, genomes: np.ndarray) -> Callable[[int], Any] | None:
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


def exact_module(encoding: Any, genomes: np.ndarray, group: Group) -> tuple[Any, Any]:
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


def failure_reason(step: int, loss: float) -> str | None:
    if step < 0:
        return None
    if np.isfinite(loss):
        return f"gradients became non-finite at step {step}"
    return f"loss became {'nan' if np.isnan(loss) else 'inf'} at step {step}"
