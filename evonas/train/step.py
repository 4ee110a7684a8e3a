"""The loss and the optimiser step every evonas trainer shares.

The population trainer (``programs.py``, one step per individual, vmapped) and the standalone
trainer (``standalone.py``: retraining, distillation, fine-tuning) both train with these, so a
model trained either way follows the same arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import optax


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy of ``logits [batch, C]`` against integer ``labels [batch]``."""
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def descent_step(optimizer: optax.GradientTransformation, loss_fn: Callable[..., jax.Array],
                 params: Any, opt_state: Any, *args: Any) -> tuple[jax.Array, Any, Any, Any]:
    """One optimiser step on ``loss_fn(params, *args)``.

    Returns:
        ``(loss, grads, new_params, new_opt_state)``: the loss and gradients at ``params``
        (the population trainer checks them for divergence) and the updated state.
    """
    loss, grads = jax.value_and_grad(loss_fn)(params, *args)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return loss, grads, optax.apply_updates(params, updates), opt_state
