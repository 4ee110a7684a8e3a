"""Gradient-based and variational architecture search on an encoding's masked supernet.

Every categorical gene ``g`` gets architecture parameters ``alpha[g]`` (one per choice; the
space's genes padded to the largest cardinality ``K`` and masked). A method turns them into
weights ``float32[G, K]``, a distribution over each gene's choices, and the encoding's
``relax(weights)`` hook gives the supernet's arch for them: ops mix by their weights (DARTS's
mixed op), widths by their channel masks, a layer's presence by its probability.

- ``darts`` (Liu et al. 2019): softmax weights; first order (the architecture gradient at the
  current weights) or second order (one unrolled weight step, the Hessian-vector product by
  finite differences).
- ``gdas`` (Dong & Yang 2019): Gumbel-softmax samples with a straight-through hard one-hot (one
  path's weights are 1 in the forward pass), the temperature annealed linearly.
- ``drnas`` (Chen et al. 2021): a Dirichlet per gene, concentration ``elu(alpha) + 1``, sampled
  with reparameterised gradients (``jax.random.gamma`` differentiates in its concentration),
  anchored to a Dirichlet prior by an L2 or KL term: a learned distribution over architectures
  rather than a point.

Weights and architecture parameters are updated alternately on the two halves of the training
split (a fixed permutation): each step one architecture step on a batch of the second half, then
one weight step on a batch of the first. The whole search is one compiled program (``lax.scan``
over epochs and steps) and ``seeds`` searches run as one ``vmap``. Per epoch it records the
learned distribution, its argmax and the share of parameter-free choices in that argmax (what a
collapsing DARTS converges to).

Normalisation in the NAS-Bench-201 supernet uses batch statistics, as in DARTS's search.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.scipy.special import digamma, gammaln

from evonas import checks
from evonas.data.batches import batch_indices
from evonas.train.cache import ProgramCache
from evonas.train.config import TrainConfig, library_options
from evonas.train.oneshot import supernet_init
from evonas.train.step import cross_entropy

METHODS = ("darts", "gdas", "drnas")
# Unrolled steps per compiled call on the CPU (see ``_chunk``).
CPU_STEPS_PER_CALL = 4
ANCHORS = ("l2", "kl")


@dataclasses.dataclass(frozen=True)
class Relaxation:
    """How architecture parameters become a supernet's arch, and how they learn.

    Attributes:
        method: ``darts``, ``gdas`` or ``drnas``.
        epochs: passes over the weights' half of the training split.
        order: ``darts`` only: 1 (first order) or 2 (the unrolled, finite-difference step).
        arch_learning_rate: Adam's learning rate for the architecture parameters
            (``betas = (0.5, 0.999)`` as in DARTS).
        arch_weight_decay: L2 on the architecture parameters (DARTS: 1e-3).
        temperature: ``gdas``: ``(start, end)`` of the linearly annealed Gumbel-softmax
            temperature (GDAS: 10 to 0.1).
        anchor: ``drnas``: ``l2`` (on the concentration) or ``kl`` (to the prior Dirichlet).
        anchor_weight: ``drnas``: the anchor's weight (DrNAS: 1e-3).
        prior: ``drnas``: the prior Dirichlet's concentration.
    """

    method: str = "darts"
    epochs: int = 10
    order: int = 1
    arch_learning_rate: float = 3e-4
    arch_weight_decay: float = 1e-3
    temperature: tuple[float, float] = (10.0, 0.1)
    anchor: str = "l2"
    anchor_weight: float = 1e-3
    prior: float = 1.0

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"Relaxation.method must be one of {list(METHODS)}; "
                             f"got {self.method!r}")
        checks.positive_int("Relaxation.epochs", self.epochs)
        if self.order not in (1, 2) or (self.order == 2 and self.method != "darts"):
            raise ValueError(f"Relaxation.order must be 1, or 2 with method darts; got "
                             f"{self.order!r} with {self.method}")
        checks.number("Relaxation.arch_learning_rate", self.arch_learning_rate, 0.0,
                      open_low=True)
        checks.number("Relaxation.arch_weight_decay", self.arch_weight_decay, 0.0)
        temps = tuple(self.temperature) if isinstance(self.temperature, (list, tuple)) else ()
        if len(temps) != 2 or not all(isinstance(t, (int, float)) and t > 0 for t in temps):
            raise ValueError(f"Relaxation.temperature must be (start, end), both > 0; got "
                             f"{self.temperature!r}")
        object.__setattr__(self, "temperature", tuple(float(t) for t in temps))
        if self.anchor not in ANCHORS:
            raise ValueError(f"Relaxation.anchor must be one of {list(ANCHORS)}; "
                             f"got {self.anchor!r}")
        checks.number("Relaxation.anchor_weight", self.anchor_weight, 0.0, open_low=True)
        checks.number("Relaxation.prior", self.prior, 0.0, open_low=True)


class RelaxedResult(NamedTuple):
    """What a differentiable search learned, per seed ``S`` and epoch ``E``.

    Attributes:
        probabilities: ``float32[S, E, G, K]``: each gene's distribution over its choices at
            the end of each epoch (softmax of ``alpha``; ``drnas``: the Dirichlet's mean).
        argmax: ``int32[S, E, G]``: the most probable genome at the end of each epoch.
        parameter_free: ``float32[S, E]``: the share of parameter-free choices in that argmax
            (``encoding.parameter_free``; NaN where the encoding lacks the hook).
        train_loss, val_loss: ``float32[S, E]``: mean losses of the weight and architecture
            steps in each epoch.
        alpha: ``float32[S, G, K]``: the final architecture parameters.
        params: the supernet's final weights (max-bounds layout), leaves ``[S, ...]``.
        seconds: wall seconds of the search, compile included.
    """

    probabilities: np.ndarray
    argmax: np.ndarray
    parameter_free: np.ndarray
    train_loss: np.ndarray
    val_loss: np.ndarray
    alpha: np.ndarray
    params: Any
    seconds: float


def check_relaxable(encoding: Any) -> None:
    """Refuses an encoding that can't be searched by gradient, in one line.

    Raises:
        ValueError: no ``relax`` hook, no supernet, or no gene with two or more choices.
    """
    name = getattr(encoding, "name", type(encoding).__name__)
    for member in ("relax", "supernet", "max_bounds", "decode"):
        if not callable(getattr(encoding, member, None)):
            raise ValueError(
                f"encoding {name!r} has no {member}(); a differentiable search needs a trainable "
                "encoding with the relax(weights) hook (docs/plugins.md)")
    if max(encoding.space.cardinalities) < 2:
        raise ValueError(f"encoding {name!r} has no categorical gene with two or more choices "
                         "to relax")


def gene_mask(space: Any) -> jax.Array:
    """``bool[G, K]``: which of the padded ``K`` entries of each gene are real choices."""
    cards = jnp.asarray(space.cardinalities)
    return jnp.arange(max(space.cardinalities))[None, :] < cards[:, None]


def probabilities(relaxation: Relaxation, alpha: jax.Array, mask: jax.Array) -> jax.Array:
    """The learned distribution of each gene (zeros on padding)."""
    if relaxation.method == "drnas":
        beta = _concentration(alpha, mask)
        return beta / jnp.sum(beta, -1, keepdims=True)
    return jax.nn.softmax(jnp.where(mask, alpha, -jnp.inf), axis=-1)


def alpha_for(relaxation: Relaxation, target: jax.Array, mask: jax.Array) -> jax.Array:
    """Architecture parameters whose distribution (:func:`probabilities`) is ``target``
    (``float32[G, K]``, rows summing to 1 over the mask, every masked entry above 0): its
    logarithms for ``darts`` and ``gdas``; for ``drnas`` the Dirichlet of mean ``target`` and
    total concentration K per gene (the uniform prior's), through the inverse of ``elu + 1``."""
    p = jnp.where(mask, jnp.maximum(jnp.asarray(target, jnp.float32), 1e-12), 1.0)
    if relaxation.method != "drnas":
        return jnp.where(mask, jnp.log(p), 0.0)
    beta = p * jnp.sum(mask, -1, keepdims=True)
    return jnp.where(mask, jnp.where(beta >= 1.0, beta - 1.0, jnp.log(beta)), 0.0)


def _concentration(alpha: jax.Array, mask: jax.Array) -> jax.Array:
    return jnp.where(mask, jax.nn.elu(alpha) + 1.0, 0.0)


def _weights(relaxation: Relaxation, alpha: jax.Array, mask: jax.Array, key: jax.Array,
             temperature: jax.Array) -> jax.Array:
    """The mixing weights of one step: what ``relax`` receives."""
    if relaxation.method == "darts":
        return probabilities(relaxation, alpha, mask)
    if relaxation.method == "gdas":
        gumbel = jax.random.gumbel(key, alpha.shape)
        soft = jax.nn.softmax(jnp.where(mask, (alpha + gumbel) / temperature, -jnp.inf), -1)
        hard = jax.nn.one_hot(jnp.argmax(soft, -1), alpha.shape[-1])
        return hard - jax.lax.stop_gradient(soft) + soft  # straight through
    beta = _concentration(alpha, mask)
    gamma = jnp.maximum(jax.random.gamma(key, jnp.where(mask, beta, 1.0)), 1e-30) * mask
    return gamma / jnp.sum(gamma, -1, keepdims=True)


def _anchor(relaxation: Relaxation, alpha: jax.Array, mask: jax.Array) -> jax.Array:
    """DrNAS's regulariser toward the prior Dirichlet (0 for the other methods)."""
    if relaxation.method != "drnas":
        return jnp.zeros(())
    beta = _concentration(alpha, mask)
    prior = relaxation.prior
    if relaxation.anchor == "l2":
        return relaxation.anchor_weight * jnp.sum(jnp.where(mask, (beta - prior) ** 2, 0.0))
    m = mask.astype(jnp.float32)
    safe = jnp.where(mask, beta, 1.0)
    total = jnp.sum(beta, -1)
    k = jnp.sum(m, -1)
    kl = (gammaln(total) - jnp.sum(gammaln(safe) * m, -1) - gammaln(prior * k)
          + k * gammaln(prior)
          + jnp.sum(m * (safe - prior) * (digamma(safe) - digamma(total)[:, None]), -1))
    return relaxation.anchor_weight * jnp.sum(kl)


def _genes_argmax(probs: jax.Array, mask: jax.Array) -> jax.Array:
    return jnp.argmax(jnp.where(mask, probs, -1.0), -1).astype(jnp.int32)


class Carry(NamedTuple):
    """What a differentiable search carries from step to step (and from one call to the next):
    the supernet's weights and their optimiser state, the architecture parameters ``alpha``
    (``float32[G, K]``) and theirs."""

    params: Any
    opt_state: Any
    alpha: jax.Array
    arch_state: Any


class Epochs(NamedTuple):
    """What :func:`advance` records per epoch ``E`` it ran."""

    probabilities: jax.Array  # float32[E, G, K]
    argmax: jax.Array  # int32[E, G]
    parameter_free: jax.Array  # float32[E]
    train_loss: jax.Array  # float32[E]
    val_loss: jax.Array  # float32[E]


def halves(key: jax.Array, dataset: Any, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The two halves of the training split (a permutation from ``key``) that the weights and
    the architecture parameters learn on.

    Raises:
        ValueError: a half holds fewer examples than one batch.
    """
    n = len(dataset.y_train) // 2
    if n < batch_size:
        raise ValueError(f"a differentiable search trains weights and architecture on halves of "
                         f"the training split: {n} examples each, fewer than "
                         f"train.batch_size={batch_size}")
    order = np.asarray(jax.random.permutation(key, len(dataset.y_train)))
    return order[:n], order[n:2 * n]


def start(key: jax.Array, encoding: Any, dataset: Any, relaxation: Relaxation,
          train: TrainConfig) -> Carry:
    """The search's start: the supernet's initial weights (chosen on the host, see
    ``supernet_init``) from ``key``, uniform architecture parameters, fresh optimisers."""
    params = jax.tree.map(jnp.asarray, supernet_init(key, encoding, dataset.x_train))
    alpha = jnp.zeros(gene_mask(encoding.space).shape, jnp.float32)
    options = train.program_options()
    return Carry(params, options.optimizer_fn().init(params), alpha,
                 _arch_optimizer(relaxation).init(alpha))


def advance_program(encoding: Any, relaxation: Relaxation, train: TrainConfig, per_epoch: int,
                    epochs: int, cache: ProgramCache | None = None) -> Any:
    """``(carry, key, first_epoch, x, y, weight_half, arch_half) -> (carry, Epochs)``: runs
    ``epochs`` epochs of ``per_epoch`` steps from epoch ``first_epoch`` of a search of
    ``relaxation.epochs`` epochs (the learning-rate schedule and the temperature run over the
    whole search), through programs compiled once per search (:class:`Advance`), kept in
    ``cache``."""
    options = dataclasses.replace(train, steps=relaxation.epochs * per_epoch).program_options()
    return (cache or ProgramCache()).program(
        ("differentiable-advance", encoding, relaxation, options, per_epoch, epochs),
        lambda: _advance_fn(encoding, relaxation, options, per_epoch, epochs))


def differentiable_search(key: jax.Array, encoding: Any, dataset: Any, relaxation: Relaxation,
                          train: TrainConfig, seeds: int = 1,
                          cache: ProgramCache | None = None) -> RelaxedResult:
    """Searches ``encoding`` on ``dataset`` by ``relaxation.method``, ``seeds`` searches at once.

    ``train`` gives the weights' optimiser, learning rate (its schedule runs over the whole
    search) and batch size. ``split_key, seeds_key = split(key)``; seed ``s`` searches with
    ``fold_in(seeds_key, s)``, so a search's numbers don't depend on how many run beside it.
    ``cache`` keeps the compiled search (an experiment's :class:`ProgramCache`: under its bound).

    Raises:
        ValueError: an encoding without the hook or categorical genes; a training half smaller
            than one batch (one line each, before anything is compiled).
    """
    check_relaxable(encoding)
    checks.positive_int("seeds", seeds)
    began = time.perf_counter()
    split_key, seeds_key = jax.random.split(key)
    weight_half, arch_half = halves(split_key, dataset, train.batch_size)
    per_epoch = len(weight_half) // train.batch_size
    options = dataclasses.replace(train, steps=relaxation.epochs * per_epoch).program_options()
    keys = [jax.random.fold_in(seeds_key, s) for s in range(seeds)]
    starts = [start(jax.random.split(k)[0], encoding, dataset, relaxation, train) for k in keys]
    carry = jax.tree.map(lambda *leaves: jnp.stack(leaves), *starts)
    advance = (cache or ProgramCache()).program(
        ("differentiable", encoding, relaxation, options, per_epoch),
        lambda: _advance_fn(encoding, relaxation, options, per_epoch, relaxation.epochs,
                            seeds=True))
    run_keys = jnp.stack([jax.random.split(k)[1] for k in keys])
    carry, epochs = advance(carry, run_keys, 0, jnp.asarray(dataset.x_train),
                            jnp.asarray(dataset.y_train), jnp.asarray(weight_half),
                            jnp.asarray(arch_half))
    carry, epochs = jax.tree.map(np.asarray, (carry, epochs))
    return RelaxedResult(epochs.probabilities, epochs.argmax, epochs.parameter_free,
                         epochs.train_loss, epochs.val_loss, carry.alpha, carry.params,
                         time.perf_counter() - began)


def _arch_optimizer(relaxation: Relaxation) -> optax.GradientTransformation:
    """Adam on the architecture parameters, ``betas = (0.5, 0.999)`` and L2, as in DARTS."""
    return optax.chain(optax.add_decayed_weights(relaxation.arch_weight_decay),
                       optax.adam(relaxation.arch_learning_rate, b1=0.5, b2=0.999))


def _chunk(per_epoch: int) -> int:
    """Steps per compiled call: on the CPU the largest divisor of ``per_epoch`` up to
    :data:`CPU_STEPS_PER_CALL` (XLA:CPU runs a convolution's weight gradient inside a rolled
    loop tens of times slower than unrolled, and an unrolled program compiles in time
    proportional to its steps); elsewhere a whole epoch, rolled."""
    if jax.default_backend() != "cpu":
        return per_epoch
    return max(d for d in range(1, min(per_epoch, CPU_STEPS_PER_CALL) + 1) if per_epoch % d == 0)


@dataclasses.dataclass(frozen=True, eq=False)
class Advance:
    """Runs epochs of a differentiable search as a host loop over three compiled programs:
    ``plan`` (each step's batch indices and keys), ``steps`` (``chunk`` alternating steps,
    unrolled on the CPU) and ``summary`` (an epoch's distribution, argmax and parameter-free
    share). With ``seeds`` every array has a leading seed axis (the programs are vmapped)."""

    plan: Any
    steps: Any
    summary: Any
    per_epoch: int
    epochs: int
    chunk: int
    seeds: bool

    def __call__(self, carry, key, first_epoch, x, y, weight_half, arch_half):
        inputs = self.plan(key, jnp.int32(first_epoch), weight_half, arch_half)
        axis = 1 if self.seeds else 0
        stacked = []
        for e in range(self.epochs):
            losses = []
            for c in range(self.per_epoch // self.chunk):
                lo = e * self.per_epoch + c * self.chunk
                part = jax.tree.map(
                    lambda a, lo=lo: jax.lax.slice_in_dim(a, lo, lo + self.chunk, axis=axis),
                    inputs)
                carry, loss = self.steps(carry, part, x, y)
                losses.append(loss)
            train_l, val_l = (jnp.concatenate([loss[i] for loss in losses], axis=axis)
                              for i in range(2))
            probs, genome, free = self.summary(carry)
            stacked.append(Epochs(probs, genome, free, train_l.mean(axis), val_l.mean(axis)))
        return carry, jax.tree.map(lambda *a: jnp.stack(a, axis=axis), *stacked)

    def compiles(self) -> int:
        """Programs compiled so far (3 once the search ran: one each)."""
        return sum(p._cache_size() for p in (self.plan, self.steps, self.summary))

    # What :class:`ProgramCache` asks of the programs it holds (it counts and clears them).
    _cache_size = compiles

    def clear_cache(self) -> None:
        for program in (self.plan, self.steps, self.summary):
            program.clear_cache()


def _advance_fn(encoding: Any, relaxation: Relaxation, options: Any, per_epoch: int,
                epochs: int, seeds: bool = False) -> Advance:
    """The :class:`Advance` of ``epochs`` epochs of alternating architecture and weight steps."""
    space = encoding.space
    mask = gene_mask(space)
    supernet = encoding.supernet(encoding.max_bounds())
    optimizer = options.optimizer_fn()
    arch_optimizer = _arch_optimizer(relaxation)
    schedule = (optax.cosine_decay_schedule(options.learning_rate, options.steps)
                if options.schedule == "cosine" else lambda t: options.learning_rate)
    total = relaxation.epochs * per_epoch
    first_temp, last_temp = relaxation.temperature
    free_of = getattr(encoding, "parameter_free", None)

    def loss(params: Any, weights: jax.Array, xb: jax.Array, yb: jax.Array) -> jax.Array:
        logits = supernet.apply({"params": params}, encoding.relax(weights), xb)
        return cross_entropy(logits, yb, options.label_smoothing)

    def arch_loss(alpha, params, key, temperature, xb, yb):
        weights = _weights(relaxation, alpha, mask, key, temperature)
        return loss(params, weights, xb, yb) + _anchor(relaxation, alpha, mask)

    def arch_grad(alpha, params, key, temperature, batch_a, batch_w, lr):
        val, grad = jax.value_and_grad(arch_loss)(alpha, params, key, temperature, *batch_a)
        if relaxation.order == 1:
            return val, grad
        # DARTS's second order: the gradient at the weights after one virtual step, minus the
        # learning rate times a Hessian-vector product by central finite differences.
        weights = jax.lax.stop_gradient(_weights(relaxation, alpha, mask, key, temperature))
        w_grad = jax.grad(loss)(params, weights, *batch_w)
        unrolled = jax.tree.map(lambda p, g: p - lr * g, params, w_grad)
        val, (d_alpha, d_w) = jax.value_and_grad(arch_loss, argnums=(0, 1))(
            alpha, unrolled, key, temperature, *batch_a)
        eps = 0.01 / (optax.tree.norm(d_w) + 1e-12)

        def train_alpha_grad(sign):
            shifted = jax.tree.map(lambda p, d: p + sign * eps * d, params, d_w)
            return jax.grad(lambda a: loss(
                shifted, _weights(relaxation, a, mask, key, temperature), *batch_w))(alpha)

        hessian = (train_alpha_grad(1.0) - train_alpha_grad(-1.0)) / (2 * eps)
        return val, d_alpha - lr * hessian

    def step(carry, inputs, x, y):
        params, opt_state, alpha, arch_state = carry
        t, key, iw, ia = inputs
        k_arch, k_weight = jax.random.split(key)
        temperature = first_temp + (last_temp - first_temp) * t / max(total - 1, 1)
        lr = schedule(t)
        batch_w, batch_a = (x[iw], y[iw]), (x[ia], y[ia])
        val, grad = arch_grad(alpha, params, k_arch, temperature, batch_a, batch_w, lr)
        grad = jnp.where(mask, grad, 0.0)
        updates, arch_state = arch_optimizer.update(grad, arch_state, alpha)
        alpha = jnp.where(mask, optax.apply_updates(alpha, updates), 0.0)
        weights = jax.lax.stop_gradient(_weights(relaxation, alpha, mask, k_weight, temperature))
        train_val, w_grad = jax.value_and_grad(loss)(params, weights, *batch_w)
        updates, opt_state = optimizer.update(w_grad, opt_state, params)
        params = optax.apply_updates(params, updates)
        return Carry(params, opt_state, alpha, arch_state), (train_val, val)

    def plan(key, first_epoch, weight_half, arch_half):
        k_steps, k_w, k_a = jax.random.split(key, 3)
        steps = epochs * per_epoch
        iw = weight_half[batch_indices(k_w, weight_half.shape[0], options.batch_size, steps)]
        ia = arch_half[batch_indices(k_a, arch_half.shape[0], options.batch_size, steps)]
        return (first_epoch * per_epoch + jnp.arange(steps), jax.random.split(k_steps, steps),
                iw, ia)

    cpu = jax.default_backend() == "cpu"

    def run_steps(carry, inputs, x, y):
        return jax.lax.scan(lambda c, i: step(c, i, x, y), Carry(*carry), inputs,
                            unroll=True if cpu else 1)

    def summary(carry):
        probs = probabilities(relaxation, carry.alpha, mask)
        genome = _genes_argmax(probs, mask)
        free = (free_of(genome) if free_of is not None else jnp.asarray(jnp.nan))
        return probs, genome, jnp.asarray(free, jnp.float32)

    if seeds:
        plan = jax.vmap(plan, in_axes=(0, None, None, None))
        run_steps = jax.vmap(run_steps, in_axes=(0, 0, None, None))
        summary = jax.vmap(summary)
    run_steps = jax.jit(run_steps, compiler_options=library_options(options.xla))
    return Advance(jax.jit(plan), run_steps, jax.jit(summary), per_epoch, epochs,
                   _chunk(per_epoch), seeds)


def draw(relaxation: Relaxation, alpha: jax.Array, space: Any, key: jax.Array,
         n: int) -> jax.Array:
    """``int32[n, G]`` architectures drawn from a learned distribution (jit-able): ``darts``
    and ``gdas`` draw each gene from its softmax; ``drnas`` draws a distribution from each
    gene's Dirichlet and takes its argmax (architectures from the posterior)."""
    mask = gene_mask(space)
    keys = jax.random.split(key, n)
    if relaxation.method == "drnas":
        one = lambda k: _genes_argmax(_weights(relaxation, alpha, mask, k, 1.0), mask)
    else:
        probs = probabilities(relaxation, alpha, mask)
        logits = jnp.log(jnp.where(mask, probs, 1e-30))
        one = lambda k: jax.random.categorical(k, logits, -1).astype(jnp.int32)
    return jax.vmap(one)(keys)


def argmax(relaxation: Relaxation, alpha: jax.Array, space: Any) -> jax.Array:
    """``int32[G]``: the most probable architecture of a learned distribution."""
    mask = gene_mask(space)
    return _genes_argmax(probabilities(relaxation, alpha, mask), mask)


def candidates(relaxation: Relaxation, alpha: np.ndarray, space: Any, key: jax.Array,
               k: int) -> np.ndarray:
    """The argmax of a learned distribution and up to ``k`` distinct samples from it (:func:`draw`),
    most probable first: ``int32[<= k + 1, G]``."""
    alpha = jnp.asarray(alpha, jnp.float32)
    best = np.asarray(argmax(relaxation, alpha, space))
    samples = np.asarray(draw(relaxation, alpha, space, key, 8 * max(k, 1)))
    log_p = np.log(np.maximum(np.asarray(
        probabilities(relaxation, alpha, gene_mask(space))), 1e-30))
    score = lambda g: float(np.sum(log_p[np.arange(len(g)), g]))
    out, seen = [best], {tuple(best.tolist())}
    for g in sorted(samples.tolist(), key=lambda g: -score(np.asarray(g))):
        if len(out) > k:
            break
        if tuple(g) not in seen:
            seen.add(tuple(g))
            out.append(np.asarray(g, np.int32))
    return np.stack(out).astype(np.int32)
