"""A trainable plug-in encoding: dense layers whose units are ReLU or gated linear units (GLU).

Not one of evonas's built-ins: a search space a user would write for their own data. Each of
``depth`` layers has a width and a unit type; a GLU layer computes ``(x W + b) * sigmoid(x V + c)``
(Dauphin et al. 2017, "Language Modeling with Gated Convolutional Networks"), a ReLU layer
``relu(x W + b)``. Everything the population trainer needs is here: ``decode`` to a fixed-shape
arch, ``bounds`` / ``join`` / ``max_bounds``, ``supernet(bounds)``, ``slice_params`` and the
standalone ``build``; ``evonas.check_trainable(GatedMLPEncoding())`` passes.

Run it from its YAML (whose ``plugins`` key loads this file)::

    evonas run examples/trainable_encoding.yaml

or from Python: ``import trainable_encoding`` (it registers ``gated_mlp``), then
``evonas.get_encoding("gated_mlp")``. A package would list the class under the entry-point
group ``evonas.encodings`` instead (``docs/plugins.md``).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, ClassVar, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

import evonas

UNITS = ("relu", "glu")


class GatedArch(NamedTuple):
    """A decoded architecture, shaped for the widest network."""

    width_mask: jax.Array  # float32[L, max_width]: 1 for the layer's first `width` units
    glu: jax.Array  # float32[L]: 1 where the layer is a GLU


@dataclasses.dataclass(frozen=True)
class GatedBounds:
    """What a supernet computes: per layer its width and whether it has a gate (hashable)."""

    widths: tuple[int, ...]
    glu: tuple[bool, ...]


def _lecun(fan_in: jax.Array):
    """LeCun-normal initialisation with the *real* fan-in (traced from the arch)."""

    def init(key, shape, dtype=jnp.float32):
        return jax.random.normal(key, shape, dtype) / jnp.sqrt(jnp.maximum(fan_in, 1.0))

    return init


def _dense(module: nn.Module, name: str, h: jax.Array, width: int, fan_in: Any) -> jax.Array:
    kernel = module.param(f"{name}_kernel", _lecun(fan_in), (h.shape[-1], width))
    bias = module.param(f"{name}_bias", nn.initializers.zeros_init(), (width,))
    return h @ kernel + bias


class GatedSupernet(nn.Module):
    """The network at some bounds: ``apply(variables, arch, x) -> logits``."""

    widths: tuple[int, ...]
    glu: tuple[bool, ...]
    num_classes: int

    @nn.compact
    def __call__(self, arch: GatedArch, x: jax.Array) -> jax.Array:
        h = x.reshape(x.shape[0], -1)
        fan_in = jnp.float32(h.shape[-1])
        for i, (width, gated) in enumerate(zip(self.widths, self.glu)):
            z = _dense(self, f"layer{i}", h, width, fan_in)
            out = nn.relu(z)
            if gated:  # only where the bounds hold a GLU: the gate's matmul is not free
                gate = nn.sigmoid(_dense(self, f"gate{i}", h, width, fan_in))
                out = jnp.where(arch.glu[i] > 0, z * gate, out)
            h = out * arch.width_mask[i, :width]
            fan_in = jnp.sum(arch.width_mask[i])
        return _dense(self, "head", h, self.num_classes, fan_in)


class GatedNet(nn.Module):
    """The standalone network of one genome (no masks): ``apply(variables, x) -> logits``."""

    widths: tuple[int, ...]
    units: tuple[str, ...]
    num_classes: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h = x.reshape(x.shape[0], -1)
        for i, (width, unit) in enumerate(zip(self.widths, self.units)):
            fan_in = h.shape[-1]
            z = _dense(self, f"layer{i}", h, width, fan_in)
            h = z * nn.sigmoid(_dense(self, f"gate{i}", h, width, fan_in)) if unit == "glu" \
                else nn.relu(z)
        return _dense(self, "head", h, self.num_classes, h.shape[-1])


@dataclasses.dataclass(frozen=True)
class GatedMLPEncoding:
    """``depth`` dense layers, each of one of ``widths`` units, each ReLU or GLU.

    Args:
        input_shape: one example's shape (flattened by the network); filled in from the
            dataset by ``evonas run``.
        num_classes: logits; filled in from the dataset.
        depth: layers.
        widths: the width choices of every layer.
    """

    input_shape: tuple[int, ...] = (40, 1)
    num_classes: int = 10
    depth: int = 3
    widths: tuple[int, ...] = (16, 32, 64)

    name: ClassVar[str] = "gated_mlp"

    def __post_init__(self):
        object.__setattr__(self, "input_shape", tuple(int(d) for d in self.input_shape))
        object.__setattr__(self, "widths", tuple(sorted(int(w) for w in self.widths)))
        if self.depth < 1 or not self.widths or self.widths[0] < 1:
            raise ValueError(f"GatedMLPEncoding needs depth >= 1 and positive widths; got "
                             f"depth={self.depth}, widths={self.widths}")

    @functools.cached_property
    def space(self) -> evonas.GenomeSpace:
        genes: dict[str, Any] = {}
        for i in range(self.depth):
            genes[f"width_{i}"] = self.widths
            genes[f"unit_{i}"] = UNITS
        return evonas.GenomeSpace.from_genes(genes)

    @property
    def _inputs(self) -> int:
        return int(np.prod(self.input_shape))

    def _genes(self, genome: Any) -> tuple[list[int], list[str]]:
        """Host side: each layer's width and unit."""
        g = self.space.validate(genome).reshape(self.depth, 2)
        return [self.widths[w] for w in g[:, 0]], [UNITS[u] for u in g[:, 1]]

    # -- search-only members ------------------------------------------------------------------

    def describe(self, genome: Any) -> dict[str, Any]:
        widths, units = self._genes(genome)
        cost = self.cost(np.asarray(genome, np.int32))
        return {"layers": [{"op": u, "width": w} for w, u in zip(widths, units)],
                "params": int(cost["params"]), "flops": int(cost["flops"])}

    def cost(self, genome: jax.Array, bounds: GatedBounds | None = None) -> dict[str, jax.Array]:
        """Useful params and MACs per example of the genome's network; executed ones of the
        supernet at ``bounds``. Jit- and vmap-able."""
        g = jnp.asarray(genome, jnp.int32).reshape(-1, self.depth, 2)
        widths = jnp.asarray(self.widths, jnp.float32)[g[..., 0]]
        gates = 1.0 + (g[..., 1] == UNITS.index("glu")).astype(jnp.float32)
        inputs = jnp.concatenate([jnp.full(widths.shape[:-1] + (1,), float(self._inputs)),
                                  widths[..., :-1]], axis=-1)
        macs = jnp.sum(gates * inputs * widths, -1) + widths[..., -1] * self.num_classes
        params = macs + jnp.sum(gates * widths, -1) + self.num_classes
        b = bounds if bounds is not None else self.max_bounds()
        ins = (self._inputs, *b.widths[:-1])
        executed_macs = sum((1 + gated) * n * w for n, w, gated in zip(ins, b.widths, b.glu))
        executed_macs += b.widths[-1] * self.num_classes
        executed_params = executed_macs + sum((1 + gated) * w for w, gated in zip(
            b.widths, b.glu)) + self.num_classes
        shape = jnp.shape(genome)[:-1]
        out = {"params": params, "flops": macs,
               "executed_params": jnp.full(params.shape, float(executed_params)),
               "executed_flops": jnp.full(params.shape, float(executed_macs))}
        return {k: v.reshape(shape) for k, v in out.items()}

    # -- trainable members ----------------------------------------------------------------------

    def decode(self, genome: jax.Array) -> GatedArch:
        g = jnp.asarray(genome, jnp.int32).reshape(self.depth, 2)
        width = jnp.asarray(self.widths)[g[:, 0]]
        mask = (jnp.arange(self.widths[-1])[None, :] < width[:, None]).astype(jnp.float32)
        return GatedArch(mask, (g[:, 1] == UNITS.index("glu")).astype(jnp.float32))

    def bounds(self, genome: Any) -> GatedBounds:
        widths, units = self._genes(genome)
        return GatedBounds(tuple(widths), tuple(u == "glu" for u in units))

    def join(self, a: GatedBounds, b: GatedBounds) -> GatedBounds:
        return GatedBounds(tuple(map(max, a.widths, b.widths)),
                           tuple(x or y for x, y in zip(a.glu, b.glu)))

    def max_bounds(self) -> GatedBounds:
        return GatedBounds((self.widths[-1],) * self.depth, (True,) * self.depth)

    def supernet(self, bounds: GatedBounds | None = None) -> GatedSupernet:
        b = bounds if bounds is not None else self.max_bounds()
        return GatedSupernet(b.widths, b.glu, self.num_classes)

    def slice_params(self, params: Any, bounds: GatedBounds) -> Any:
        """Max-bounds parameters (any leading population axes) cut to ``bounds``."""
        if "params" in params:
            return {"params": self.slice_params(params["params"], bounds)}
        out, inputs = {}, self._inputs
        for i, (width, gated) in enumerate(zip(bounds.widths, bounds.glu)):
            for name in (f"layer{i}",) + ((f"gate{i}",) if gated else ()):
                out[f"{name}_kernel"] = params[f"{name}_kernel"][..., :inputs, :width]
                out[f"{name}_bias"] = params[f"{name}_bias"][..., :width]
            inputs = width
        out["head_kernel"] = params["head_kernel"][..., :inputs, :]
        out["head_bias"] = params["head_bias"]
        return out

    def build(self, genome: Any) -> tuple[GatedNet, Any]:
        widths, units = self._genes(genome)
        bounds = self.bounds(genome)
        module = GatedNet(tuple(widths), tuple(units), self.num_classes)
        return module, lambda params: self.slice_params(params, bounds)


evonas.register_encoding("gated_mlp", GatedMLPEncoding)
