"""The compiled programs of the population trainer: init (one for the whole population), and
per group a chunk of training steps and an evaluation.

Every program is ``vmap`` over the group's individuals (leading axis ``n``) of a function of one
individual, jitted with a static :class:`GroupSpec` (encoding, bounds, packing layout, options,
and the standalone module when the group trains one). A program of one individual is not
vmapped: it squeezes the axis, so its step is the plain model's. The training chunk is a Python
loop of ``steps_per_call`` steps *unrolled inside* one jitted call: on XLA:CPU a rolled
``lax.scan`` over conv training steps runs tens of times slower (PERFORMANCE-NOTES.md).

Parameters, gradients and optimiser slots are one flat vector per individual (:class:`Layout`);
the module sees the unpacked tree. Divergence is checked every step (loss and gradient norm
finite), and a diverged individual's state is frozen by a select, so it cannot touch the others."""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from evonas.train.augment import augment
from evonas.train.config import ProgramOptions
from evonas.train.step import cross_entropy, descent_step


@dataclasses.dataclass(frozen=True)
class Layout:
    """How one individual's parameter tree is packed into one flat float32 vector (hashable,
    static).

    The trainer keeps parameters, gradients and optimiser slots flat: the optimiser update and
    the divergence check are then a handful of elementwise ops over one vector instead of a
    handful per parameter leaf, which cuts a training program's compile time (measured about
    0.2 s less per program on the CPU) and its per-call argument handling, with the same
    numbers (the ops are elementwise).

    Attributes:
        treedef: the parameter tree's structure.
        shapes: each leaf's shape (no individual axis), in ``treedef``'s leaf order.
    """

    treedef: Any
    shapes: tuple[tuple[int, ...], ...]

    @classmethod
    def of(cls, params: Any) -> Layout:
        """The layout of parameters with a leading individual axis ``[n, ...]``."""
        leaves, treedef = jax.tree.flatten(params)
        return cls(treedef, tuple(tuple(leaf.shape[1:]) for leaf in leaves))

    @property
    def size(self) -> int:
        return sum(int(np.prod(shape)) for shape in self.shapes)

    def pack(self, params: Any) -> np.ndarray:
        """``float32[n, size]`` from a tree of ``[n, ...]`` leaves (host side)."""
        leaves = [np.asarray(leaf, np.float32) for leaf in jax.tree.leaves(params)]
        n = leaves[0].shape[0]
        return np.concatenate([leaf.reshape(n, -1) for leaf in leaves], axis=1)

    def unpack(self, flat: jax.Array) -> Any:
        """One individual's tree from its ``float32[size]`` vector (static slices)."""
        leaves, start = [], 0
        for shape in self.shapes:
            size = int(np.prod(shape))
            leaves.append(flat[start:start + size].reshape(shape))
            start += size
        return jax.tree.unflatten(self.treedef, leaves)


@dataclasses.dataclass(frozen=True)
class GroupSpec:
    """What a compiled program depends on besides array shapes: hashable, a static jit argument.

    Attributes:
        encoding: a trainable encoding (hashable: the built-ins are frozen dataclasses).
        bounds: the static shapes the group's module is built at.
        options: the training options that shape the program.
        num_classes: number of logits.
        layout: how the group's parameters are packed (:class:`Layout`).
        exact: the standalone module ``encoding.build(genome)[0]`` shared by every member of the
            group, or ``None``. When set, programs train that module (no arch, no masks, no
            activation mixing: the cost of the plain Flax model) on parameters cut by
            ``build``'s map, which computes the same function as the supernet at ``bounds``.
    """

    encoding: Any
    bounds: Any
    options: ProgramOptions
    num_classes: int
    layout: Layout | None = None
    exact: Any = None

    def module(self) -> Any:
        """The supernet at ``bounds`` (unused when ``exact`` is set)."""
        return self.encoding.supernet(self.bounds)

    def apply(self, flat: jax.Array, arch: Any, x: jax.Array) -> jax.Array:
        """Logits of one individual from its packed parameters: the standalone module when
        ``exact``, else the supernet at ``bounds`` under ``arch``."""
        params = self.layout.unpack(flat)
        if self.exact is not None:
            return self.exact.apply({"params": params}, x)
        return self.module().apply({"params": params}, arch, x)

    def archs(self, genomes: jax.Array) -> Any:
        """The decoded archs ``[n, ...]`` (``None`` for an exact group: its module is fixed)."""
        return None if self.exact is not None else jax.vmap(self.encoding.decode)(genomes)


class TrainState(NamedTuple):
    """The training state of a group; every leaf has the leading individual axis ``n``.

    ``params`` is ``float32[n, D]``, packed by the group's :class:`Layout`; ``opt_state`` is the
    optimiser's state of that vector.

    ``fail_step`` is -1 while an individual trains normally, else the step at which its loss or
    gradients stopped being finite (its parameters are frozen from then on); ``fail_loss`` is the
    loss it had at that step.
    """

    params: Any
    opt_state: Any
    fail_step: jax.Array  # int32[n]
    fail_loss: jax.Array  # float32[n]
    loss: jax.Array  # float32[n], the last finite training loss


def init_population(encoding: Any, key: jax.Array, index: jax.Array, genomes: jax.Array,
                    x: jax.Array) -> Any:
    """Max-bounds parameters of individuals ``index`` (``[n, ...]`` leaves).

    Individual ``index[j]`` is initialised from ``fold_in(key, index[j])`` by
    ``supernet(max_bounds()).init``; every plan then cuts these with ``slice_params``, so all plans
    start from the same values. One program serves every plan and group (the random-number code
    of an init is slow to compile on XLA:CPU: compiling it once per group would double the
    ``grouped`` plan's compiles).

    Args:
        encoding: the trainable encoding (static).
        key: the population's init key.
        index: ``int32[n]``, the individuals' positions in the population.
        genomes: ``int32[n, G]``.
        x: one example batch ``[1, *input_shape]`` (only its shape matters).
    """
    full = encoding.supernet(encoding.max_bounds())

    def one(i: jax.Array, genome: jax.Array) -> Any:
        return full.init(jax.random.fold_in(key, i), encoding.decode(genome), x)["params"]

    return jax.vmap(one)(index, genomes)


def initial_state(spec: GroupSpec, params: Any) -> TrainState:
    """A group's training state on the host (numpy) from its sliced parameters ``[n, ...]``
    (packed here by ``spec.layout``).

    Adam's and SGD's states start at zero (step counts, moments, momentum traces), so they are
    built from shapes alone, without a compiled ``opt.init``.
    """
    opt = spec.options.optimizer_fn()
    params = spec.layout.pack(params)
    n = params.shape[0]
    shapes = jax.eval_shape(opt.init, jax.ShapeDtypeStruct(params.shape[1:], params.dtype))
    opt_state = jax.tree.map(lambda s: np.zeros((n, *s.shape), s.dtype), shapes)
    return TrainState(params, opt_state, np.full((n,), -1, np.int32), np.zeros((n,), np.float32),
                      np.zeros((n,), np.float32))


def _loss(spec: GroupSpec, params: Any, arch: Any, x: jax.Array, y: jax.Array) -> jax.Array:
    compute = spec.options.compute
    logits = spec.apply(compute(params), arch, compute(x))
    return cross_entropy(logits.astype(jnp.float32), y, spec.options.label_smoothing)


def _step_one(spec: GroupSpec, state: TrainState, arch: Any, x: jax.Array, y: jax.Array,
              t: jax.Array, key: jax.Array | None = None) -> TrainState:
    """One optimiser step of one individual (vmapped by the caller); a no-op once failed.
    ``key``: this individual's augmentation key of this step (None: no augmentation)."""
    if key is not None:
        x = augment(jax.random.wrap_key_data(key), x, spec.options.augment)
    loss, grads, params, opt_state = descent_step(
        spec.options.optimizer_fn(), lambda p: _loss(spec, p, arch, x, y), state.params,
        state.opt_state)
    finite = jnp.isfinite(loss) & jnp.isfinite(optax.tree.norm(grads))
    alive = state.fail_step < 0
    active = t < spec.options.steps  # the last call may run past the budget: those steps idle
    keep = alive & active & finite
    # Freezing by jnp.where keeps a diverged individual from touching the others' numbers.
    pick = lambda new, old: jnp.where(keep, new, old)
    newly_failed = alive & active & ~finite
    return TrainState(
        jax.tree.map(pick, params, state.params),
        jax.tree.map(pick, opt_state, state.opt_state),
        jnp.where(newly_failed, t, state.fail_step),
        jnp.where(newly_failed, loss, state.fail_loss),
        jnp.where(keep, loss, state.loss),
    )


def _fold_data(key_data: jax.Array, t: jax.Array) -> jax.Array:
    """``fold_in`` on raw key data (``uint32[2]``), as raw key data."""
    return jax.random.key_data(jax.random.fold_in(jax.random.wrap_key_data(key_data), t))


def train_chunk(spec: GroupSpec, state: TrainState, genomes: jax.Array, x_train: jax.Array,
                y_train: jax.Array, indices: jax.Array, t0: jax.Array,
                keys: jax.Array | None = None) -> TrainState:
    """``steps_per_call`` fully unrolled training steps of a group, from step ``t0``.

    Args:
        spec: the group's static description.
        state: the group's state (donated by the caller's jit).
        genomes: ``int32[n, G]``.
        x_train, y_train: the whole train split, on device.
        indices: ``int32[steps, batch_size]``, the batch indices of every step (shared by all
            individuals).
        t0: the first step of this call (traced, so one program serves every call).
        keys: ``uint32[n, 2]``, each individual's augmentation key data (None: no
            augmentation); step ``t`` augments with ``fold_in(key, t)``.
    """
    archs = spec.archs(genomes)
    single = genomes.shape[0] == 1  # a group of one: no vmap (XLA:CPU runs it as the plain model)
    augmenting = keys is not None and spec.options.augment is not None
    if single:
        state, archs = jax.tree.map(lambda a: a[0], (state, archs))
        keys = keys[0] if augmenting else None
        step = _step_one
    else:
        step = jax.vmap(_step_one, in_axes=(None, 0, 0, None, None, None,
                                            0 if augmenting else None))
    last = spec.options.steps - 1
    fold = jax.vmap(_fold_data, in_axes=(0, None)) if not single else _fold_data
    for i in range(spec.options.steps_per_call):  # unrolled on purpose, see the module docstring
        t = t0 + i
        idx = jax.lax.dynamic_index_in_dim(indices, jnp.minimum(t, last), keepdims=False)
        step_keys = fold(keys, t) if augmenting else None
        state = step(spec, state, archs, x_train[idx], y_train[idx], t, step_keys)
    return jax.tree.map(lambda a: a[None], state) if single else state


def in_batches(arrays: tuple[jax.Array, ...], size: int) -> tuple[jax.Array, ...]:
    """``arrays`` (the same leading length ``N``) padded to a multiple of ``size`` and cut
    into ``[N // size, size, ...]`` batches for a scan, followed by the batches' weights (1 for
    an example, 0 for padding)."""
    n = arrays[0].shape[0]
    size = min(size, n)
    pad = -n % size
    padded = [jnp.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1))
              for a in (*arrays, jnp.ones(n, jnp.float32))]
    return tuple(a.reshape(-1, size, *a.shape[1:]) for a in padded)


def evaluate_group(spec: GroupSpec, params: Any, genomes: jax.Array, x: jax.Array, y: jax.Array,
                   split: jax.Array, num_splits: int) -> tuple[jax.Array, jax.Array]:
    """Summed loss and confusion matrices of a group on ``num_splits`` concatenated splits.

    Args:
        spec: the group's static description.
        params: the group's parameters ``[n, ...]``.
        genomes: ``int32[n, G]``.
        x, y: the evaluation examples (validation, then test if wanted), on device.
        split: ``int32[N]``, which split each example belongs to.
        num_splits: static number of splits.

    Returns:
        ``loss_sum: float32[n, num_splits]`` and ``confusion: float32[n, num_splits, C, C]``
        (rows: true class, columns: predicted class).
    """
    archs = spec.archs(genomes)
    apply = jax.vmap(spec.apply, in_axes=(0, 0, None))
    c = spec.num_classes
    # One batch live at a time (a scan, not unrolled slices: XLA would hold every batch's
    # activations at once).
    batches = in_batches((x, y, split), spec.options.eval_batch_size)

    def batch(carry, xys):
        xb, yb, sb, wb = xys
        logits = apply(params, archs, xb)  # [n, b, C]
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, yb[None])
        onehot_split = jax.nn.one_hot(sb, num_splits) * wb[:, None]  # [b, S]; padding: 0
        true = jax.nn.one_hot(yb, c)[:, None, :] * onehot_split[:, :, None]  # [b, S, C]
        pred = jax.nn.one_hot(jnp.argmax(logits, -1), c)  # [n, b, C]
        loss_sum, confusion = carry
        return (loss_sum + jnp.einsum("nb,bs->ns", losses, onehot_split),
                confusion + jnp.einsum("bsc,nbd->nscd", true, pred)), None

    n = genomes.shape[0]
    zeros = (jnp.zeros((n, num_splits), jnp.float32), jnp.zeros((n, num_splits, c, c), jnp.float32))
    (loss_sum, confusion), _ = jax.lax.scan(batch, zeros, batches)
    return loss_sum, confusion
