"""The ``conv`` encoding: a chain-structured (macro) CNN over 1-D sequences or 2-D images.

Network: a fixed stem (a k3 conv, ``input channels -> stem_width``, then ReLU), ``max_layers``
layers, global average pooling and a dense head. With the option ``norm="layer"`` every conv
(the stem's too) normalises its pre-activations per example over all positions and its real
channels, then scales and shifts them per channel, before the activation (a layer norm:
stateless, so a population trains and resumes with parameters only). With ``head="flatten"``
the head reads every position of the last feature map (a dense layer on the flattened map, as
the small CNNs of image benchmarks have) instead of its global average: position matters to
the class (a sleeve, a collar), at ``positions x channels x classes`` head weights.

Genes per layer ``i`` (in order): ``on_i``, ``op_i``, ``width_i``, ``activation_i``,
``residual_i``. An op maps ``C_in -> C_out``:

* ``convK`` (K in 1, 3, 5, 7, 9): a K (or KxK) conv with bias, then the activation;
* ``dwsepK`` (K in 3, 5, 7): a depthwise K conv on ``C_in`` (no bias), a pointwise
  ``C_in -> C_out`` conv with bias, then the activation;
* ``maxpool3`` / ``avgpool3`` (stride 1, "same") and ``identity`` keep ``C_in``: their width and
  activation genes are ignored.

With ``residual_i`` on, the layer's input, zero-padded or truncated to ``C_out``, is added to its
output. A layer that is off is skipped (``C_out = C_in``; its other genes are ignored). After
each layer listed in the option ``reductions`` a 2x max pool with stride 2 halves every spatial
size (fixed positions, as the reduction cells of NASNet: shapes never depend on the genome), so
deep layers of an image network run at a quarter or a sixteenth of the pixels.

Supernet at some :class:`ConvBounds`: per layer, only the op *kinds* in the bounds are computed
(conv, dwsep, maxpool, avgpool, keep), at the bounded width; all ``convK`` share one kernel of
the largest K in the bounds, the genome's K selecting its centre taps by a mask (all ``dwsepK``
likewise), so a masked layer runs one conv, not one per kernel size. Kinds are mixed by the
arch's one-hot only where the bounds hold more than one. All activations are computed and mixed
(elementwise, cheap next to the convs; it keeps activations out of the shape signature).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from evonas import checks
from evonas.genomes import _layers, _pruning
from evonas.genomes.space import GenomeSpace

# Op kinds in canonical order: what a supernet layer may compute. "keep" passes the input on
# (identity ops and layers that are off).
KINDS = ("conv", "dwsep", "maxpool", "avgpool", "keep")
_KIND_INDEX = {k: i for i, k in enumerate(KINDS)}
_OP_PATTERN = re.compile(r"^(conv|dwsep)(\d+)$")
_CONV_SIZES = (1, 3, 5, 7, 9)
_DWSEP_SIZES = (3, 5, 7)
_STEM_KERNEL = 3


def parse_op(op: str) -> tuple[str, int]:
    """``"conv5" -> ("conv", 5)``, ``"maxpool3" -> ("maxpool", 3)``, ``"identity" -> ("keep", 0)``.

    Raises:
        ValueError: naming the op and the allowed ones.
    """
    if op == "identity":
        return "keep", 0
    if op in ("maxpool3", "avgpool3"):
        return op[:-1], 3
    m = _OP_PATTERN.match(str(op))
    if m and int(m.group(2)) in (_CONV_SIZES if m.group(1) == "conv" else _DWSEP_SIZES):
        return m.group(1), int(m.group(2))
    allowed = [f"conv{k}" for k in _CONV_SIZES] + [f"dwsep{k}" for k in _DWSEP_SIZES]
    raise ValueError(
        f"ops contains {op!r}; allowed: {allowed + ['maxpool3', 'avgpool3', 'identity']}"
    )


class ConvArch(NamedTuple):
    """A decoded CNN architecture; fields are shaped for the largest network.

    Attributes:
        kind: ``float32[L, 5]``, one-hot over :data:`KINDS` (off layers: ``keep``).
        conv_taps: ``float32[L, Kc]``, 1 on the centre taps the layer's conv uses.
        dw_taps: ``float32[L, Kd]``, the same for the depthwise kernel.
        in_mask: ``float32[L, C]``, 1 on the layer's real input channels.
        out_mask: ``float32[L, C]``, 1 on its real output channels.
        activation: ``float32[L, A]``, one-hot (zeros for ops without an activation).
        residual: ``float32[L]``, 1 where the input is added to the output.
    """

    kind: jax.Array
    conv_taps: jax.Array
    dw_taps: jax.Array
    in_mask: jax.Array
    out_mask: jax.Array
    activation: jax.Array
    residual: jax.Array


@dataclasses.dataclass(frozen=True)
class ConvLayerBounds:
    """Static shapes of one supernet layer.

    Attributes:
        kinds: the op kinds computed, a subset of :data:`KINDS` in canonical order.
        conv_k: taps of the shared conv kernel (0: no conv).
        dw_k: taps of the shared depthwise kernel (0: no dwsep).
        width: output channels.
    """

    kinds: tuple[str, ...]
    conv_k: int
    dw_k: int
    width: int


@dataclasses.dataclass(frozen=True)
class ConvBounds:
    """Static shapes of a CNN supernet (one entry per layer); hashable."""

    layers: tuple[ConvLayerBounds, ...]


def _join_layer(a: ConvLayerBounds, b: ConvLayerBounds) -> ConvLayerBounds:
    kinds = tuple(k for k in KINDS if k in a.kinds or k in b.kinds)
    return ConvLayerBounds(
        kinds, max(a.conv_k, b.conv_k), max(a.dw_k, b.dw_k), max(a.width, b.width)
    )


class _LayerBody(nn.Module):
    """One supernet layer at static bounds; the arch selects, masks and mixes inside them."""

    bounds: ConvLayerBounds
    activations: tuple[str, ...]
    conv_impl: str
    norm: str = "none"

    @nn.compact
    def __call__(self, h: jax.Array, arch: ConvArch) -> jax.Array:
        b, nd = self.bounds, h.ndim - 2
        c_in, c_out = h.shape[-1], b.width
        in_real = jnp.sum(arch.in_mask)
        out_mask = arch.out_mask[:c_out]
        single = len(b.kinds) == 1  # every genome here uses this kind: no selector needed
        sel = lambda kind: 1.0 if single else arch.kind[_KIND_INDEX[kind]]

        pre = None  # pre-activations of the conv-like kinds, mixed before one activation
        if "conv" in b.kinds:
            taps = _tap_mask(arch.conv_taps, b.conv_k, nd)
            fan_in = jnp.sum(taps) * in_real
            kernel = self.param(
                "conv_kernel", _layers.lecun_normal(fan_in), (b.conv_k,) * nd + (c_in, c_out)
            )
            bias = self.param("conv_bias", nn.initializers.zeros_init(), (c_out,))
            z = _layers.conv(h, kernel * taps[..., None, None], self.conv_impl) + bias
            z = z if self.norm == "none" else _layers.normalize(z, out_mask)
            pre = z if single or "dwsep" not in b.kinds else sel("conv") * z
        if "dwsep" in b.kinds:
            taps = _tap_mask(arch.dw_taps, b.dw_k, nd)
            dw = self.param(
                "dw_kernel", _layers.lecun_normal(jnp.sum(taps)), (b.dw_k,) * nd + (1, c_in)
            )
            pw = self.param("pw_kernel", _layers.lecun_normal(in_real), (c_in, c_out))
            bias = self.param("pw_bias", nn.initializers.zeros_init(), (c_out,))
            z = _layers.depthwise_conv(h, dw * taps[..., None, None], self.conv_impl) @ pw + bias
            z = z if self.norm == "none" else _layers.normalize(z, out_mask)
            z = z if single or "conv" not in b.kinds else sel("dwsep") * z
            pre = z if pre is None else pre + z
        out = None
        if pre is not None and self.norm != "none":
            pre = _affine(self, pre, c_out)
        if pre is not None:
            active = 1.0 if single else sel("conv") * ("conv" in b.kinds) + sel("dwsep") * (
                "dwsep" in b.kinds)
            _layers.sow_codes(self, "pre", pre, out_mask * active)
            out = _layers.mix_activations(pre, arch.activation, self.activations)
        for kind in ("maxpool", "avgpool", "keep"):
            if kind in b.kinds:
                y = h if kind == "keep" else _layers.pool(h, 3, kind[:3])
                y = sel(kind) * _layers.fit_channels(y, c_out)
                out = y if out is None else out + y
        # Masks after the sum: conv-like outputs have bias beyond C_out, and a wider input
        # carried by "keep" or the residual has channels beyond C_out to drop.
        out = out + arch.residual * _layers.fit_channels(h, c_out)
        return out * out_mask


def _path_keep(kind: str, h: jax.Array, act: jax.Array) -> jax.Array:
    """A channel-keeping op of the single path (pools run per channel: zeros stay zeros)."""
    return h if kind == "keep" else _layers.pool(h, 3, kind[:3])


def _tap_mask(taps: jax.Array, size: int, nd: int) -> jax.Array:
    """The centre ``size`` of a tap mask, as a ``[size] * nd`` array (outer product in 2-D)."""
    start = (taps.shape[0] - size) // 2
    t = taps[start : start + size]
    return t if nd == 1 else t[:, None] * t[None, :]


class ConvSupernet(nn.Module):
    """The CNN at some bounds: ``apply(variables, arch, x) -> logits [batch, num_classes]``."""

    num_classes: int
    stem_width: int
    activations: tuple[str, ...]
    layers: tuple[ConvLayerBounds, ...]
    conv_impl: str = "auto"
    reductions: tuple[int, ...] = ()
    norm: str = "none"
    head: str = "gap"
    head_hidden: int = 0

    @nn.compact
    def __call__(self, arch: ConvArch, x: jax.Array) -> jax.Array:
        h = _stem(x, self.stem_width, self.conv_impl, self.norm)
        for i, lb in enumerate(self.layers):
            layer_arch = jax.tree.map(lambda a, i=i: a[i], arch)
            h = _LayerBody(lb, self.activations, self.conv_impl, self.norm,
                           name=f"layer_{i}")(h, layer_arch)
            if i in self.reductions:
                h = _layers.downsample(h)
        last_real = jnp.sum(arch.out_mask[-1])
        init = lambda positions: _layers.lecun_normal(last_real * positions)
        return _head(self, h, self.head, self.num_classes, init, self.head_hidden)


def _stem(x: jax.Array, width: int, impl: str, norm: str = "none") -> jax.Array:
    """The fixed stem, shared by the supernet and the standalone net (called inside a module)."""
    module = _StemConv(width, impl, norm, name="stem")
    return module(x)


HEADS = ("gap", "flatten")


def _head(module: nn.Module, h: jax.Array, kind: str, classes: int,
          init: Callable[[Any], Any], hidden: int = 0) -> jax.Array:
    """Logits from the last feature map ``h`` ``[batch, *spatial, C]``: ``gap`` averages the
    positions, then a ``[C, classes]`` kernel; ``flatten`` keeps them, a ``[positions, C,
    classes]`` kernel (the channel axis its own, so a narrower network's kernel is a prefix
    slice of a wider one's). ``init(fan_in scale)``: the kernel's initialiser for the number
    of inputs per channel (1, or the positions). ``hidden > 0``: first a dense layer of that
    many ReLU units (``head_hidden``, with the kernel just described), then a ``[hidden,
    classes]`` kernel."""
    bias = module.param("head_bias", nn.initializers.zeros_init(), (classes,))
    feats = _layers.spatial_mean(h) if kind == "gap" else h.reshape(h.shape[0], -1, h.shape[-1])
    if hidden:
        positions = 1 if kind == "gap" else feats.shape[1]
        feats = _HeadHidden(hidden, init(positions), name="head_hidden")(feats)
        kernel = module.param("head_kernel", nn.initializers.lecun_normal(), (hidden, classes))
        return feats @ kernel + bias
    if kind == "gap":
        kernel = module.param("head_kernel", init(1), (h.shape[-1], classes))
        return feats @ kernel + bias
    kernel = module.param("head_kernel", init(feats.shape[1]),
                          (feats.shape[1], feats.shape[2], classes))
    return jnp.einsum("bsc,sck->bk", feats, kernel) + bias


class _HeadHidden(nn.Module):
    """The head's hidden layer: ``relu(features . kernel + bias)`` over the features' trailing
    axes (``[C]``, or ``[positions, C]`` for a flattening head)."""

    units: int
    init: Callable[..., Any]

    @nn.compact
    def __call__(self, feats: jax.Array) -> jax.Array:
        kernel = self.param("kernel", self.init, (*feats.shape[1:], self.units))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.units,))
        return _hidden_units(feats, kernel, bias)


def _hidden_units(feats: jax.Array, kernel: jax.Array, bias: jax.Array) -> jax.Array:
    """``relu`` of ``feats`` ``[batch, *D]`` contracted with ``kernel`` ``[*D, units]``."""
    return nn.relu(jnp.tensordot(feats, kernel, feats.ndim - 1) + bias)


def _affine(module: nn.Module, z: jax.Array, channels: int) -> jax.Array:
    """The per-channel scale and shift after :func:`_layers.normalize` (parameters
    ``norm_scale`` and ``norm_offset``; ones and zeros at init, as a layer norm's)."""
    scale = module.param("norm_scale", nn.initializers.ones_init(), (channels,))
    offset = module.param("norm_offset", nn.initializers.zeros_init(), (channels,))
    return z * scale + offset


class _StemConv(nn.Module):
    width: int
    impl: str
    norm: str = "none"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        nd = x.ndim - 2
        shape = (_STEM_KERNEL,) * nd + (x.shape[-1], self.width)
        kernel = self.param("kernel", nn.initializers.lecun_normal(), shape)
        bias = self.param("bias", nn.initializers.zeros_init(), (self.width,))
        pre = _layers.conv(x, kernel, self.impl) + bias
        if self.norm != "none":
            pre = _affine(self, _layers.normalize(pre), self.width)
        _layers.sow_codes(self, "pre", pre)
        return nn.relu(pre)


class ConvNet(nn.Module):
    """The standalone CNN of one genome (no masks): ``apply(variables, x) -> logits``.

    ``layers`` holds, per active layer, ``(index, op, width, activation, residual)`` with the
    real output width (the input width for channel-keeping ops).
    """

    num_classes: int
    stem_width: int
    layers: tuple[tuple[int, str, int, str | None, bool], ...]
    conv_impl: str = "auto"
    reductions: tuple[int, ...] = ()
    norm: str = "none"
    head: str = "gap"
    head_hidden: int = 0

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h = _stem(x, self.stem_width, self.conv_impl, self.norm)
        pending = sorted(self.reductions)  # after layer r: before any layer of a larger index
        for index, op, width, act, residual in self.layers:
            while pending and pending[0] < index:
                h, pending = _layers.downsample(h), pending[1:]
            kind, k = parse_op(op)
            y = _ExactLayer(kind, k, width, act, self.conv_impl, self.norm,
                            name=f"layer_{index}")(h)
            if residual:
                y = y + _layers.fit_channels(h, width)
            h = y
        for _ in pending:
            h = _layers.downsample(h)
        init = lambda positions: (nn.initializers.lecun_normal() if positions == 1 else
                                  nn.initializers.lecun_normal(in_axis=(0, 1), out_axis=2))
        return _head(self, h, self.head, self.num_classes, init, self.head_hidden)


class _ExactLayer(nn.Module):
    """One layer of a standalone CNN: exactly one op at its real shape."""

    kind: str
    k: int
    width: int
    activation: str | None
    conv_impl: str
    norm: str = "none"

    @nn.compact
    def __call__(self, h: jax.Array) -> jax.Array:
        nd, c_in = h.ndim - 2, h.shape[-1]
        init = nn.initializers.lecun_normal()
        if self.kind == "conv":
            kernel = self.param("conv_kernel", init, (self.k,) * nd + (c_in, self.width))
            bias = self.param("conv_bias", nn.initializers.zeros_init(), (self.width,))
            z = _layers.conv(h, kernel, self.conv_impl) + bias
        elif self.kind == "dwsep":
            dw = self.param("dw_kernel", init, (self.k,) * nd + (1, c_in))
            pw = self.param("pw_kernel", init, (c_in, self.width))
            bias = self.param("pw_bias", nn.initializers.zeros_init(), (self.width,))
            z = _layers.depthwise_conv(h, dw, self.conv_impl) @ pw + bias
        elif self.kind == "keep":
            return h
        else:
            return _layers.pool(h, 3, self.kind[:3])
        if self.norm != "none":
            z = _affine(self, _layers.normalize(z), self.width)
        _layers.sow_codes(self, "pre", z)
        return _layers.ACTIVATIONS[self.activation](z)


@dataclasses.dataclass(frozen=True)
class ConvEncoding:
    """Chain-structured CNNs over 1-D sequences ``(length, channels)`` or 2-D images
    ``(height, width, channels)`` (see the module docstring).

    Args:
        input_shape: one example's shape, no batch axis; every spatial size must be at least the
            largest kernel of ``ops``.
        num_classes: number of logits.
        max_layers: number of layer slots (each can be switched off).
        widths: output-channel choices of the channel-changing ops.
        ops: op choices (``convK``, ``dwsepK``, ``maxpool3``, ``avgpool3``, ``identity``).
        activations: activation choices (keys of ``_layers.ACTIVATIONS``).
        stem_width: channels out of the fixed stem.
        conv_impl: how convs run (same numbers, different speed): ``"auto"`` (lax convs for
            dense kernels, shifted multiply-adds for depthwise ones: the fastest measured under
            ``vmap`` on CPU), ``"lax"`` (``lax.conv_general_dilated`` for both; try it on
            accelerators) or ``"im2col"`` (patches and einsum for dense kernels).
        reductions: layer indices after which a 2x max pool with stride 2 halves every
            spatial size (e.g. ``(1, 3)`` for 28x28 images: layers 2-3 at 14x14, the rest at
            7x7); ``()``: every layer at the input's resolution.
        norm: ``"none"`` or ``"layer"``: every conv (and the stem) normalises its
            pre-activations per example (:func:`_layers.normalize`), then scales and shifts
            them per channel; a fixed choice of the space, not a gene.
        head: ``"gap"`` (global average pooling, then a dense layer) or ``"flatten"`` (a
            dense layer on every position of the last feature map).
        head_hidden: units of a hidden dense layer (ReLU) between the pooled or flattened
            features and the logits, as in a hand-designed "conv, conv, dense, dense" CNN;
            0 (default): none. A fixed choice of the space, not a gene.

    Costs count parameters and multiply-accumulates (MACs) per example of the stem, the conv-like
    layers and the head; pools, masks and activations are not counted.
    """

    input_shape: tuple[int, ...] = (40, 1)
    num_classes: int = 10
    max_layers: int = 4
    widths: tuple[int, ...] = (16, 32, 48, 64)
    ops: tuple[str, ...] = (
        "conv3", "conv5", "conv7", "dwsep5", "maxpool3", "avgpool3", "identity",
    )
    activations: tuple[str, ...] = ("relu", "gelu", "silu")
    stem_width: int = 32
    conv_impl: str = "auto"
    reductions: tuple[int, ...] = ()
    norm: str = "none"
    head: str = "gap"
    head_hidden: int = 0

    name: ClassVar[str] = "conv"

    def __post_init__(self):
        ops = checks.choices("ConvEncoding.ops", self.ops)
        parsed = [parse_op(op) for op in ops]
        largest = max([k for _, k in parsed] + [_STEM_KERNEL])
        shape = checks.input_shape(self.input_shape, (1, 2, 3), "the conv encoding")
        if len(shape) == 1:
            raise ValueError(
                f"input_shape {shape} is a vector of features; the conv encoding takes sequences "
                "[length, channels] or images [height, width, channels]: search vectors (a CSV, "
                "tabular data) with encoding.name: mlp"
            )
        if min(shape[:-1]) < largest:
            raise ValueError(
                f"input_shape {shape} is too small for the conv encoding: every spatial size "
                f"must be >= {largest}, the largest kernel of ops {ops} and the stem"
            )
        checks.choice("ConvEncoding.conv_impl", self.conv_impl, _layers.CONV_IMPLS)
        checks.choice("ConvEncoding.norm", self.norm, _layers.NORMS)
        checks.choice("ConvEncoding.head", self.head, HEADS)
        fixed = {
            "input_shape": shape,
            "num_classes": checks.positive_int("ConvEncoding.num_classes", self.num_classes),
            "max_layers": checks.positive_int("ConvEncoding.max_layers", self.max_layers),
            "widths": checks.positive_ints("ConvEncoding.widths", self.widths),
            "ops": ops,
            "activations": checks.choices(
                "ConvEncoding.activations", self.activations, _layers.ACTIVATIONS
            ),
            "stem_width": checks.positive_int("ConvEncoding.stem_width", self.stem_width),
            "head_hidden": checks.integer("ConvEncoding.head_hidden", self.head_hidden, 0, 65536),
            "reductions": self._check_reductions(shape),
        }
        for field, value in fixed.items():
            object.__setattr__(self, field, value)  # frozen: normalise once, at construction

    def _check_reductions(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        try:
            chosen = tuple(sorted({int(r) for r in self.reductions}))
        except (TypeError, ValueError):
            chosen = (-1,)
        max_layers = int(self.max_layers)
        if any(r < 0 or r >= max_layers for r in chosen) or len(chosen) != len(
                tuple(self.reductions)):
            raise ValueError(f"ConvEncoding.reductions must be distinct layer indices in 0.."
                             f"{max_layers - 1}; got {list(self.reductions)}")
        if min(shape[:-1]) // 2 ** len(chosen) < 1:
            raise ValueError(f"ConvEncoding.reductions {list(chosen)} halve input_shape "
                             f"{shape} below one pixel; use at most "
                             f"{int(math.log2(min(shape[:-1])))} reductions")
        return chosen

    def areas(self) -> tuple[int, ...]:
        """The spatial size (pixels, or positions of a sequence) each layer runs at, and, last,
        the size the head pools."""
        sizes = list(self.input_shape[:-1])
        out = []
        for i in range(self.max_layers):
            out.append(math.prod(sizes))
            if i in self.reductions:
                sizes = [s // 2 for s in sizes]
        return (*out, math.prod(sizes))

    # -- genome space and static facts --------------------------------------------------------

    @functools.cached_property
    def space(self) -> GenomeSpace:
        genes: dict[str, Any] = {}
        for i in range(self.max_layers):
            genes[f"on_{i}"] = (False, True)
            genes[f"op_{i}"] = self.ops
            genes[f"width_{i}"] = self.widths
            genes[f"activation_{i}"] = self.activations
            genes[f"residual_{i}"] = (False, True)
        return GenomeSpace.from_genes(genes)

    @property
    def spatial_ndim(self) -> int:
        return len(self.input_shape) - 1

    @property
    def max_channels(self) -> int:
        """The widest tensor a layer can output (channel-keeping ops carry the stem's width)."""
        return max(self.stem_width, *self.widths)

    @functools.cached_property
    def _op_table(self) -> tuple[tuple[str, int], ...]:
        return tuple(parse_op(op) for op in self.ops)

    def _max_k(self, kind: str) -> int:
        """The largest kernel of ``kind`` among the ops (1 when there is none: a dummy axis)."""
        return max([k for c, k in self._op_table if c == kind] or [1])

    # -- decode (jit/vmap-able) ---------------------------------------------------------------

    def decode(self, genome: jax.Array) -> ConvArch:
        """The fixed-shape arch of ``int32[G]`` ``genome``; jit- and vmap-able: :meth:`relax`
        of its one-hot genes (one mechanism for architectures and their mixtures)."""
        g = jnp.asarray(genome, jnp.int32)
        return self.relax(jax.nn.one_hot(g, max(self.space.cardinalities)))

    def relax(self, weights: jax.Array) -> ConvArch:
        """The supernet's arch for ``weights`` ``float32[G, K]``, a distribution over each
        gene's choices (zeros beyond a gene's cardinality): per layer the kinds mix by the op
        weights (a layer off is ``keep``), kernels by their taps, widths by their channel
        masks (carried down the chain as the expected mask), activations by theirs.
        ``relax(one_hot(genome, K))`` is ``decode(genome)``; jit-able, differentiable in
        ``weights``."""
        w = jnp.asarray(weights, jnp.float32).reshape(self.max_layers, 5, -1)
        table = self._op_table
        n_ops = len(table)
        op_kind = jax.nn.one_hot(jnp.asarray([_KIND_INDEX[c] for c, _ in table]), len(KINDS))
        keep = jax.nn.one_hot(_KIND_INDEX["keep"], len(KINDS))

        def taps_of(kind: str) -> jax.Array:  # [n_ops, K]: each op's taps of ``kind``'s kernel
            return jnp.stack([_layers.centred_taps(k if c == kind else 0, self._max_k(kind))
                              for c, k in table])

        p_on = w[:, 0, 1]
        q = w[:, 1, :n_ops] * p_on[:, None]  # [L, ops]: the layer is on and runs this op
        kind = q @ op_kind + (1.0 - p_on)[:, None] * keep[None, :]
        convlike = kind[:, _KIND_INDEX["conv"]] + kind[:, _KIND_INDEX["dwsep"]]
        channels = jnp.arange(self.max_channels)
        masks = (channels[None, :] < jnp.asarray(self.widths)[:, None]).astype(jnp.float32)
        width = w[:, 2, :len(self.widths)] @ masks  # [L, C]
        real = (channels < self.stem_width).astype(jnp.float32)
        in_masks, out_masks = [], []
        for i in range(self.max_layers):
            in_masks.append(real)
            real = convlike[i] * width[i] + (1.0 - convlike[i]) * real
            out_masks.append(real)
        return ConvArch(
            kind=kind,
            conv_taps=q @ taps_of("conv"),
            dw_taps=q @ taps_of("dwsep"),
            in_mask=jnp.stack(in_masks),
            out_mask=jnp.stack(out_masks),
            activation=w[:, 3, :len(self.activations)] * convlike[:, None],
            residual=p_on * w[:, 4, 1],
        )

    def parameter_free(self, genome: jax.Array) -> jax.Array:
        """The share of layer slots that compute nothing with parameters (off, identity or a
        pool): what a collapsed differentiable search picks. jit-able."""
        kind = jnp.argmax(self.decode(genome).kind, axis=-1)
        convlike = (kind == _KIND_INDEX["conv"]) | (kind == _KIND_INDEX["dwsep"])
        return 1.0 - jnp.mean(convlike.astype(jnp.float32))

    # -- shapes (host side) -------------------------------------------------------------------

    def _layers_of(self, genome: Any) -> list[tuple[int, str, int, str | None, bool]]:
        """Active layers ``(index, op, width, activation, residual)``, inactive genes dropped."""
        g = self.space.validate(genome).reshape(self.max_layers, 5)
        out, channels = [], self.stem_width
        for i, (on, op, width, act, res) in enumerate(g.tolist()):
            if not on:
                continue
            kind, _ = parse_op(self.ops[op])
            convlike = kind in ("conv", "dwsep")
            channels = self.widths[width] if convlike else channels
            name = self.activations[act] if convlike else None
            out.append((i, self.ops[op], channels, name, bool(res)))
        return out

    def bounds(self, genome: Any) -> ConvBounds:
        """The exact shapes of ``genome``: per layer its op kind, kernel and output width."""
        active = {i: layer for i, *layer in self._layers_of(genome)}
        layers, channels = [], self.stem_width
        for i in range(self.max_layers):
            kind, k = parse_op(active[i][0]) if i in active else ("keep", 0)
            if kind in ("conv", "dwsep"):
                channels = active[i][1]
            layers.append(
                ConvLayerBounds(
                    (kind,), k if kind == "conv" else 0, k if kind == "dwsep" else 0, channels
                )
            )
        return ConvBounds(tuple(layers))

    def join(self, a: ConvBounds, b: ConvBounds) -> ConvBounds:
        """The smallest bounds holding ``a`` and ``b``: per layer the union of op kinds and the
        largest kernels and width."""
        return ConvBounds(tuple(_join_layer(x, y) for x, y in zip(a.layers, b.layers)))

    def max_bounds(self) -> ConvBounds:
        """Bounds that hold every genome: the fully masked supernet."""
        present = {c for c, _ in self._op_table} | {"keep"}  # any layer can be off
        kinds = tuple(k for k in KINDS if k in present)
        conv_k = self._max_k("conv") if "conv" in present else 0
        dw_k = self._max_k("dwsep") if "dwsep" in present else 0
        layer = ConvLayerBounds(kinds, conv_k, dw_k, self.max_channels)
        return ConvBounds((layer,) * self.max_layers)

    def _check_bounds(self, bounds: ConvBounds | None) -> ConvBounds:
        top = self.max_bounds()
        if bounds is None:
            return top
        if not isinstance(bounds, ConvBounds) or len(bounds.layers) != self.max_layers:
            raise ValueError(
                f"bounds must be ConvBounds of {self.max_layers} layers from this encoding; "
                f"got {bounds!r}"
            )
        if self.join(bounds, top) != top:
            raise ValueError(f"bounds {bounds} exceed the space, whose max bounds are {top}")
        return bounds

    # -- modules and parameters ---------------------------------------------------------------

    def supernet(self, bounds: ConvBounds | None = None) -> ConvSupernet:
        """The Flax module at ``bounds`` (``None``: the fully masked supernet)."""
        b = self._check_bounds(bounds)
        return ConvSupernet(
            self.num_classes, self.stem_width, self.activations, b.layers, self.conv_impl,
            self.reductions, self.norm, self.head, self.head_hidden,
        )

    def param_shapes(self, bounds: ConvBounds | None = None) -> dict[str, Any]:
        """The ``{"params": ...}`` shape tree of ``supernet(bounds)`` (``ShapeDtypeStruct``s)."""
        b = self._check_bounds(bounds)
        nd, s = self.spatial_ndim, lambda *shape: jax.ShapeDtypeStruct(shape, jnp.float32)
        c_in = self.input_shape[-1]
        normed = self.norm != "none"
        params: dict[str, Any] = {
            "stem": {
                "kernel": s(*(_STEM_KERNEL,) * nd, c_in, self.stem_width),
                "bias": s(self.stem_width),
            }
        }
        if normed:
            params["stem"].update(norm_scale=s(self.stem_width), norm_offset=s(self.stem_width))
        c_in = self.stem_width
        for i, lb in enumerate(b.layers):
            layer = {}
            if "conv" in lb.kinds:
                layer["conv_kernel"] = s(*(lb.conv_k,) * nd, c_in, lb.width)
                layer["conv_bias"] = s(lb.width)
            if "dwsep" in lb.kinds:
                layer["dw_kernel"] = s(*(lb.dw_k,) * nd, 1, c_in)
                layer["pw_kernel"] = s(c_in, lb.width)
                layer["pw_bias"] = s(lb.width)
            if layer and normed:
                layer.update(norm_scale=s(lb.width), norm_offset=s(lb.width))
            if layer:
                params[f"layer_{i}"] = layer
            c_in = lb.width
        if self.head_hidden:
            params["head_hidden"] = {
                "kernel": s(*self._head_positions(), c_in, self.head_hidden),
                "bias": s(self.head_hidden),
            }
            params["head_kernel"] = s(self.head_hidden, self.num_classes)
        else:
            params["head_kernel"] = s(*self._head_positions(), c_in, self.num_classes)
        params["head_bias"] = s(self.num_classes)
        return {"params": params}

    def slice_params(self, params: Any, bounds: ConvBounds | None) -> Any:
        """Max-bounds parameters (``{"params": ...}`` or the inner dict, any leading population
        axes) cut down statically to ``bounds``; smaller kernels keep their centre taps."""
        target = self.param_shapes(bounds)
        if "params" not in params:
            target = target["params"]
        nd = self.spatial_ndim
        centred = lambda path: nd if path[-1] in ("conv_kernel", "dw_kernel") else 0
        return _layers.slice_like(params, target, centred)

    def single_path(self, params: Any, genome: jax.Array, x: jax.Array) -> jax.Array:
        """Logits of one architecture computed on the max-bounds parameters along its own path
        only (the one-shot evaluator's forward pass; jit-able, ``genome`` traced).

        Each layer is a ``lax.switch`` over (op, real input width, output width): the taken
        branch slices the shared kernels statically (centre taps, channel prefixes) and runs
        the op at the architecture's own shape, so, outside ``vmap``, a step costs about the
        architecture's FLOPs. Tensors between layers carry ``max_channels`` channels, zero
        beyond the real ones. Computes what ``build(genome)`` computes on ``slice_params`` of
        the same parameters.
        """
        p = params.get("params", params)
        g = jnp.asarray(genome, jnp.int32).reshape(self.max_layers, 5)
        top = self.max_channels
        stem = p["stem"]
        h = self._path_norm(stem, _layers.conv(x, stem["kernel"], self.conv_impl) + stem["bias"])
        h = nn.relu(h)
        h = _layers.fit_channels(h, top)
        widths_in = sorted({self.stem_width, *self.widths})  # every real input width
        real = jnp.asarray(widths_in.index(self.stem_width))
        acts = [_layers.ACTIVATIONS[a] for a in self.activations]
        width_index = [widths_in.index(w) for w in self.widths]
        is_convlike = jnp.asarray([c in ("conv", "dwsep") for c, _ in self._op_table])
        channel = jnp.arange(top)
        for i in range(self.max_layers):
            on, op, width, act, residual = (g[i, j] for j in range(5))
            layer = p.get(f"layer_{i}", {})
            cins = [self.stem_width] if i == 0 else widths_in
            branches: list[Callable[..., jax.Array]] = [lambda h, a: h]  # 0: the layer is off
            table = np.zeros((len(self.ops), len(widths_in), len(self.widths)), np.int32)
            for j, (kind, k) in enumerate(self._op_table):
                if kind in ("conv", "dwsep"):
                    for cin in cins:
                        for co, cout in enumerate(self.widths):
                            table[j, widths_in.index(cin), co] = len(branches)
                            branches.append(functools.partial(
                                self._path_op, layer, kind, k, cin, cout, acts))
                else:
                    table[j] = len(branches)
                    branches.append(functools.partial(_path_keep, kind))
            branch = jnp.where(on == 1, _layers.table_index(table, op, real, width), 0)
            y = _layers.switch(branch, branches, h, act)
            convlike = (on == 1) & is_convlike[op]
            real = jnp.where(convlike, jnp.asarray(width_index)[width], real)
            c_out = jnp.asarray(widths_in)[real]
            add = (on == 1) & (residual == 1)
            h = y + jnp.where(add, 1.0, 0.0) * h * (channel < c_out)
            if i in self.reductions:
                h = _layers.downsample(h)
        feats = (_layers.spatial_mean(h) if self.head == "gap"
                 else h.reshape(h.shape[0], -1, h.shape[-1]))
        if self.head_hidden:
            hidden = p["head_hidden"]
            return _hidden_units(feats, hidden["kernel"], hidden["bias"]) @ p["head_kernel"] + (
                p["head_bias"])
        if self.head == "gap":
            return feats @ p["head_kernel"] + p["head_bias"]
        return jnp.einsum("bsc,sck->bk", feats, p["head_kernel"]) + p["head_bias"]

    def _path_op(self, layer: Any, kind: str, k: int, cin: int, cout: int,
                 acts: list[Callable[[jax.Array], jax.Array]], h: jax.Array,
                 act: jax.Array) -> jax.Array:
        """One conv-like op at its real shape, on sliced shared kernels, padded back."""
        nd = self.spatial_ndim
        hi = h[..., :cin]
        if kind == "conv":
            kernel = layer["conv_kernel"]
            s = (kernel.shape[0] - k) // 2
            kernel = kernel[(slice(s, s + k),) * nd + (slice(0, cin), slice(0, cout))]
            impl = _layers.branch_conv_impl(self.conv_impl)
            z = _layers.conv(hi, kernel, impl) + layer["conv_bias"][:cout]
        else:
            dw = layer["dw_kernel"]
            s = (dw.shape[0] - k) // 2
            dw = dw[(slice(s, s + k),) * nd + (slice(None), slice(0, cin))]
            z = (_layers.depthwise_conv(hi, dw, self.conv_impl) @ layer["pw_kernel"][:cin, :cout]
                 + layer["pw_bias"][:cout])
        z = self._path_norm(layer, z)
        return _layers.fit_channels(_layers.switch(act, acts, z), self.max_channels)

    def _path_norm(self, layer: Any, z: jax.Array) -> jax.Array:
        """The normalisation of a single-path op at its real width (nothing when off)."""
        if self.norm == "none":
            return z
        c = z.shape[-1]
        return (_layers.normalize(z) * layer["norm_scale"][:c] + layer["norm_offset"][:c])

    def build(self, genome: Any) -> tuple[ConvNet, Callable[[Any], Any]]:
        """The standalone module of ``genome`` and the map from max-bounds supernet variables to
        its variables (host side, for export)."""
        module = ConvNet(
            self.num_classes, self.stem_width, tuple(self._layers_of(genome)), self.conv_impl,
            self.reductions, self.norm, self.head, self.head_hidden,
        )
        bounds = self.bounds(genome)
        return module, lambda params: self.slice_params(params, bounds)

    def prune_channels(self, genome: Any, variables: Any, sparsity: float
                       ) -> tuple[np.ndarray, Any]:
        """Structured pruning: each conv or dwsep layer keeps its output channels with the
        largest incoming-weight norms, at widths of this space (``_pruning.shrink_genome``)
        whose parameters are at most ``1 - sparsity`` of ``genome``'s; the next layer (and the
        head) keep the matching input channels. The stem, pools and residual adds have nothing to
        cut (a residual's zero-padded or truncated input then lines up with other channels:
        fine-tuning, not the cut, restores the function). Returns the smaller genome and its
        standalone variables (``build(genome)``'s tree); host side."""
        genome = np.asarray(self.space.validate(genome))
        sparsity = _pruning.check_sparsity(sparsity)
        layers = self._layers_of(genome)
        width_genes = [5 * i + 2 for i, op, *_ in layers
                       if parse_op(op)[0] in ("conv", "dwsep")]
        smaller = _pruning.shrink_genome(self, genome, width_genes, sparsity)
        p = variables["params"]
        out = {"stem": jax.tree.map(np.asarray, dict(p["stem"]))}
        channels = np.arange(self.stem_width)
        for (i, op, *_), (_, _, width, *_) in zip(layers, self._layers_of(smaller), strict=True):
            kind, _ = parse_op(op)
            name = f"layer_{i}"
            if kind == "conv":
                kernel = np.asarray(p[name]["conv_kernel"])[..., channels, :]
                keep = _pruning.keep_largest(_pruning.unit_norms(kernel), width)
                out[name] = {"conv_kernel": kernel[..., keep],
                             "conv_bias": np.asarray(p[name]["conv_bias"])[keep]}
                out[name].update(_kept_norm(p[name], keep))
            elif kind == "dwsep":
                pointwise = np.asarray(p[name]["pw_kernel"])[channels]
                keep = _pruning.keep_largest(_pruning.unit_norms(pointwise), width)
                out[name] = {"dw_kernel": np.asarray(p[name]["dw_kernel"])[..., channels],
                             "pw_kernel": pointwise[:, keep],
                             "pw_bias": np.asarray(p[name]["pw_bias"])[keep]}
                out[name].update(_kept_norm(p[name], keep))
            else:
                continue  # pools and identities carry the channels through
            channels = keep
        if self.head_hidden:
            hidden = p["head_hidden"]
            out["head_hidden"] = {"kernel": np.asarray(hidden["kernel"])[..., channels, :],
                                  "bias": np.asarray(hidden["bias"])}
            out["head_kernel"] = np.asarray(p["head_kernel"])
        else:
            out["head_kernel"] = np.asarray(p["head_kernel"])[..., channels, :]
        out["head_bias"] = np.asarray(p["head_bias"])
        return smaller, {"params": out}

    # -- costs --------------------------------------------------------------------------------

    def cost(self, genome: jax.Array, bounds: ConvBounds | None = None) -> dict[str, jax.Array]:
        """Parameters and MACs per example, useful and executed at ``bounds``; jit-able.

        Counts are float32 (exact below 2**24, and they cannot overflow).
        """
        arch = self.decode(genome)
        nd, area = self.spatial_ndim, float(math.prod(self.input_shape[:-1]))
        layer_area = jnp.asarray(self.areas()[:-1], jnp.float32)
        c_in = jnp.sum(arch.in_mask, axis=1)
        c_out = jnp.sum(arch.out_mask, axis=1)
        is_conv, is_dw = arch.kind[:, _KIND_INDEX["conv"]], arch.kind[:, _KIND_INDEX["dwsep"]]
        conv_taps = jnp.sum(arch.conv_taps, axis=1) ** nd
        dw_taps = jnp.sum(arch.dw_taps, axis=1) ** nd
        conv_w = is_conv * conv_taps * c_in * c_out
        dw_w = is_dw * (dw_taps * c_in + c_in * c_out)
        stem_w, stem_b = self._stem_counts()
        head_w = self._head_weights(math.prod(self._head_positions()) * c_out[-1])
        weights = jnp.sum(conv_w + dw_w)
        per_channel = 3.0 if self.norm != "none" else 1.0  # bias (+ norm scale and offset)
        params = stem_w + stem_b + weights + per_channel * jnp.sum((is_conv + is_dw) * c_out)
        params = params + head_w + self.head_hidden + self.num_classes
        macs = area * stem_w + jnp.sum(layer_area * (conv_w + dw_w)) + head_w
        ex_params, ex_macs = self._count(self._check_bounds(bounds))
        f32 = lambda v: jnp.asarray(v, jnp.float32)
        return {
            "params": f32(params),
            "flops": f32(macs),
            # Layers that compute something (conv, depthwise-separable or pool; not "keep").
            "depth": f32(jnp.sum(1.0 - arch.kind[:, _KIND_INDEX["keep"]])),
            "executed_params": f32(ex_params),
            "executed_flops": f32(ex_macs),
        }

    def _head_positions(self) -> tuple[int, ...]:
        """``()`` for a pooled head; ``(positions,)`` of the last feature map for a flat one."""
        return () if self.head == "gap" else (self.areas()[-1],)

    def _stem_counts(self) -> tuple[int, int]:
        """(weights, per-channel parameters) of the stem."""
        nd = self.spatial_ndim
        per_channel = self.stem_width * (3 if self.norm != "none" else 1)
        return _STEM_KERNEL**nd * self.input_shape[-1] * self.stem_width, per_channel

    def _count(self, bounds: ConvBounds) -> tuple[int, int]:
        """Exact (params, MACs per example) of the module at ``bounds``, as Python ints."""
        nd, areas = self.spatial_ndim, self.areas()
        stem, biases = self._stem_counts()
        weights, macs = stem, areas[0] * stem
        c_in = self.stem_width
        for lb, area in zip(bounds.layers, areas):
            layer = 0
            if "conv" in lb.kinds:
                layer, biases = layer + lb.conv_k**nd * c_in * lb.width, biases + lb.width
            if "dwsep" in lb.kinds:
                layer += lb.dw_k**nd * c_in + c_in * lb.width
                biases += lb.width
            if self.norm != "none" and ("conv" in lb.kinds or "dwsep" in lb.kinds):
                biases += 2 * lb.width  # the norm's scale and offset, shared by both kinds
            weights, macs = weights + layer, macs + area * layer
            c_in = lb.width
        head = self._head_weights(math.prod(self._head_positions()) * c_in)
        return weights + biases + head + self.head_hidden + self.num_classes, macs + head

    def _head_weights(self, features: Any) -> Any:
        """The head's weights (= its MACs per example) on ``features`` inputs: features ->
        classes, or features -> hidden units -> classes."""
        if self.head_hidden:
            return (features + self.num_classes) * self.head_hidden
        return features * self.num_classes

    def describe(self, genome: Any) -> dict[str, Any]:
        """A readable, JSON-serialisable description (inactive genes are ignored)."""
        layers = [
            {"index": i, "op": op, "width": w, "activation": a, "residual": r}
            for i, op, w, a, r in self._layers_of(genome)
        ]
        params, macs = self._count(self.bounds(genome))
        return {
            "encoding": self.name,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "stem": {"op": f"conv{_STEM_KERNEL}", "width": self.stem_width, "activation": "relu"},
            **({"norm": self.norm} if self.norm != "none" else {}),
            **({"head": self.head} if self.head != "gap" else {}),
            **({"head_hidden": self.head_hidden} if self.head_hidden else {}),
            "layers": layers,
            "params": params,
            "flops": macs,
        }


def _kept_norm(layer: Any, keep: np.ndarray) -> dict[str, np.ndarray]:
    """A pruned layer's norm parameters at its kept channels (none without a norm)."""
    return {k: np.asarray(layer[k])[keep] for k in ("norm_scale", "norm_offset") if k in layer}
