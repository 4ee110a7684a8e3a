"""Batch indices drawn on device, so a training ``lax.scan`` gathers its batches by index."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

MAX_INDICES = 2**28
"""The most batch indices (``steps * batch_size``) a trainer draws at once: 1 GiB of int32."""


def check_batch_budget(what: str, steps: int, batch_size: int) -> None:
    """Refuses a training budget whose batch indices would not fit in memory.

    Raises:
        ValueError: ``steps * batch_size`` above :data:`MAX_INDICES`, naming both and the limit.
    """
    if steps * batch_size > MAX_INDICES:
        raise ValueError(
            f"{what}={steps} with train.batch_size={batch_size} needs {steps * batch_size:,} "
            f"batch indices, drawn at once ({steps * batch_size * 4 / 2**30:,.1f} GiB); at most "
            f"{MAX_INDICES:,} ({MAX_INDICES // batch_size:,} steps at this batch size)"
        )


@functools.partial(jax.jit, static_argnames=("n", "batch_size", "num_steps"))
def batch_indices(key: jax.Array, n: int, batch_size: int, num_steps: int) -> jax.Array:
    """Indices of ``num_steps`` batches drawn epoch by epoch without replacement.

    Each epoch is a fresh permutation of ``0 .. n - 1`` cut into ``n // batch_size`` batches; the
    last ``n % batch_size`` indices of each permutation are dropped (a different few each epoch),
    so every batch holds distinct examples and every example appears at most once an epoch.
    Shapes depend only on the static arguments, so it is jit-able and ``vmap``-able over keys
    (one stream per individual).

    Args:
      key: a ``jax.random`` key.
      n: number of examples; static.
      batch_size: examples a batch, ``1 <= batch_size <= n``; static.
      num_steps: number of batches; static.

    Returns:
      ``int32[num_steps, batch_size]``.
    """
    if not 1 <= batch_size <= n:
        raise ValueError(
            f"batch_size must be in 1 .. n={n} (the number of examples); got {batch_size}"
        )
    if num_steps < 1:
        raise ValueError(f"num_steps must be a positive int; got {num_steps}")
    per_epoch = n // batch_size
    epochs = math.ceil(num_steps / per_epoch)
    keys = jax.random.split(key, epochs)
    perms = jax.vmap(lambda k: jax.random.permutation(k, n))(keys)  # [epochs, n]
    batches = perms[:, : per_epoch * batch_size].reshape(epochs * per_epoch, batch_size)
    return batches[:num_steps].astype(jnp.int32)
