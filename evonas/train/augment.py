"""The image pipeline inside the compiled training step: random crop with padding, horizontal
flip and cutout, per example, on device.

A batch is augmented inside the jitted step with a key folded from the step and the individual
(``fold_in(fold_in(key, individual), step)``): no host loop per batch, the same numbers for the
same seed whatever the plan or the grouping, and each individual of a population sees its own
draws. The inputs are already standardised, so the padding and the cutout square are zeros: the
train split's mean. Sequences (``[B, L, C]``) get the crop and the cutout along their length and
no flip.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from evonas import checks


@dataclasses.dataclass(frozen=True)
class Augment:
    """What the training step does to each batch (``train.augment`` in a config).

    Attributes:
        crop: pad each side by this many pixels, then crop back at a random offset (0: off).
        flip: flip images left-right with probability 1/2 (off for digits and text-like data).
        cutout: zero a random square of this side (DeVries and Taylor 2017; 0: off).
    """

    crop: int = 0
    flip: bool = False
    cutout: int = 0

    def __post_init__(self):
        checks.integer("train.augment.crop", self.crop, 0, 64)
        checks.boolean("train.augment.flip", self.flip)
        checks.integer("train.augment.cutout", self.cutout, 0, 1024)

    @property
    def active(self) -> bool:
        return bool(self.crop or self.flip or self.cutout)


def augment(key: jax.Array, x: jax.Array, spec: Augment) -> jax.Array:
    """``x`` ``[B, *spatial, C]`` augmented per example (jit- and vmap-able)."""
    if not spec.active:
        return x
    spatial = x.shape[1:-1]
    k_crop, k_flip, k_cut = jax.random.split(key, 3)
    if spec.crop:
        x = _crop(k_crop, x, spec.crop)
    if spec.flip and len(spatial) == 2:
        flip = jax.random.bernoulli(k_flip, 0.5, (x.shape[0],))
        x = jnp.where(flip[:, None, None, None], x[:, :, ::-1, :], x)
    if spec.cutout:
        x = _cutout(k_cut, x, spec.cutout)
    return x


def _crop(key: jax.Array, x: jax.Array, pad: int) -> jax.Array:
    spatial = x.shape[1:-1]
    padded = jnp.pad(x, ((0, 0), *((pad, pad),) * len(spatial), (0, 0)))
    offsets = jax.random.randint(key, (x.shape[0], len(spatial)), 0, 2 * pad + 1)

    def one(image: jax.Array, offset: jax.Array) -> jax.Array:
        start = (*offset, 0)
        return jax.lax.dynamic_slice(image, start, (*spatial, x.shape[-1]))

    return jax.vmap(one)(padded, offsets)


def _cutout(key: jax.Array, x: jax.Array, size: int) -> jax.Array:
    """Zeros a square (an interval for sequences) of side ``size`` centred at a random
    position of each example; it may reach past the border."""
    spatial = x.shape[1:-1]
    centres = jax.random.randint(key, (x.shape[0], len(spatial)), 0,
                                 jnp.asarray(spatial, jnp.int32))
    square = jnp.ones((x.shape[0], *spatial), bool)
    for axis, length in enumerate(spatial):
        shape = [1] * (len(spatial) + 1)
        shape[axis + 1] = length
        position = jnp.arange(length).reshape(shape)
        centre = centres[:, axis].reshape((-1,) + (1,) * len(spatial))
        start = centre - size // 2
        square = square & (position >= start) & (position < start + size)
    return x * (~square)[..., None].astype(x.dtype)
