"""Per-individual memory estimates and the chunk size that fits a memory budget."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from evonas.train.config import ProgramOptions

_F32 = 4
# Optimiser slots per parameter: Adam keeps two moments, SGD with momentum one trace.
_SLOTS = {"adam": 2, "sgd": 1}


class Activations(NamedTuple):
    """Activation memory of the max-bounds supernet, per example.

    Attributes:
        saved: bytes a training step keeps for its backward pass (the vjp residuals).
        largest: bytes of the largest single saved intermediate.
    """

    saved: float
    largest: float


def max_bounds_activations(encoding: Any, input_shape: tuple[int, ...],
                           batch_size: int) -> Activations:
    """Traces (never compiles) one training batch of the max-bounds supernet and measures the
    residuals its backward pass keeps, per example.

    Every plan's module is at most the max-bounds one, so scaled by executed MACs this bounds a
    group's activations from above (XLA's fusion only lowers them).
    """
    module = encoding.supernet(encoding.max_bounds())
    genome = jnp.zeros((encoding.space.num_genes,), jnp.int32)

    def residuals(x: jax.Array) -> list[jax.Array]:
        arch = encoding.decode(genome)
        params = module.init(jax.random.key(0), arch, x[:1])["params"]
        _, vjp = jax.vjp(lambda p: module.apply({"params": p}, arch, x), params)
        return jax.tree.leaves(vjp)

    x = jax.ShapeDtypeStruct((batch_size, *input_shape), jnp.float32)
    sizes = [math.prod(a.shape) * a.dtype.itemsize for a in jax.eval_shape(residuals, x)]
    return Activations(sum(sizes) / batch_size, max(sizes, default=0) / batch_size)


def individual_bytes(params: float, macs: float, max_macs: float, activations: Activations,
                     options: ProgramOptions) -> float:
    """Estimated bytes one individual needs while training and evaluating.

    Args:
        params: executed parameters of the individual's program (its bounds).
        macs, max_macs: executed MACs per example at its bounds and at ``max_bounds()``; the
            max-bounds activations are scaled by their ratio.
        activations: :func:`max_bounds_activations`.
        options: the training options (optimiser, batch sizes).

    Returns:
        parameters, new parameters, gradients and optimiser slots, plus the larger of a
        training step's activations (the saved residuals and as much again for their
        gradients) and an evaluation batch's (a few of the largest intermediates live at once).
    """
    slots = _SLOTS[options.optimizer] if options.optimizer == "adam" or options.momentum else 0
    state = _F32 * params * (3 + slots)
    scale = macs / max_macs if max_macs > 0 else 1.0
    train = 2 * activations.saved * options.batch_size
    evaluate = eval_bytes(activations) * options.eval_batch_size
    return state + scale * max(train, evaluate)


def eval_bytes(activations: Activations) -> float:
    """Bytes per example an evaluation batch may hold at once: a layer's intermediates (a
    depthwise conv's shifted copies, say: up to a few dozen of the largest), never more than
    the training step saves."""
    return min(activations.saved, _LIVE * activations.largest)


_LIVE = 32  # intermediates of one layer an evaluation may hold at once, at most


def fit_eval_batch(options: ProgramOptions, activations: Activations,
                   budget_mb: float) -> ProgramOptions:
    """``options`` with an evaluation batch whose activations take at most half the budget
    (large images through a wide supernet: 1000 examples at once would not fit); unchanged
    when ``eval_batch_size`` already fits. The batch size changes no result but the last
    digits of a summed loss."""
    fits = int(0.5 * budget_mb * 2**20 // max(eval_bytes(activations), 1.0))
    if fits >= options.eval_batch_size:
        return options
    return dataclasses.replace(options, eval_batch_size=max(1, fits))


def chunk_size(budget_mb: float, per_individual: float, devices: int) -> int:
    """How many individuals a chunk holds: as many per device as the budget allows.

    Raises:
        ValueError: when the budget cannot hold one individual, naming the minimum needed.
    """
    per_device = int(budget_mb * 2**20 // per_individual)
    if per_device < 1:
        need = math.ceil(per_individual / 2**20 * 10) / 10
        raise ValueError(
            f"memory_budget_mb={budget_mb} is too small to train one individual of this "
            f"population; it needs at least {need} MB (per device)"
        )
    return per_device * devices
