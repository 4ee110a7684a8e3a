"""The standalone trainer: one architecture (``encoding.build``) trained to completion, and its
logits.

Used after the search (retraining the best on train + validation, and every later final-stage
step that trains one model): the exact-shape Flax module of a genome, trained with the search's
optimiser settings and a longer budget, with the population trainer's loss and step
(``evonas.train.step``). One jitted step per host iteration, not a ``lax.scan`` over steps:
XLA:CPU runs convolutions inside a loop body about 30x slower than the same step as its own
program (measured: 200 ms against 7 ms a step for a 3-layer 1-D CNN, batch 128).

:func:`train_for_seconds` trains to a wall-clock budget instead of a step count: the host loop
reads the clock, so it also sets each step's learning rate (the schedule's length is planned from
the measured step time and re-planned as training goes).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import time
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from evonas.data.batches import batch_indices
from evonas.train.augment import augment
from evonas.train.config import TrainConfig, library_options
from evonas.train.jobs import AUGMENT_STREAM
from evonas.train.prune import magnitude_masks
from evonas.train.step import cross_entropy, descent_step, distillation_loss


def train_module(key: jax.Array, module: Any, x: np.ndarray, y: np.ndarray,
                 config: TrainConfig, steps: int, *, teacher_logits: np.ndarray | None = None,
                 temperature: float = 4.0, alpha: float = 0.9, init: Any = None,
                 sparsity_schedule: tuple[tuple[int, float], ...] | None = None,
                 optimizer: Any = None) -> Any:
    """Trains ``module`` on ``(x, y)`` for ``steps`` steps and returns its variables.

    Args:
        key: initialisation and batch order (``init_key, batch_key = split(key)``), the same
            with or without a teacher.
        module: a Flax module, ``apply(variables, x) -> logits``.
        x, y: training inputs and integer labels.
        config: optimiser, learning rate, schedule and batch size (``steps`` is replaced).
        steps: optimiser steps.
        teacher_logits: ``float32[N, C]``, a teacher's logits on ``x``: distil with
            :func:`~evonas.train.step.distillation_loss` at ``temperature`` and ``alpha``
            instead of the plain cross-entropy.
        init: variables to start from (fine-tuning) instead of ``module.init``; the batch
            order still comes from ``key``.
        sparsity_schedule: ``((step, sparsity), ...)``: at each step, the weights are pruned to
            that sparsity by magnitude (:func:`~evonas.train.prune.magnitude_masks`) and kept
            zero after every later update.
        optimizer: an optax transformation to use instead of ``config``'s (fine-tuning: one
            learning rate per part of the network, frozen parts ``optax.set_to_zero``).
    """
    options = dataclasses.replace(config, steps=steps).program_options()
    optimizer = options.optimizer_fn() if optimizer is None else optimizer
    init_key, batch_key = jax.random.split(key)
    batch = min(config.batch_size, len(y))
    indices = batch_indices(batch_key, len(y), batch, steps)
    x, y = jnp.asarray(x), jnp.asarray(y)
    if teacher_logits is not None and np.shape(teacher_logits)[0] != len(y):
        raise ValueError(f"teacher_logits has {np.shape(teacher_logits)[0]} rows for "
                         f"{len(y)} examples; give the teacher's logits on the same x")
    teacher = None if teacher_logits is None else jnp.asarray(teacher_logits, jnp.float32)

    def loss(params: Any, xb: jax.Array, yb: jax.Array, tb: jax.Array | None) -> jax.Array:
        logits = module.apply(options.compute(params), options.compute(xb)).astype(jnp.float32)
        if tb is None:
            return cross_entropy(logits, yb, options.label_smoothing)
        return distillation_loss(logits, yb, tb, temperature, alpha)

    augment_key = jax.random.fold_in(batch_key, AUGMENT_STREAM)  # as the population's trainer

    # XLA's defaults, but convolutions in XLA's own kernels as in the population trainer
    # (``library_options``; ``xla: default`` leaves all of XLA's defaults).
    @functools.partial(jax.jit, compiler_options=library_options(config.xla))
    def step(params: Any, opt_state: Any, x: jax.Array, y: jax.Array, t: jax.Array | None,
             masks: Any, idx: jax.Array, step: jax.Array) -> tuple[Any, Any]:
        xb = x[idx]
        if options.augment is not None:
            xb = augment(jax.random.fold_in(augment_key, step), xb, options.augment)
        _, _, params, opt_state = descent_step(optimizer, loss, params, opt_state, xb,
                                               y[idx], None if t is None else t[idx])
        if masks is not None:
            params = jax.tree.map(lambda p, m: p * m, params, masks)
        return params, opt_state

    params = module.init(init_key, x[:1]) if init is None else jax.tree.map(jnp.asarray, init)
    opt_state = optimizer.init(params)
    prune_at = dict(sparsity_schedule or ())
    masks = None
    for t, idx in enumerate(indices):  # host loop over steps; see the module docstring
        if t in prune_at:
            masks = jax.tree.map(jnp.asarray, magnitude_masks(params, prune_at[t]))
            params = jax.tree.map(lambda p, m: p * m, params, masks)
        params, opt_state = step(params, opt_state, x, y, teacher, masks, idx, t)
    return params


PLAN_EVERY = 64
"""Steps between the timed trainer's re-plans (each waits for the device once)."""
SLACK = 0.98
"""The share of the time left a re-plan fills."""


def train_for_seconds(key: jax.Array, module: Any, x: np.ndarray, y: np.ndarray,
                      config: TrainConfig, seconds: float, *, max_steps: int | None = None,
                      init: Any = None) -> tuple[Any, int]:
    """Trains ``module`` on ``(x, y)`` for as many steps as fit in ``seconds`` of wall clock,
    with ``config``'s learning-rate schedule stretched over them; returns its variables and the
    steps trained.

    A fixed step count planned from a short timing misses by the timing's error (about 10 %
    either way on a CPU: the clock rate, other processes, the program that was timed). Here the
    host loop reads the clock instead: the schedule's length is planned from the step time
    measured on this very program after its compile (after 1, 2, 4, ... 64 steps, then every
    :data:`PLAN_EVERY` steps, from the latest window) and each step's learning rate is passed in
    (``optax.inject_hyperparams``), so a re-plan moves the cosine's end, never restarts it.
    Compile and initialisation count against ``seconds``; a stall that leaves the plan far
    behind the clock still lands the schedule (over 1 % more steps, at least 8) rather than stop
    at a high learning rate. The step count depends on the machine's speed: a run that must
    repeat exactly trains for the steps recorded with :func:`train_module`.

    Args:
        key: initialisation and batch order, as :func:`train_module`'s.
        module, x, y, config: as :func:`train_module`'s (``config.steps`` is ignored).
        seconds: the wall-clock budget (> 0); at least one step is trained.
        max_steps: the most steps (None: no limit but the clock).
        init: variables to start from instead of ``module.init``.

    Raises:
        ValueError: ``seconds`` not above 0, or ``max_steps`` below 1.
    """
    start = time.perf_counter()
    if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"train_for_seconds: seconds must be a number above 0; got {seconds!r}")
    if max_steps is not None and (not isinstance(max_steps, int) or max_steps < 1):
        raise ValueError(f"train_for_seconds: max_steps must be a positive int or None; got "
                         f"{max_steps!r}")
    deadline = start + float(seconds)
    options = dataclasses.replace(config, steps=1).program_options()
    optimizer = optax.inject_hyperparams(options.optimizer_at)(learning_rate=options.learning_rate)
    init_key, batch_key = jax.random.split(key)
    batch = min(config.batch_size, len(y))
    x, y = jnp.asarray(x), jnp.asarray(y)
    augment_key = jax.random.fold_in(batch_key, AUGMENT_STREAM)

    def loss(params: Any, xb: jax.Array, yb: jax.Array) -> jax.Array:
        logits = module.apply(options.compute(params), options.compute(xb)).astype(jnp.float32)
        return cross_entropy(logits, yb, options.label_smoothing)

    @functools.partial(jax.jit, compiler_options=library_options(config.xla))
    def step(params: Any, opt_state: Any, x: jax.Array, y: jax.Array, idx: jax.Array,
             step: jax.Array, lr: jax.Array) -> tuple[Any, Any]:
        opt_state = opt_state._replace(hyperparams={**opt_state.hyperparams,
                                                    "learning_rate": lr})
        xb = x[idx]
        if options.augment is not None:
            xb = augment(jax.random.fold_in(augment_key, step), xb, options.augment)
        _, _, params, opt_state = descent_step(optimizer, loss, params, opt_state, xb, y[idx])
        return params, opt_state

    params = module.init(init_key, x[:1]) if init is None else jax.tree.map(jnp.asarray, init)
    opt_state = optimizer.init(params)
    limit = math.inf if max_steps is None else max_steps
    planned = limit  # the schedule's length: unknown until the first step is timed
    first = mark = (0, 0.0)  # (steps, clock) after the compile, and at the window's start
    t, progress = 0, 0.0  # steps trained; how far along the schedule, 0 to 1
    for idx in _endless_batches(batch_key, len(y), batch):
        if t >= planned:
            break
        rate = learning_rate_at(options, progress)
        params, opt_state = step(params, opt_state, x, y, idx, t, jnp.float32(rate))
        # what is left of the schedule, spread over the steps left: t / planned while the plan
        # holds, and no jump in the learning rate when a re-plan moves its end
        progress += 0.0 if math.isinf(planned) else (1.0 - progress) / (planned - t)
        t += 1
        if t == 1 or t - 1 in (2, 4, 8, 16, 32) or (t - 1) % PLAN_EVERY == 0:
            jax.block_until_ready(params)
            now = time.perf_counter()
            if t == 1:  # the compile: not a step's time
                first = mark = (t, now)
                planned = t if now >= deadline else planned
                continue
            # The slower of the latest window and the whole run, and a plan that ends a little
            # early: the later re-plans stretch it. Far behind the clock (a stall: more than
            # 5 % of the schedule left and no time), the schedule still lands, over the larger
            # of 8 steps and 1 % of those trained, rather than stopping at a high rate.
            per_step = max((now - mark[1]) / (t - mark[0]), (now - first[1]) / (t - first[0]))
            fit = int(SLACK * (deadline - now) / per_step) if now < deadline else 0
            land = max(8, t // 100) if progress < 0.95 else 0
            planned = min(limit, t + max(fit, land))
            if t - mark[0] >= PLAN_EVERY:
                mark = (t, now)
    return params, t


def learning_rate_at(options: Any, progress: float) -> float:
    """The timed trainer's learning rate at ``progress`` (0 to 1) along its schedule:
    ``options.schedule`` (optax's cosine decay to 0, or constant)."""
    if options.schedule != "cosine":
        return float(options.learning_rate)
    return float(options.learning_rate) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _endless_batches(key: jax.Array, n: int, batch: int) -> Iterator[jax.Array]:
    """Batch indices without end: whole epochs (:func:`batch_indices`) drawn a chunk at a
    time, each chunk from its own key."""
    per_epoch = n // batch
    chunk = per_epoch * max(1, -(-1024 // per_epoch))
    for c in itertools.count():
        yield from batch_indices(jax.random.fold_in(key, c), n, batch, chunk)


def predict_logits(module: Any, params: Any, x: np.ndarray, batch_size: int = 1000
                   ) -> np.ndarray:
    """The module's logits on ``x``, in batches (``float32[N, C]``)."""
    apply = jax.jit(module.apply)
    parts = [np.asarray(apply(params, jnp.asarray(x[i:i + batch_size])))
             for i in range(0, len(x), batch_size)]
    return np.concatenate(parts)


def accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of ``logits`` against integer labels ``y``."""
    return float(np.mean(np.argmax(logits, axis=-1) == np.asarray(y)))
