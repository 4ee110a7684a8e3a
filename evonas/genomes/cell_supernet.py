"""Flax modules of the NAS-Bench-201 network: the one-hot-mixed supernet and the exact build.

The macro network of Dong & Yang, "NAS-Bench-201" (ICLR 2020): a 3x3 stem conv + BN, three
stages of cells with ``C, 2C, 4C`` channels joined by ResNet basic blocks with stride 2, then
BN + ReLU, global average pooling and a linear classifier. Inputs are NHWC images.

Normalisation uses batch statistics only, in training and evaluation alike, as NAS-Bench-201's
search models do (``track_running_stats=False``): the models carry no mutable state, so a
population's variables are just its parameters.

Both modules build their layers through :func:`_network` with the same names, so the standalone
module's parameters are a subset of the supernet's and its initial values are the supernet's
(``init`` with one key gives the same numbers; every op's shape is its real shape).
"""

from __future__ import annotations

import functools
import operator
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from evonas.genomes import _layers


class CellArch(NamedTuple):
    """A decoded cell: ``ops`` is ``float32[6, 5]``, the one-hot op of every edge."""

    ops: jax.Array


class _BatchStatNorm(nn.Module):
    """BatchNorm with batch statistics only (no running averages), affine scale and bias."""

    epsilon: float = 1e-5  # PyTorch's default, which the benchmark was trained with

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        scale = self.param("scale", nn.initializers.ones_init(), (x.shape[-1],))
        bias = self.param("bias", nn.initializers.zeros_init(), (x.shape[-1],))
        axes = tuple(range(x.ndim - 1))
        mean = jnp.mean(x, axes)
        var = jnp.mean(jnp.square(x - mean), axes)
        return (x - mean) * jax.lax.rsqrt(var + self.epsilon) * scale + bias


class _ReLUConvBN(nn.Module):
    """ReLU, conv without bias, BN: NAS-Bench-201's ``nor_conv_kxk`` and its block convs."""

    features: int
    kernel: int
    stride: int = 1

    weight: Any = 1.0  # how much of this op the arch selects: the mask of its units' codes

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        _layers.sow_codes(self, "relu", x, self.weight)
        pad = self.kernel // 2  # PyTorch-style symmetric padding (SAME pads stride 2 unevenly)
        y = nn.Conv(
            self.features,
            (self.kernel, self.kernel),
            strides=(self.stride, self.stride),
            padding=((pad, pad), (pad, pad)),
            use_bias=False,
            name="conv",
        )(nn.relu(x))
        return _BatchStatNorm(name="bn")(y)


class _ResBlock(nn.Module):
    """The reduction block between stages: a ResNet basic block with stride 2."""

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        y = _ReLUConvBN(self.features, 3, 2, name="conv_a")(x)
        y = _ReLUConvBN(self.features, 3, 1, name="conv_b")(y)
        shortcut = nn.avg_pool(x, (2, 2), strides=(2, 2))
        shortcut = nn.Conv(self.features, (1, 1), use_bias=False, name="shortcut")(shortcut)
        return shortcut + y


def _avg_pool_3x3(x: jax.Array) -> jax.Array:
    # count_include_pad=False, as NAS-Bench-201's AvgPool2d(3, 1, 1, count_include_pad=False).
    return nn.avg_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)), count_include_pad=False)


class _Cell(nn.Module):
    """One cell: node ``t`` sums the ops on its in-edges; the output is the last node.

    Attributes:
        edges: ``(to, from)`` of every edge.
        edge_ops: per edge, the op indices computed (``()``: the edge is absent).
        op_names: the names of the op indices (NAS-Bench-201's order).
    """

    edges: tuple[tuple[int, int], ...]
    edge_ops: tuple[tuple[int, ...], ...]
    op_names: tuple[str, ...]

    @nn.compact
    def __call__(self, x: jax.Array, weights: jax.Array | None) -> jax.Array:
        """``weights``: ``float32[E, num_ops]`` mixing the ops of every edge (``None``: sum)."""
        nodes = [x]
        for node in range(1, max(t for t, _ in self.edges) + 1):
            terms = []
            for e, (t, f) in enumerate(self.edges):
                if t != node:
                    continue
                for op in self.edge_ops[e]:
                    weight = 1.0 if weights is None else weights[e, op]
                    y = self._op(self.op_names[op], nodes[f], f"edge_{t}_{f}_{self.op_names[op]}",
                                 weight)
                    if y is not None:
                        terms.append(y if weights is None else weights[e, op] * y)
            # A node without inputs is zero, as in NAS-Bench-201's InferCell.
            nodes.append(functools.reduce(operator.add, terms) if terms else jnp.zeros_like(x))
        return nodes[-1]

    @staticmethod
    def _op(name: str, x: jax.Array, module_name: str, weight: Any) -> jax.Array | None:
        if name == "none":
            return None
        if name == "skip_connect":
            return x
        if name == "avg_pool_3x3":
            return _avg_pool_3x3(x)
        kernel = {"nor_conv_1x1": 1, "nor_conv_3x3": 3}[name]
        return _ReLUConvBN(x.shape[-1], kernel, weight=weight, name=module_name)(x)


def _network(
    x: jax.Array,
    weights: jax.Array | None,
    *,
    num_classes: int,
    channels: int,
    cells_per_stage: int,
    edges: tuple[tuple[int, int], ...],
    edge_ops: tuple[tuple[int, ...], ...],
    op_names: tuple[str, ...],
) -> jax.Array:
    """The whole network; called inside a compact ``__call__``, whose module owns the layers."""
    h = nn.Conv(channels, (3, 3), padding=((1, 1), (1, 1)), use_bias=False, name="stem_conv")(x)
    h = _BatchStatNorm(name="stem_bn")(h)
    for stage in range(3):
        if stage:
            h = _ResBlock(channels * 2**stage, name=f"reduce_{stage}")(h)
        for i in range(cells_per_stage):
            cell = _Cell(edges, edge_ops, op_names, name=f"stage_{stage}_cell_{i}")
            h = cell(h, weights)
    h = nn.relu(_BatchStatNorm(name="last_bn")(h))
    return nn.Dense(num_classes, name="classifier")(jnp.mean(h, axis=(1, 2)))


class CellSupernet(nn.Module):
    """The network at some bounds: ``apply(variables, arch, x) -> logits [batch, num_classes]``.

    Every edge computes the ops its bounds list and mixes them with ``arch.ops`` (one-hot), so
    the module computes exactly the architecture the arch selects.
    """

    num_classes: int
    channels: int
    cells_per_stage: int
    edges: tuple[tuple[int, int], ...]
    edge_ops: tuple[tuple[int, ...], ...]
    op_names: tuple[str, ...]

    @nn.compact
    def __call__(self, arch: CellArch, x: jax.Array) -> jax.Array:
        return _network(x, arch.ops, **_fields(self))


class CellNet(nn.Module):
    """The standalone network of one genome (no mixing): ``apply(variables, x) -> logits``."""

    num_classes: int
    channels: int
    cells_per_stage: int
    edges: tuple[tuple[int, int], ...]
    edge_ops: tuple[tuple[int, ...], ...]  # one op per edge, or () for a "none" edge
    op_names: tuple[str, ...]

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return _network(x, None, **_fields(self))


def _fields(module: CellSupernet | CellNet) -> dict:
    names = ("num_classes", "channels", "cells_per_stage", "edges", "edge_ops", "op_names")
    return {n: getattr(module, n) for n in names}


# -- the single path (one-shot): the same network as plain functions of the parameters ---------


def _conv_fn(x: jax.Array, kernel: jax.Array, stride: int = 1) -> jax.Array:
    """``nn.Conv(..., use_bias=False)`` with PyTorch-style symmetric padding, as a function."""
    pad = kernel.shape[0] // 2
    return jax.lax.conv_general_dilated(x, kernel, (stride, stride), ((pad, pad), (pad, pad)),
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _norm_fn(x: jax.Array, p: Any, epsilon: float = 1e-5) -> jax.Array:
    axes = tuple(range(x.ndim - 1))
    mean = jnp.mean(x, axes)
    var = jnp.mean(jnp.square(x - mean), axes)
    return (x - mean) * jax.lax.rsqrt(var + epsilon) * p["scale"] + p["bias"]


def _relu_conv_bn_fn(x: jax.Array, p: Any, stride: int = 1, branch: bool = False) -> jax.Array:
    """``_ReLUConvBN`` as a function; ``branch``: inside a ``switch`` branch, where a stride-1
    "same" conv runs as im2col (see ``_layers.branch_conv_impl``)."""
    kernel = p["conv"]["kernel"]
    if branch and stride == 1:
        y = _layers.conv(nn.relu(x), kernel, _layers.branch_conv_impl("auto"))
    else:
        y = _conv_fn(nn.relu(x), kernel, stride)
    return _norm_fn(y, p["bn"])


def single_path_network(params: Any, ops: jax.Array, x: jax.Array, *, cells_per_stage: int,
                        edges: tuple[tuple[int, int], ...], op_names: tuple[str, ...]
                        ) -> jax.Array:
    """The network of the op indices ``ops`` (``int32[E]``, traced) on the max-bounds
    parameters: every edge is a ``lax.switch`` over its ops, so only the chosen one runs
    (outside ``vmap``). Normalisation uses the batch's statistics, as in training: each
    architecture is normalised by its own activations' statistics (no running averages to
    recalibrate). Computes what :class:`CellNet` computes on the same parameters."""
    p = params.get("params", params)
    h = _norm_fn(_conv_fn(x, p["stem_conv"]["kernel"]), p["stem_bn"])
    for stage in range(3):
        if stage:
            block = p[f"reduce_{stage}"]
            y = _relu_conv_bn_fn(h, block["conv_a"], 2)
            y = _relu_conv_bn_fn(y, block["conv_b"])
            shortcut = nn.avg_pool(h, (2, 2), strides=(2, 2))
            h = _conv_fn(shortcut, block["shortcut"]["kernel"]) + y
        for i in range(cells_per_stage):
            cell = p[f"stage_{stage}_cell_{i}"]
            nodes = [h]
            for node in range(1, max(t for t, _ in edges) + 1):
                total = jnp.zeros_like(h)
                for e, (t, f) in enumerate(edges):
                    if t != node:
                        continue
                    branches = [functools.partial(_edge_op, name, cell.get(
                        f"edge_{t}_{f}_{name}")) for name in op_names]
                    total = total + _layers.switch(ops[e], branches, nodes[f])
                nodes.append(total)
            h = nodes[-1]
    h = nn.relu(_norm_fn(h, p["last_bn"]))
    pooled = jnp.mean(h, axis=(1, 2))
    return pooled @ p["classifier"]["kernel"] + p["classifier"]["bias"]


def _edge_op(name: str, p: Any, x: jax.Array) -> jax.Array:
    if name == "none":
        return jnp.zeros_like(x)
    if name == "skip_connect":
        return x
    if name == "avg_pool_3x3":
        return _avg_pool_3x3(x)
    return _relu_conv_bn_fn(x, p, branch=True)
