"""The NAS-Bench-201 cell encoding: six edges of a 4-node DAG, five operations each.

Implements the micro search space of Dong & Yang, "NAS-Bench-201: Extending the Scope of
Reproducible Neural Architecture Search" (ICLR 2020), also NATS-Bench's topology space ("tss").

A genome is ``int32[6]``: the operation on each edge ``1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2``, in
the benchmark's own op order (:data:`OPS`). The cell is repeated in the benchmark's macro network:
a 3x3 stem conv + BN; three stages of ``cells_per_stage`` cells with ``C, 2C, 4C`` channels; a
ResNet basic block with stride 2 between stages; final BN + ReLU, global average pooling and a
linear classifier.

Trainable: the supernet (``cell_supernet.py``) computes, on every edge, the ops its bounds list
and mixes them with the decoded one-hot. Ops never change tensor shapes, so a genome's exact
bounds are its chosen op per edge, and the fully masked supernet computes all five everywhere.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from evonas import checks
from evonas.genomes import _layers
from evonas.genomes.cell_supernet import CellArch, CellNet, CellSupernet, single_path_network
from evonas.genomes.space import GenomeSpace

OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
"""The five edge operations, in NAS-Bench-201's order (a gene's value indexes this tuple)."""

EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
"""The six edges ``(to, from)``, in the order of the genes and of the benchmark's arch strings."""

NUM_STAGES = 3
_CONV_KERNEL = {"nor_conv_1x1": 1, "nor_conv_3x3": 3}


@dataclasses.dataclass(frozen=True)
class CellBounds:
    """What a cell supernet computes: per edge, the sorted op indices (hashable).

    Ops never change tensor shapes, so this is the cell's whole shape signature: a genome's
    exact bounds hold its one op per edge; ``max_bounds()`` holds all five on every edge.
    """

    ops: tuple[tuple[int, ...], ...]

    def __post_init__(self):
        ops = tuple(tuple(sorted({int(o) for o in edge})) for edge in self.ops)
        if len(ops) != len(EDGES) or any(o < 0 or o >= len(OPS) for e in ops for o in e):
            raise ValueError(
                f"CellBounds needs {len(EDGES)} edges of op indices in 0..{len(OPS) - 1}; "
                f"got {self.ops!r}"
            )
        object.__setattr__(self, "ops", ops)


def arch_str_of(ops: tuple[str, ...]) -> str:
    """The benchmark's string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` for six op names."""
    groups, k = [], 0
    for node in range(1, 4):
        groups.append("|" + "|".join(f"{ops[k + j]}~{j}" for j in range(node)) + "|")
        k += node
    return "+".join(groups)


def parse_arch_str(s: str) -> np.ndarray:
    """Inverse of :func:`arch_str_of`: the genome ``int32[6]`` of a NAS-Bench-201 arch string.

    Raises:
        ValueError: for a malformed string or an unknown op, naming the bad token and listing
            the allowed ops.
    """
    form = "'|op~0|+|op~0|op~1|+|op~0|op~1|op~2|'"
    if not isinstance(s, str):
        raise ValueError(f"an NAS-Bench-201 arch string is a str like {form}; got {s!r}")
    groups = s.split("+")
    if len(groups) != 3:
        raise ValueError(
            f"arch string {s!r} has {len(groups)} node groups separated by '+'; expected 3, "
            f"like {form}"
        )
    genome = []
    for node, group in enumerate(groups, start=1):
        if len(group) < 2 or group[0] != "|" or group[-1] != "|":
            raise ValueError(
                f"node group {group!r} of arch string {s!r} must start and end with '|', "
                f"like {form}"
            )
        tokens = group[1:-1].split("|")
        if len(tokens) != node:
            raise ValueError(
                f"node group {group!r} of arch string {s!r} has {len(tokens)} inputs; node "
                f"{node} has {node}, like {form}"
            )
        for j, token in enumerate(tokens):
            op, sep, src = token.partition("~")
            if not sep or src != str(j):
                raise ValueError(
                    f"token {token!r} of arch string {s!r} must be 'op~{j}' (input {j} of node "
                    f"{node}); allowed ops: {list(OPS)}"
                )
            if op not in OPS:
                raise ValueError(
                    f"unknown op {op!r} in token {token!r} of arch string {s!r}; allowed ops: "
                    f"{list(OPS)}"
                )
            genome.append(OPS.index(op))
    return np.asarray(genome, dtype=np.int32)


@dataclasses.dataclass(frozen=True)
class CellEncoding:
    """The NAS-Bench-201 cell (micro) search space: 5**6 = 15,625 architectures.

    Args:
        num_classes: classifier outputs (10 for CIFAR-10, 100 for CIFAR-100, 120 for
            ImageNet16-120).
        input_size: the input images' height = width (32 for CIFAR, 16 for ImageNet16); a
            multiple of 4, since two stages halve it.
        channels: ``C``, the stem's width; the stages have ``C, 2C, 4C`` channels (16 in the
            benchmark).
        cells_per_stage: ``N``, cells per stage (5 in the benchmark).
        in_channels: channels of the input images (3 for RGB).
    """

    num_classes: int = 10
    input_size: int = 32
    channels: int = 16
    cells_per_stage: int = 5
    in_channels: int = 3

    name: ClassVar[str] = "nb201"
    # The cell normalises with batch statistics: one all-ones input (synflow) is degenerate.
    batch_statistics: ClassVar[bool] = True

    def __post_init__(self):
        for field in ("num_classes", "channels", "cells_per_stage", "in_channels"):
            checks.positive_int(f"CellEncoding.{field}", getattr(self, field))
        size = checks.integer("CellEncoding.input_size", self.input_size, low=4)
        if size % 4:
            raise ValueError(
                f"CellEncoding: input_size must be a multiple of 4 (two stride-2 stages); "
                f"got {size}"
            )

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """One example's shape, NHWC without the batch axis: ``(size, size, in_channels)``."""
        return (self.input_size, self.input_size, self.in_channels)

    @functools.cached_property
    def space(self) -> GenomeSpace:
        """Six genes ``edge_T_F`` (the op on the edge from node F to node T), choices ``OPS``."""
        return GenomeSpace.from_genes({f"edge_{t}_{f}": OPS for t, f in EDGES})

    # -- host-side helpers -------------------------------------------------------------------

    def to_arch_str(self, genome: Any) -> str:
        """The benchmark's arch string of a genome (``ValueError`` outside the space)."""
        genome = self.space.validate(genome)
        return arch_str_of(tuple(OPS[int(g)] for g in genome))

    def from_arch_str(self, s: str) -> np.ndarray:
        """The genome ``int32[6]`` of a benchmark arch string; see :func:`parse_arch_str`."""
        return parse_arch_str(s)

    def parse(self, text: str) -> np.ndarray | None:
        """A genome from its NAS-Bench-201 arch string ``|nor_conv_3x3~0|+|...|``; ``None``
        (decline) for any other text, which the generic notation then reads (a JSON list of six
        op indices, ...). A benchmark index (``"0"``) is the table's notation: the
        ``nb201`` benchmark reads it (``evonas describe nb201 0``)."""
        text = str(text).strip()
        return parse_arch_str(text) if text.startswith("|") else None

    def canonical(self, genomes: jax.Array) -> jax.Array:
        """The representative of each genome's isomorphism class, ``int32[..., 6]``; jit-able.

        Two cells are isomorphic when they compute the same function whatever their weights,
        under the conventions of NAS-Bench-201 (Dong & Yang 2020, the 6,466 unique cells of its
        15,625): a ``none`` edge and any op applied to a node that is always zero contribute
        nothing, ``skip_connect`` passes its input through, and a node is the sum of its inputs
        in any order. The representative is the class member of lowest rank. Genomes outside the
        space are clipped into it first.
        """
        genomes = self.space.clip(genomes)
        table = jnp.asarray(canonical_ranks())
        return self.space.unrank(table[self.space.rank(genomes)])

    def describe(self, genome: Any) -> dict[str, Any]:
        """Readable, JSON-serialisable: the arch string, each node's inputs, the exact cost."""
        genome = self.space.validate(genome)
        nodes: dict[str, dict[str, str]] = {f"node_{t}": {} for t in range(1, 4)}
        for (t, f), g in zip(EDGES, genome):
            nodes[f"node_{t}"][f"node_{f}"] = OPS[int(g)]
        tables = self._cost_tables()
        cost = {k: int(fixed + per_op[genome].sum()) for k, (fixed, per_op) in tables.items()}
        return {
            "encoding": self.name,
            "arch_str": self.to_arch_str(genome),
            "genes": self.space.to_dict(genome),
            "nodes": nodes,
            "network": {
                "channels": [self.channels * 2**s for s in range(NUM_STAGES)],
                "cells_per_stage": self.cells_per_stage,
                "input_size": self.input_size,
                "num_classes": self.num_classes,
            },
            "params": cost["params"],
            "flops": cost["flops"],
        }

    # -- analytic cost (jit-able) --------------------------------------------------------------

    def _cost_tables(self) -> dict[str, tuple[int, np.ndarray]]:
        """``{"params"|"flops": (fixed part, int64[5] per-op total over one edge of every cell)}``.

        Parameters are trainable ones only (a BN has 2C: scale and bias); FLOPs are the
        multiply-accumulates of the convolutions and the linear layer, as the paper counts them.
        """
        c, n, size, k = self.channels, self.cells_per_stage, self.input_size, self.num_classes
        widths = [c * 2**s for s in range(NUM_STAGES)]
        sizes = [size // 2**s for s in range(NUM_STAGES)]
        # Stem 3x3 conv + BN, then final BN and the linear classifier.
        params = 9 * self.in_channels * c + 2 * c + 2 * widths[-1] + widths[-1] * k + k
        flops = sizes[0] ** 2 * 9 * self.in_channels * c + widths[-1] * k
        # Reduction blocks: ReLUConvBN 3x3 stride 2, ReLUConvBN 3x3, shortcut AvgPool + 1x1 conv.
        for cin, cout, hw in zip(widths[:-1], widths[1:], sizes[1:]):
            macs = 9 * cin * cout + 9 * cout * cout + cin * cout
            params += macs + 4 * cout
            flops += hw * hw * macs
        op_params = np.zeros(len(OPS), np.int64)
        op_flops = np.zeros(len(OPS), np.int64)
        for op, kernel in _CONV_KERNEL.items():
            i = OPS.index(op)
            op_params[i] = n * sum(kernel**2 * w * w + 2 * w for w in widths)
            op_flops[i] = n * sum(hw * hw * kernel**2 * w * w for w, hw in zip(widths, sizes))
        return {"params": (params, op_params), "flops": (flops, op_flops)}

    def cost(self, genome: jax.Array, bounds: CellBounds | None = None) -> dict[str, jax.Array]:
        """Analytic cost of the whole network, ``float32`` scalars (jit- and vmap-able).

        ``params`` / ``flops`` are the architecture's own (FLOPs = multiply-accumulates of the
        convs and the classifier); ``executed_params`` / ``executed_flops`` are what the supernet
        at ``bounds`` computes (``None``: every op on every edge). float32 is exact up to 2**24
        and within 6e-8 relative beyond.

        Args:
            genome: ``int32[6]`` (or ``int32[..., 6]``: the cost broadcasts over leading axes).
            bounds: the supernet's per-edge op sets (host side, static), see :meth:`bounds`.
        """
        genome = jnp.clip(jnp.asarray(genome, jnp.int32), 0, len(OPS) - 1)
        bounds = self._check_bounds(bounds)
        out = {}
        for key, (fixed, per_op) in self._cost_tables().items():
            useful = jnp.float32(fixed) + jnp.asarray(per_op, jnp.float32)[genome].sum(axis=-1)
            executed = fixed + sum(int(per_op[list(ops)].sum()) for ops in bounds.ops)
            out[key] = useful
            out[f"executed_{key}"] = jnp.full(useful.shape, executed, jnp.float32)
        return out

    # -- decode (jit/vmap-able) ------------------------------------------------------------

    def decode(self, genome: jax.Array) -> CellArch:
        """The one-hot op of every edge, ``float32[6, 5]`` (jit- and vmap-able)."""
        genome = jnp.clip(jnp.asarray(genome, jnp.int32), 0, len(OPS) - 1)
        return CellArch(jax.nn.one_hot(genome, len(OPS), dtype=jnp.float32))

    def relax(self, weights: jax.Array) -> CellArch:
        """The supernet's arch for ``weights`` ``float32[6, 5]``, a distribution over each
        edge's ops: every edge mixes its ops by their weights (DARTS's mixed op).
        ``relax(one_hot(genome))`` is ``decode(genome)``; jit-able, differentiable."""
        return CellArch(jnp.asarray(weights, jnp.float32)[:, :len(OPS)])

    def parameter_free(self, genome: jax.Array) -> jax.Array:
        """The share of edges whose op has no parameters (none, skip, pooling): what a
        collapsed differentiable search picks. jit-able."""
        free = jnp.asarray([not op.startswith("nor_conv") for op in OPS])
        return jnp.mean(free[jnp.asarray(genome, jnp.int32)].astype(jnp.float32))

    # -- shape signatures (the op sets a supernet computes) ------------------------------------

    def bounds(self, genome: Any) -> CellBounds:
        """The exact bounds of a genome: per edge, only its chosen op (host side)."""
        genome = self.space.validate(genome)
        return CellBounds(tuple((int(g),) for g in genome))

    def join(self, a: CellBounds, b: CellBounds) -> CellBounds:
        """The smallest bounds holding both: the per-edge union of the op sets."""
        a, b = self._check_bounds(a), self._check_bounds(b)
        return CellBounds(tuple(x + y for x, y in zip(a.ops, b.ops)))

    def max_bounds(self) -> CellBounds:
        """Every op on every edge: the fully masked supernet."""
        return CellBounds((tuple(range(len(OPS))),) * len(EDGES))

    def _check_bounds(self, bounds: CellBounds | None) -> CellBounds:
        if bounds is None:
            return self.max_bounds()
        if not isinstance(bounds, CellBounds):
            raise ValueError(f"bounds must be CellBounds from this encoding; got {bounds!r}")
        return bounds

    # -- modules and parameters ----------------------------------------------------------------

    def _module_fields(self) -> dict[str, Any]:
        return {
            "num_classes": self.num_classes,
            "channels": self.channels,
            "cells_per_stage": self.cells_per_stage,
            "edges": EDGES,
            "op_names": OPS,
        }

    def supernet(self, bounds: CellBounds | None = None) -> CellSupernet:
        """The Flax module at ``bounds`` (``None``: all five ops on every edge).

        ``apply(variables, arch, x)`` with ``x`` NHWC images, ``arch = decode(genome)``.
        """
        return CellSupernet(edge_ops=self._check_bounds(bounds).ops, **self._module_fields())

    def param_shapes(self, bounds: CellBounds | None = None) -> dict[str, Any]:
        """The ``{"params": ...}`` shape tree of ``supernet(bounds)`` (``ShapeDtypeStruct``s)."""
        return _param_shapes(self, self._check_bounds(bounds))

    def slice_params(self, params: Any, bounds: CellBounds | None) -> Any:
        """Max-bounds parameters (``{"params": ...}`` or the inner dict, any leading population
        axes) cut down to ``bounds``: the layers of ops outside the bounds are dropped."""
        target = self.param_shapes(bounds)
        if "params" not in params:
            target = target["params"]
        return _layers.slice_like(params, target)

    def single_path(self, params: Any, genome: jax.Array, x: jax.Array) -> jax.Array:
        """Logits of one cell computed on the max-bounds parameters along its own path only
        (the one-shot evaluator's forward pass; jit-able, ``genome`` traced): each edge runs
        only its op. Computes what ``build(genome)`` computes on ``slice_params`` of the same
        parameters."""
        return single_path_network(params, jnp.asarray(genome, jnp.int32), x,
                                   cells_per_stage=self.cells_per_stage, edges=EDGES,
                                   op_names=OPS)

    def build(self, genome: Any) -> tuple[CellNet, Callable[[Any], Any]]:
        """The standalone module of ``genome`` (only its ops, no "none" edges) and the map from
        max-bounds supernet variables to its variables (host side, for export).

        ``apply(variables, x)`` with ``x`` NHWC images.
        """
        bounds = self.bounds(genome)
        edge_ops = tuple(tuple(o for o in ops if OPS[o] != "none") for ops in bounds.ops)
        module = CellNet(edge_ops=edge_ops, **self._module_fields())
        return module, lambda params: self.slice_params(params, bounds)


def _cell_function(genome: Sequence[int]) -> Any:
    """A hashable value equal for cells that compute the same function (see ``canonical``):
    each node is the sorted multiset of its non-zero terms; an op term holds its input's
    value, a skip adds its input's terms to the sum; ``None`` is the always-zero node."""
    values: list[Any] = [("input",)]
    k = 0
    for node in range(1, 4):
        terms: list[Any] = []
        for j in range(node):
            op, source = OPS[int(genome[k])], values[j]
            k += 1
            if op == "none" or source is None:
                continue
            terms.extend(source if op == "skip_connect" else [(op, source)])
        values.append(tuple(sorted(terms, key=repr)) if terms else None)
    return values[3]


@functools.lru_cache(maxsize=1)
def canonical_ranks() -> np.ndarray:
    """``int32[5**6]``: for each genome rank, the lowest rank computing the same function."""
    space = CellEncoding().space
    first: dict[Any, int] = {}
    out = np.empty(space.size, np.int32)
    for rank in range(space.size):
        key = repr(_cell_function(space.from_index(rank)))
        out[rank] = first.setdefault(key, rank)
    return out


@functools.lru_cache(maxsize=64)
def _param_shapes(encoding: CellEncoding, bounds: CellBounds) -> dict[str, Any]:
    # Shapes only depend on the channels, so a tiny input traces the network cheaply.
    x = jax.ShapeDtypeStruct((1, 4, 4, encoding.in_channels), jnp.float32)
    arch = CellArch(jax.ShapeDtypeStruct((len(EDGES), len(OPS)), jnp.float32))
    module = encoding.supernet(bounds)
    return jax.eval_shape(module.init, jax.random.key(0), arch, x)
