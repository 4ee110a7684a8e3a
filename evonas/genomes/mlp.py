"""The ``mlp`` encoding: a stack of 1..``max_layers`` dense layers, each with its own width and
activation, on the flattened input, then a dense head.

Genes (in order): ``num_layers`` (choices ``1 .. max_layers``), then per layer ``width_i`` and
``activation_i``. Genes of layers beyond ``num_layers`` are ignored.

The supernet at some :class:`MLPBounds` holds one dense layer per bounded layer at the bounded
width; the decoded arch masks narrower widths, switches off layers beyond an individual's depth and
selects the activation by a one-hot (all the encoding's activations are computed and mixed: an
elementwise cost, small next to the matmuls, that keeps activations out of the shape signature).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from evonas import checks
from evonas.genomes import _layers, _pruning
from evonas.genomes.space import GenomeSpace


class MLPArch(NamedTuple):
    """A decoded MLP architecture; every field is shaped for the largest network.

    Attributes:
        layer_on: ``float32[L]``, 1 for layers ``< num_layers``.
        is_last: ``float32[L]``, one-hot of the last active layer (the one the head reads).
        width_mask: ``float32[L, max_width]``, 1 for the first ``width_i`` units of active layers.
        activation: ``float32[L, A]``, one-hot activation of active layers (zeros when off).
    """

    layer_on: jax.Array
    is_last: jax.Array
    width_mask: jax.Array
    activation: jax.Array


@dataclasses.dataclass(frozen=True)
class MLPBounds:
    """Static shapes of an MLP supernet: hashable, so it can key compiled-program caches.

    Attributes:
        widths: the width of each computed layer (their number is the deepest genome's depth).
        min_layers: the shallowest depth the module must serve; the head reads any of the layers
            ``min_layers - 1 ..``, so its input width is the largest of those.
    """

    widths: tuple[int, ...]
    min_layers: int

    @property
    def num_layers(self) -> int:
        return len(self.widths)

    @property
    def head_width(self) -> int:
        return max(self.widths[self.min_layers - 1 :])


class MLPSupernet(nn.Module):
    """The MLP at some bounds: ``apply(variables, arch, x) -> logits [batch, num_classes]``."""

    num_classes: int
    widths: tuple[int, ...]
    min_layers: int
    activations: tuple[str, ...]

    @nn.compact
    def __call__(self, arch: MLPArch, x: jax.Array) -> jax.Array:
        h = x.reshape(x.shape[0], -1)
        fan_in = jnp.asarray(h.shape[-1], jnp.float32)
        head_width = max(self.widths[self.min_layers - 1 :])
        final = None
        for i, width in enumerate(self.widths):
            z = _MaskedDense(width, name=f"dense_{i}")(h, fan_in)
            mask = arch.width_mask[i, :width]
            _layers.sow_codes(self, f"codes_{i}", z, mask)
            h = _layers.mix_activations(z, arch.activation[i], self.activations) * mask
            fan_in = jnp.sum(arch.width_mask[i])
            if i + 1 < self.min_layers:
                continue
            if self.min_layers == len(self.widths):
                final = h  # exact depth: the last layer is the only one the head can read
            else:
                padded = jnp.pad(h, ((0, 0), (0, head_width - width)))
                term = arch.is_last[i] * padded
                final = term if final is None else final + term
        head_fan_in = jnp.sum(arch.is_last[:, None] * arch.width_mask)
        return _MaskedDense(self.num_classes, name="head")(final, head_fan_in)


class _MaskedDense(nn.Module):
    """A dense layer whose kernel is initialised with the fan-in of its active slice."""

    features: int

    @nn.compact
    def __call__(self, x: jax.Array, fan_in: jax.Array) -> jax.Array:
        """``fan_in``: the real fan-in decoded from the arch (traced), used only by ``init``."""
        kernel = self.param("kernel", _layers.lecun_normal(fan_in), (x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        return x @ kernel + bias


class MLPNet(nn.Module):
    """The standalone MLP of one genome (no masks): ``apply(variables, x) -> logits``."""

    num_classes: int
    widths: tuple[int, ...]
    activations: tuple[str, ...]  # one per layer

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h = x.reshape(x.shape[0], -1)
        for i, (width, act) in enumerate(zip(self.widths, self.activations)):
            z = nn.Dense(width, name=f"dense_{i}")(h)
            _layers.sow_codes(self, f"codes_{i}", z)
            h = _layers.ACTIVATIONS[act](z)
        return nn.Dense(self.num_classes, name="head")(h)


@dataclasses.dataclass(frozen=True)
class MLPEncoding:
    """Multi-layer perceptrons of 1..``max_layers`` dense layers (see the module docstring).

    Args:
        input_shape: one example's shape, no batch axis (flattened by the network).
        num_classes: number of logits.
        max_layers: the deepest network.
        widths: the width choices of every layer.
        activations: the activation choices of every layer (keys of ``_layers.ACTIVATIONS``).

    Costs count parameters and multiply-accumulates (MACs) of the dense layers per example.
    """

    input_shape: tuple[int, ...] = (40,)
    num_classes: int = 10
    max_layers: int = 4
    widths: tuple[int, ...] = (32, 64, 128, 256)
    activations: tuple[str, ...] = ("relu", "gelu", "tanh")

    name: ClassVar[str] = "mlp"

    def __post_init__(self):
        shape = checks.input_shape(self.input_shape, (1, 2, 3, 4), "the mlp encoding")
        fixed = {
            "input_shape": shape,
            "num_classes": checks.positive_int("MLPEncoding.num_classes", self.num_classes),
            "max_layers": checks.positive_int("MLPEncoding.max_layers", self.max_layers),
            "widths": checks.positive_ints("MLPEncoding.widths", self.widths),
            "activations": checks.choices(
                "MLPEncoding.activations", self.activations, _layers.ACTIVATIONS
            ),
        }
        for field, value in fixed.items():
            object.__setattr__(self, field, value)  # frozen: normalise once, at construction

    # -- genome space ----------------------------------------------------------------------

    @functools.cached_property
    def space(self) -> GenomeSpace:
        genes: dict[str, Any] = {"num_layers": tuple(range(1, self.max_layers + 1))}
        for i in range(self.max_layers):
            genes[f"width_{i}"] = self.widths
            genes[f"activation_{i}"] = self.activations
        return GenomeSpace.from_genes(genes)

    @property
    def in_features(self) -> int:
        return math.prod(self.input_shape)

    @property
    def max_width(self) -> int:
        return max(self.widths)

    # -- decode (jit/vmap-able) ------------------------------------------------------------

    def decode(self, genome: jax.Array) -> MLPArch:
        """The fixed-shape arch of ``int32[G]`` ``genome``; jit- and vmap-able: :meth:`relax`
        of its one-hot genes (one mechanism for architectures and their mixtures)."""
        g = jnp.asarray(genome, jnp.int32)
        return self.relax(jax.nn.one_hot(g, max(self.space.cardinalities)))

    def relax(self, weights: jax.Array) -> MLPArch:
        """The supernet's arch for ``weights`` ``float32[G, K]``, a distribution over each
        gene's choices (zeros beyond a gene's cardinality): a layer is on with the probability
        that the depth reaches it, its width mask mixes the widths' masks, its activation mixes
        the activations. ``relax(one_hot(genome, K))`` is ``decode(genome)``; jit-able,
        differentiable in ``weights``."""
        w = jnp.asarray(weights, jnp.float32)
        n, a = self.max_layers, len(self.activations)
        depth = w[0, :n]  # depth index d: layers 0 .. d
        on = jnp.cumsum(depth[::-1])[::-1]  # P(depth index >= l)
        is_last = depth
        masks = (jnp.arange(self.max_width)[None, :]
                 < jnp.asarray(self.widths)[:, None]).astype(jnp.float32)  # [W, max_width]
        width_mask = w[1::2][:n, :len(self.widths)] @ masks
        act = w[2::2][:n, :a]
        return MLPArch(on, is_last, width_mask * on[:, None], act * on[:, None])

    def parameter_free(self, genome: jax.Array) -> jax.Array:
        """Every layer of an MLP has parameters: 0. jit-able."""
        return jnp.zeros((), jnp.float32)

    # -- shapes (host side) ----------------------------------------------------------------

    def _genes(self, genome: Any) -> tuple[tuple[int, ...], tuple[str, ...]]:
        """Active widths and activation names of one genome (host side, validated)."""
        g = self.space.validate(genome)
        depth = int(g[0]) + 1
        widths = tuple(self.widths[int(g[1 + 2 * i])] for i in range(depth))
        acts = tuple(self.activations[int(g[2 + 2 * i])] for i in range(depth))
        return widths, acts

    def bounds(self, genome: Any) -> MLPBounds:
        """The exact shapes of ``genome``: its active widths (inactive genes dropped)."""
        widths, _ = self._genes(genome)
        return MLPBounds(widths, len(widths))

    def join(self, a: MLPBounds, b: MLPBounds) -> MLPBounds:
        """The smallest bounds holding ``a`` and ``b``: per-layer max widths, min of depths."""
        n = max(a.num_layers, b.num_layers)
        pad = lambda w: w + (0,) * (n - len(w))
        widths = tuple(max(x, y) for x, y in zip(pad(a.widths), pad(b.widths)))
        return MLPBounds(widths, min(a.min_layers, b.min_layers))

    def max_bounds(self) -> MLPBounds:
        """Bounds that hold every genome: the fully masked supernet."""
        return MLPBounds((self.max_width,) * self.max_layers, 1)

    def _check_bounds(self, bounds: MLPBounds | None) -> MLPBounds:
        if bounds is None:
            return self.max_bounds()
        if not isinstance(bounds, MLPBounds) or not 1 <= bounds.min_layers <= bounds.num_layers:
            raise ValueError(f"bounds must be MLPBounds from this encoding; got {bounds!r}")
        if bounds.num_layers > self.max_layers or max(bounds.widths) > self.max_width:
            raise ValueError(
                f"bounds {bounds} exceed the space: at most {self.max_layers} layers of width "
                f"<= {self.max_width}"
            )
        return bounds

    # -- modules and parameters ------------------------------------------------------------

    def supernet(self, bounds: MLPBounds | None = None) -> MLPSupernet:
        """The Flax module at ``bounds`` (``None``: the fully masked supernet)."""
        b = self._check_bounds(bounds)
        return MLPSupernet(self.num_classes, b.widths, b.min_layers, self.activations)

    def param_shapes(self, bounds: MLPBounds | None = None) -> dict[str, Any]:
        """The ``{"params": ...}`` shape tree of ``supernet(bounds)`` (``ShapeDtypeStruct``s)."""
        b = self._check_bounds(bounds)
        params: dict[str, Any] = {}
        fan_in = self.in_features
        for i, w in enumerate(b.widths):
            params[f"dense_{i}"] = _dense_shapes(fan_in, w)
            fan_in = w
        params["head"] = _dense_shapes(b.head_width, self.num_classes)
        return {"params": params}

    def slice_params(self, params: Any, bounds: MLPBounds | None) -> Any:
        """Max-bounds parameters (``{"params": ...}`` or the inner dict, any leading population
        axes) cut down statically to ``bounds``."""
        target = self.param_shapes(bounds)
        if "params" not in params:
            target = target["params"]
        return _layers.slice_like(params, target)

    def single_path(self, params: Any, genome: jax.Array, x: jax.Array) -> jax.Array:
        """Logits of one architecture computed on the max-bounds parameters along its own path
        only (the one-shot evaluator's forward pass; jit-able, ``genome`` traced).

        Each layer is a ``lax.switch`` over (input width, output width) whose taken branch
        multiplies by the kernel's static prefix slice; layers past the depth are skipped, so,
        outside ``vmap``, a step costs about the architecture's own FLOPs. Computes what
        ``build(genome)`` computes on ``slice_params`` of the same parameters.
        """
        p = params.get("params", params)
        g = jnp.asarray(genome, jnp.int32)
        depth = g[0] + 1
        acts = [_layers.ACTIVATIONS[a] for a in self.activations]
        h = x.reshape(x.shape[0], -1)
        real = jnp.asarray(0)  # index of the real input width in `cins` (the input: 0)
        for i in range(self.max_layers):
            dense = p[f"dense_{i}"]
            cins = [self.in_features] if i == 0 else list(self.widths)
            branches = [] if i == 0 else [lambda h, a: h]  # a layer past the depth is skipped
            table = np.zeros((len(cins), len(self.widths)), np.int32)
            for ci, cin in enumerate(cins):
                for co, cout in enumerate(self.widths):
                    table[ci, co] = len(branches)
                    branches.append(functools.partial(_path_dense, dense, cin, cout, acts,
                                                      self.max_width))
            width = g[1 + 2 * i]
            branch = _layers.table_index(table, real, width)
            on = i < depth
            branch = branch if i == 0 else jnp.where(on, branch, 0)
            h = _layers.switch(branch, branches, h, g[2 + 2 * i])
            real = width if i == 0 else jnp.where(on, width, real)
        return h @ p["head"]["kernel"] + p["head"]["bias"]

    def build(self, genome: Any) -> tuple[MLPNet, Callable[[Any], Any]]:
        """The standalone module of ``genome`` and the map from max-bounds supernet variables to
        its variables (host side, for export)."""
        widths, acts = self._genes(genome)
        module = MLPNet(self.num_classes, widths, acts)
        bounds = MLPBounds(widths, len(widths))
        return module, lambda params: self.slice_params(params, bounds)

    def prune_channels(self, genome: Any, variables: Any, sparsity: float
                       ) -> tuple[np.ndarray, Any]:
        """Structured pruning: each layer keeps its units with the largest incoming-weight
        norms, at widths of this space (``_pruning.shrink_genome``) whose parameters are at most
        ``1 - sparsity`` of ``genome``'s. Returns the smaller genome and its standalone
        variables (``build(genome)``'s tree), cut from ``variables``; host side."""
        genome = np.asarray(self.space.validate(genome))
        sparsity = _pruning.check_sparsity(sparsity)
        depth = int(genome[0]) + 1
        smaller = _pruning.shrink_genome(self, genome, [1 + 2 * i for i in range(depth)],
                                         sparsity)
        p = variables["params"]
        out, inputs = {}, np.arange(self.in_features)
        for i in range(depth):
            kernel = np.asarray(p[f"dense_{i}"]["kernel"])[inputs]
            keep = _pruning.keep_largest(_pruning.unit_norms(kernel),
                                         self.widths[smaller[1 + 2 * i]])
            out[f"dense_{i}"] = {"kernel": kernel[:, keep],
                                 "bias": np.asarray(p[f"dense_{i}"]["bias"])[keep]}
            inputs = keep
        out["head"] = {"kernel": np.asarray(p["head"]["kernel"])[inputs],
                       "bias": np.asarray(p["head"]["bias"])}
        return smaller, {"params": out}

    # -- costs -----------------------------------------------------------------------------

    def cost(self, genome: jax.Array, bounds: MLPBounds | None = None) -> dict[str, jax.Array]:
        """Parameters and MACs per example, useful and executed at ``bounds``; jit-able.

        Counts are float32 (exact below 2**24, and they cannot overflow).
        """
        arch = self.decode(genome)
        width = jnp.sum(arch.width_mask, axis=1)  # 0 for inactive layers
        fan_in = jnp.concatenate([jnp.asarray([float(self.in_features)]), width[:-1]])
        macs = jnp.sum(fan_in * width) + jnp.sum(arch.is_last * width) * self.num_classes
        params = macs + jnp.sum(width) + self.num_classes
        ex_params, ex_macs = self._count(self._check_bounds(bounds))
        f32 = lambda v: jnp.asarray(v, jnp.float32)
        return {
            "params": params,
            "flops": macs,
            "depth": jnp.sum(arch.layer_on),  # active hidden layers
            "executed_params": f32(ex_params),
            "executed_flops": f32(ex_macs),
        }

    def _count(self, bounds: MLPBounds) -> tuple[int, int]:
        """Exact (params, MACs per example) of the module at ``bounds``, as Python ints."""
        macs, biases, fan_in = 0, 0, self.in_features
        for w in bounds.widths:
            macs, biases, fan_in = macs + fan_in * w, biases + w, w
        macs += bounds.head_width * self.num_classes
        return macs + biases + self.num_classes, macs

    def describe(self, genome: Any) -> dict[str, Any]:
        """A readable, JSON-serialisable description (inactive layers' genes are ignored)."""
        widths, acts = self._genes(genome)
        params, macs = self._count(MLPBounds(widths, len(widths)))
        layers = [
            {"op": "dense", "width": w, "activation": a} for w, a in zip(widths, acts)
        ]
        return {
            "encoding": self.name,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "layers": layers,
            "params": params,
            "flops": macs,
        }


def _path_dense(dense: Any, cin: int, cout: int, acts: list[Callable[[jax.Array], jax.Array]],
                top: int, h: jax.Array, act: jax.Array) -> jax.Array:
    """One dense layer of the single path at its real shape, padded back to ``top`` units."""
    z = h[:, :cin] @ dense["kernel"][:cin, :cout] + dense["bias"][:cout]
    return _layers.fit_channels(_layers.switch(act, acts, z), top)


def _dense_shapes(fan_in: int, features: int) -> dict[str, jax.ShapeDtypeStruct]:
    return {
        "kernel": jax.ShapeDtypeStruct((fan_in, features), jnp.float32),
        "bias": jax.ShapeDtypeStruct((features,), jnp.float32),
    }

