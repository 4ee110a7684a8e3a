"""The loss and the optimiser step every evonas trainer shares.

The population trainer (``programs.py``, one step per individual, vmapped) and the standalone
trainer (``standalone.py``: retraining, distillation, fine-tuning) both train with these, so a
model trained either way follows the same arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax


def cross_entropy(logits: jax.Array, labels: jax.Array, smoothing: float = 0.0) -> jax.Array:
    """Mean softmax cross-entropy of ``logits [batch, C]`` against integer ``labels [batch]``.

    ``smoothing``: label smoothing (Szegedy et al. 2016, Keras's and PyTorch's
    ``label_smoothing``): the target is ``1 - smoothing`` on the label plus ``smoothing / C``
    on every class; 0 is the plain integer-label loss.
    """
    if not smoothing:
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    targets = optax.smooth_labels(jax.nn.one_hot(labels, logits.shape[-1]), smoothing)
    return optax.softmax_cross_entropy(logits, targets).mean()


def distillation_loss(logits: jax.Array, labels: jax.Array, teacher_logits: jax.Array,
                      temperature: float, alpha: float) -> jax.Array:
    """Hinton et al. 2015: ``(1 - alpha) * CE(labels) + alpha * T^2 * KL(teacher_T || student_T)``.

    ``teacher_T`` and ``student_T`` are the softmaxes of the logits divided by the temperature
    ``T``; the ``T^2`` keeps the soft targets' gradients on the labels' scale. Means over the
    batch; ``alpha = 0`` is :func:`cross_entropy`.
    """
    soft = jax.nn.softmax(teacher_logits / temperature)
    student = jax.nn.log_softmax(logits / temperature)
    kl = jnp.sum(soft * (jnp.log(jnp.clip(soft, 1e-30)) - student), axis=-1).mean()
    return (1.0 - alpha) * cross_entropy(logits, labels) + alpha * temperature ** 2 * kl


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
