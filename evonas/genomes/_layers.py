"""Building blocks shared by the trainable encodings: activations, arch-aware initialisers,
static parameter slicing and host-side validation of encoding options.

Private to ``evonas.genomes``: the encodings' public API is what they re-export.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

# Every activation maps 0 to 0, so a masked (zeroed) unit stays zero after the activation and the
# masks can be applied once, after it. Add new ones only if f(0) == 0 holds.
ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": nn.relu,
    "gelu": nn.gelu,
    "tanh": jnp.tanh,
    "silu": nn.silu,
    "elu": nn.elu,
    "identity": lambda z: z,
}

# Standard deviation of a unit normal truncated to (-2, 2): the constant jax's
# ``variance_scaling(..., "truncated_normal")`` (Flax's default ``lecun_normal``) divides by.
_TRUNCNORM_STD = 0.87962566103423978


def lecun_normal(fan_in: jax.Array | float) -> Callable[..., jax.Array]:
    """LeCun normal initialiser (truncated at 2 sigma) whose fan-in may be a traced value.

    Same distribution as ``flax.linen.initializers.lecun_normal()`` for a layer of the real shape:
    the supernet calls this with the fan-in of the *active* slice (decoded from the arch), so its
    active weights have the standalone module's scale, ``std = 1 / sqrt(fan_in)``.

    Args:
        fan_in: the real fan-in; values below 1 (an empty, inactive layer) count as 1.

    Returns:
        ``init(key, shape, dtype=float32)``, as ``nn.Module.param`` expects.
    """

    def init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
        std = jnp.sqrt(1.0 / jnp.maximum(jnp.asarray(fan_in, jnp.float32), 1.0))
        unit = jax.random.truncated_normal(key, -2.0, 2.0, tuple(shape), jnp.float32)
        return (unit * (std / _TRUNCNORM_STD)).astype(dtype)

    return init


CODES = "activation_codes"
"""The collection a module sows its units' binary codes into (``pre-activation > 0``, with a
mask of the units the architecture really has): what the NASWOT proxy scores. Sowing costs
nothing unless ``apply(..., mutable=[CODES])`` asks for it."""


def sow_codes(module: nn.Module, name: str, pre: jax.Array, mask: Any = 1.0) -> None:
    """Sows ``(codes float32[batch, units], mask float32[units])`` of pre-activations ``pre``
    (``[batch, ...]``) into :data:`CODES`; ``mask`` broadcasts against ``pre[0]``. Nothing is
    sown by ``init`` (the variables stay parameters only) or unless the collection is mutable."""
    if module.is_initializing() or not module.is_mutable_collection(CODES):
        return
    codes = (pre > 0).astype(jnp.float32).reshape(pre.shape[0], -1)
    mask = jnp.broadcast_to(jnp.asarray(mask, jnp.float32), pre.shape[1:]).reshape(-1)
    module.sow(CODES, name, (codes, mask))


def mix_activations(z: jax.Array, onehot: jax.Array, names: Sequence[str]) -> jax.Array:
    """``sum_a onehot[a] * act_a(z)``: the activation a one-hot selects (zero if it selects none).

    ``1 * f(z) + 0 * g(z)`` is exactly ``f(z)`` (and so is its gradient) for finite ``g(z)``, so
    this equals the standalone layer to the last bit. With a single activation no mixing is done.

    Args:
        z: pre-activations ``[..., C]``.
        onehot: ``float32[A]`` selector over ``names``.
        names: activation names, keys of :data:`ACTIVATIONS`.
    """
    if len(names) == 1:
        return ACTIVATIONS[names[0]](z) * onehot[0]
    out = onehot[0] * ACTIVATIONS[names[0]](z)
    for a, name in enumerate(names[1:], start=1):
        out = out + onehot[a] * ACTIVATIONS[name](z)
    return out


def slice_like(
    params: Mapping[str, Any],
    target: Mapping[str, Any],
    centred: Callable[[tuple[str, ...]], int] = lambda path: 0,
) -> dict[str, Any]:
    """Cuts every leaf of ``params`` down to the shape of the matching leaf of ``target``.

    Slicing is static and acts on the trailing dimensions, so leaves with extra leading axes
    (a population axis) are cut the same way. Keys absent from ``target`` are dropped (layers the
    bounds leave out). Most dimensions keep their leading corner; the first ``centred(path)``
    dimensions keep their centre (the taps of a smaller kernel inside the shared max kernel).

    Args:
        params: nested dict of arrays (Flax parameters).
        target: the same nesting with the wanted shapes (arrays or ``ShapeDtypeStruct``).
        centred: how many leading dimensions of the leaf at ``path`` to cut around their centre.
    """

    def cut(path: tuple[str, ...], p: Any, t: Any) -> Any:
        if isinstance(t, Mapping):
            missing = [k for k in t if k not in p]
            if missing:
                raise ValueError(
                    f"parameters at {'/'.join(path) or '<root>'} lack {missing}; expected the "
                    "max-bounds parameters of this encoding's supernet"
                )
            return {k: cut(path + (k,), p[k], t[k]) for k in t}
        shape = tuple(t.shape)
        lead = p.ndim - len(shape)
        if lead < 0 or any(a < b for a, b in zip(p.shape[lead:], shape)):
            raise ValueError(
                f"parameter {'/'.join(path)} has shape {p.shape}; cannot cut it down to {shape}"
            )
        n_centred = centred(path)
        index = []
        for d, (have, want) in enumerate(zip(p.shape[lead:], shape)):
            start = (have - want) // 2 if d < n_centred else 0
            index.append(slice(start, start + want))
        return p[(Ellipsis, *index)]

    return cut((), params, target)


# -- spatial ops on channels-last arrays ``[batch, *spatial, channels]`` (1-D or 2-D) -------------
# "same" padding and stride 1 everywhere, so spatial shapes never depend on the genome.

# "auto": lax convs for dense kernels and shifted multiply-adds for depthwise ones, the faster of
# each measured under ``vmap`` on a 2-core CPU (a vmapped depthwise lax conv becomes a grouped conv
# of population x channels groups, which XLA:CPU runs slowly).
CONV_IMPLS = ("auto", "lax", "im2col")


def _shifted(x: jax.Array, axis: int, size: int, fill: float) -> list[jax.Array]:
    """The ``size`` windows of ``x`` along ``axis`` for a centred odd window, "same" padding."""
    half = (size - 1) // 2
    pad = [(0, 0)] * x.ndim
    pad[axis] = (half, half)
    xp = jnp.pad(x, pad, constant_values=fill)
    n = x.shape[axis]
    return [jax.lax.slice_in_dim(xp, k, k + n, axis=axis) for k in range(size)]


def conv(x: jax.Array, kernel: jax.Array, impl: str = "auto") -> jax.Array:
    """A "same", stride-1 convolution, channels last.

    ``im2col`` gathers the taps of the last spatial axis into a patch axis and contracts it
    with one einsum per row of the kernel (a matmul, which XLA:CPU batches well under ``vmap``);
    ``lax`` calls ``lax.conv_general_dilated`` (best on accelerators).

    Args:
        x: ``[batch, *spatial, c_in]`` with 1 or 2 spatial axes.
        kernel: ``[*taps, c_in, c_out]``, odd tap counts.
        impl: one of :data:`CONV_IMPLS` (``auto`` is ``lax`` here).
    """
    nd = kernel.ndim - 2
    if impl in ("lax", "auto"):
        spec = "NWC" if nd == 1 else "NHWC"
        return jax.lax.conv_general_dilated(
            x, kernel, (1,) * nd, "SAME",
            dimension_numbers=(spec, spec[1:-1] + "IO", spec),
        )
    # Patches over the last spatial axis: [batch, *spatial, taps, c_in].
    patches = jnp.stack(_shifted(x, nd, kernel.shape[nd - 1], 0.0), axis=-2)
    if nd == 1:
        return jnp.einsum("blkc,kcd->bld", patches, kernel)
    rows = _shifted(patches, 1, kernel.shape[0], 0.0)
    out = None
    for i, row in enumerate(rows):
        term = jnp.einsum("bhwkc,kcd->bhwd", row, kernel[i])
        out = term if out is None else out + term
    return out


def depthwise_conv(x: jax.Array, kernel: jax.Array, impl: str = "auto") -> jax.Array:
    """A "same", stride-1 depthwise convolution: ``kernel`` is ``[*taps, 1, channels]``.

    ``lax`` calls a grouped ``lax.conv_general_dilated``; ``im2col`` and ``auto`` add up shifted
    copies of ``x`` times the taps (elementwise: there is no contraction to give a matmul), with
    the gradient of :func:`_depthwise_shifted`.
    """
    nd = kernel.ndim - 2
    if impl == "lax":
        spec = "NWC" if nd == 1 else "NHWC"
        return jax.lax.conv_general_dilated(
            x, kernel, (1,) * nd, "SAME",
            dimension_numbers=(spec, spec[1:-1] + "IO", spec),
            feature_group_count=x.shape[-1],
        )
    if all(k % 2 for k in kernel.shape[:nd]):
        return _depthwise_shifted(x, kernel)
    return _depthwise_taps(x, kernel)


def _depthwise_taps(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """The depthwise convolution as a sum of shifted copies of ``x`` times the taps."""
    nd = kernel.ndim - 2
    # One pad, then every tap a slice of it: XLA fuses the slices and the multiply-adds into
    # one loop. Padding each axis in turn (a pad of slices of a pad) materialised every tap:
    # 4-10x slower forward on a 2-core CPU (5x5 taps, 28x28x32 and 14x14x64, batch 128), same
    # numbers (benchmarks/image_step.py).
    taps_shape = kernel.shape[:nd]
    xp = _same_pad(x, taps_shape)
    weights = kernel.reshape(-1, kernel.shape[-1])
    out = None
    for i, offsets in enumerate(itertools.product(*(range(k) for k in taps_shape))):
        tap = jax.lax.slice(xp, (0, *offsets, 0),
                            (x.shape[0], *(o + n for o, n in zip(offsets, x.shape[1:-1])),
                             x.shape[-1]))
        out = tap * weights[i] if out is None else out + tap * weights[i]
    return out


def _same_pad(x: jax.Array, taps: tuple[int, ...]) -> jax.Array:
    """``x`` (``[batch, *spatial, channels]``) zero-padded for a "same" stride-1 window of odd
    ``taps``."""
    return jnp.pad(x, [(0, 0)] + [((k - 1) // 2,) * 2 for k in taps] + [(0, 0)])


@jax.custom_vjp
def _depthwise_shifted(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """:func:`_depthwise_taps` (odd taps) with a gradient computed as two convolutions.

    Differentiating the shifted sum gives, for ``x``, one padded cotangent per tap, and for the
    kernel, one reduction over batch and positions per tap: on a 2-core CPU (5x5 taps, batch
    128) 20 and 153 ms at 14x14x64 against 6 ms for the forward pass. Instead: ``dx`` is the
    same shifted sum of the cotangent with the kernel flipped, and ``dkernel`` one grouped
    convolution that contracts the batch (:func:`_depthwise_kernel_grad`): 4 and 29 ms there
    (``benchmarks/image_step.py``). The same sums, added in another order.
    """
    return _depthwise_taps(x, kernel)


def _depthwise_fwd(x: jax.Array, kernel: jax.Array) -> tuple[jax.Array, Any]:
    return _depthwise_taps(x, kernel), (x, kernel)


def _depthwise_bwd(res: Any, g: jax.Array) -> tuple[jax.Array, jax.Array]:
    x, kernel = res
    nd = kernel.ndim - 2
    flipped = kernel[(slice(None, None, -1),) * nd]
    dx = _depthwise_taps(g, flipped)
    return dx.astype(x.dtype), _depthwise_kernel_grad(x, g, kernel.shape[:nd]).astype(
        kernel.dtype)


_depthwise_shifted.defvjp(_depthwise_fwd, _depthwise_bwd)


def _depthwise_kernel_grad(x: jax.Array, g: jax.Array, taps: tuple[int, ...]) -> jax.Array:
    """``dk[o, c] = sum over b, p of xp[b, p + o, c] * g[b, p, c]`` (``xp``: ``x`` padded as in
    the forward pass), ``[*taps, 1, channels]``, as one convolution with a group per channel:
    the padded input ``[1, *spatial, channels x batch]``, the cotangent as a ``[*spatial, batch,
    channels]`` kernel, "valid", so the batch is the contracted feature axis."""
    nd, batch, channels = len(taps), x.shape[0], x.shape[-1]
    xp = _same_pad(x, taps)
    spatial = tuple(range(1, nd + 1))
    lhs = jnp.transpose(xp, (*spatial, nd + 1, 0)).reshape(1, *xp.shape[1:-1], channels * batch)
    rhs = jnp.transpose(g, (*spatial, 0, nd + 1))  # [*spatial, batch, channels]
    spec = "NWC" if nd == 1 else "NHWC"
    out = jax.lax.conv_general_dilated(
        lhs, rhs, (1,) * nd, "VALID", dimension_numbers=(spec, spec[1:-1] + "IO", spec),
        feature_group_count=channels,
    )
    return out.reshape(*taps, 1, channels)


def pool(x: jax.Array, size: int, kind: str) -> jax.Array:
    """A "same", stride-1 ``max`` or ``avg`` pool over every spatial axis (the average counts
    the zero padding, so it is a fixed linear map)."""
    fill = -jnp.inf if kind == "max" else 0.0
    for axis in range(1, x.ndim - 1):
        windows = _shifted(x, axis, size, fill)
        out = windows[0]
        for w in windows[1:]:
            out = jnp.maximum(out, w) if kind == "max" else out + w
        x = out
    if kind == "avg":
        x = x / float(size ** (x.ndim - 2))
    return x


def downsample(x: jax.Array) -> jax.Array:
    """A 2x max pool with stride 2 over every spatial axis (a trailing odd row is dropped):
    ``[b, 28, 28, c] -> [b, 14, 14, c]``. A reshape and a select, cheap under ``vmap``.

    Each axis keeps the larger of its two rows with one select (ties to the first, as PyTorch's
    and ``lax.reduce_window``'s max pools), so the gradient goes whole to the input the select
    chose. A ``max`` reduction's gradient instead divides by how many inputs equal the max, and
    compiled, XLA may recompute those inputs in the backward pass a rounding apart from the
    forward pass's (seen at its backend optimisation level 0, after a residual ``silu``): no input
    matched and the gradient was 0/0, NaN from the first step.
    """
    for axis in range(1, x.ndim - 1):
        n = x.shape[axis] // 2
        x = jax.lax.slice_in_dim(x, 0, 2 * n, axis=axis)
        pairs = x.reshape(x.shape[:axis] + (n, 2) + x.shape[axis + 1:])
        first = jax.lax.index_in_dim(pairs, 0, axis + 1, keepdims=False)
        second = jax.lax.index_in_dim(pairs, 1, axis + 1, keepdims=False)
        x = jnp.where(second > first, second, first)
    return x


def spatial_mean(x: jax.Array) -> jax.Array:
    """Global average pooling ``[batch, *spatial, c] -> [batch, c]``.

    Written as a contraction with a constant vector: XLA:CPU turns it into a dot, where a
    ``jnp.mean`` became a library reduce fusion that measured ~10x slower under ``vmap``.
    """
    flat = x.reshape(x.shape[0], -1, x.shape[-1])
    weights = jnp.full((flat.shape[1],), 1.0 / flat.shape[1], x.dtype)
    return jnp.einsum("bsc,s->bc", flat, weights)


NORMS = ("none", "layer")
"""Normalisations a layer may apply to its pre-activations: none, or a per-example layer norm
over every position and the real channels (stateless: no running statistics, so a population
trains, resumes and exports with parameters only)."""


def normalize(z: jax.Array, mask: Any = None, eps: float = 1e-5) -> jax.Array:
    """``z`` ``[batch, *spatial, C]`` standardised per example over its positions and channels
    (a layer norm without the affine part; the caller scales and shifts).

    ``mask`` ``float32[C]`` weights the channels the architecture really has (the padding of a
    supernet's bounded width gets 0; a relaxed mask, fractions): the statistics are those of the
    real channels only, so a masked supernet normalises exactly as the standalone layer of the
    real width. Channels outside the mask are not zeroed here. Reductions are contractions
    with constant vectors (dots on XLA:CPU, as :func:`spatial_mean`).
    """
    flat = z.reshape(z.shape[0], -1, z.shape[-1])
    m = jnp.ones((z.shape[-1],), z.dtype) if mask is None else jnp.asarray(mask, z.dtype)
    positions = jnp.ones((flat.shape[1],), z.dtype)
    count = flat.shape[1] * jnp.maximum(jnp.sum(m), 1e-6)
    mean = jnp.einsum("bsc,s,c->b", flat, positions, m) / count
    centred = flat - mean[:, None, None]
    var = jnp.einsum("bsc,s,c->b", centred * centred, positions, m) / count
    return (centred * jax.lax.rsqrt(var + eps)[:, None, None]).reshape(z.shape)


def fit_channels(x: jax.Array, channels: int) -> jax.Array:
    """Zero-pads or truncates the last axis of ``x`` to ``channels`` (static)."""
    have = x.shape[-1]
    if have >= channels:
        return x[..., :channels]
    return jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, channels - have)])


def centred_taps(size: int, max_size: int) -> jax.Array:
    """``float32[max_size]``: 1 on the centre ``size`` taps (``size`` may be traced; 0: none)."""
    offset = jnp.abs(jnp.arange(max_size) - (max_size - 1) // 2)
    return (2 * offset + 1 <= size).astype(jnp.float32)


def switch(index: jax.Array, branches: Sequence[Callable[..., Any]], *operands: Any) -> Any:
    """``lax.switch`` that calls a lone branch directly. Outside ``vmap`` (one architecture at a
    time) only the taken branch runs: the single-path one-shot programs rely on it.

    Each branch is rematerialised (``jax.checkpoint``): differentiating a ``switch`` otherwise
    saves the residuals of every branch (zeros for those not taken), a cost that grows with the
    number of branches (measured on the CPU: 4 layers of 16 conv branches, 16.6 ms a step
    against 4.9 ms rematerialised, 4.3 ms for the lone branch).
    """
    if len(branches) == 1:
        return branches[0](*operands)
    return jax.lax.switch(index, [jax.checkpoint(b) for b in branches], *operands)


def branch_conv_impl(impl: str) -> str:
    """The conv implementation inside a ``switch`` branch: ``auto`` runs ``im2col`` there (a
    ``lax`` conv inside an XLA:CPU conditional measured 5x slower than outside it; matmuls
    keep their speed)."""
    return "im2col" if impl == "auto" else impl


def table_index(table: Any, *indices: jax.Array) -> jax.Array:
    """``table[indices]`` of a host ``int`` table, as a traced scalar (branch lookups)."""
    return jnp.asarray(table, jnp.int32)[tuple(indices)]
