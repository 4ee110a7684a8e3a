"""Differentiable search as a strategy: DARTS, GDAS and DrNAS in the experiment's generations.

``RelaxedSearch`` learns a distribution over each categorical gene's choices by gradient on the
encoding's relaxed supernet (:mod:`evonas.train.differentiable`). Each ``ask`` runs the next
``epochs_per_generation`` epochs of the search (one compiled program, the same for every
generation) and returns the argmax of what it has learned and ``batch_size - 1`` architectures
drawn from it; the experiment evaluates them like any strategy's (trained, looked up, scored)
and the final stage retrains, ensembles, distils, prunes and exports the best of them unchanged.
The learned distribution is the state's ``probabilities`` (kept in the history per generation
and shown as what the search believes); :meth:`RelaxedSearch.diagnostics` adds the share of
parameter-free choices in the argmax (a collapsing DARTS ends with cells of skips) and the two
losses.

The search needs the encoding's supernet and the data, which a strategy built from its space
alone lacks: the registry builds it unbound and :meth:`RelaxedSearch.bind` (the experiment
calls it, through :func:`evonas.strategies.bind`) gives it the encoding, the dataset, the
training settings and the number of generations, which fix the schedules' length. Its ``ask``
runs on the host (it calls the compiled search with the data as arguments): use it in the
experiment runner, not inside a whole search's ``jit``.

The state holds the supernet's weights and both optimisers' states, so a checkpointed
generation resumes the search exactly where it stopped.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from evonas import checks
from evonas.genomes.space import GenomeSpace
from evonas.strategies import _categorical as cat
from evonas.strategies.base import State, no_best, told_best
from evonas.train import ProgramCache
from evonas.train.config import TrainConfig
from evonas.train.differentiable import (
    Carry,
    Relaxation,
    advance_program,
    alpha_for,
    check_relaxable,
    draw,
    gene_mask,
    halves,
    probabilities,
    start,
)


@struct.dataclass
class RelaxedState(State):
    """The search's carry, where it is, and what it learned (and the base's best so far)."""

    params: Any  # the supernet's weights (max-bounds layout)
    opt_state: Any
    alpha: jax.Array  # float32[G, K]: the architecture parameters
    arch_state: Any
    epoch: jax.Array  # int32: epochs run
    probabilities: jax.Array  # float32[G, K]: the learned distribution (0 on padding)
    parameter_free: jax.Array  # float32: share of parameter-free choices in the argmax
    train_loss: jax.Array  # float32: mean weight-step loss of the last generation's epochs
    val_loss: jax.Array  # float32: mean architecture-step loss of the same
    parents: jax.Array  # int32[batch_size], -1: drawn, not bred


@dataclasses.dataclass(frozen=True)
class Bound:
    """What :meth:`RelaxedSearch.bind` gives a search: the data's arrays on device, the two
    halves of the training split, the compiled advance and the steps per epoch."""

    encoding: Any
    dataset: Any
    train: TrainConfig
    x: jax.Array
    y: jax.Array
    weight_half: jax.Array
    arch_half: jax.Array
    per_epoch: int
    program: Any


@dataclasses.dataclass(frozen=True, eq=False)
class RelaxedSearch:
    """A differentiable search over ``space`` (module docstring).

    Args:
        space: the genome space (the encoding's).
        relaxation: the method and its settings; its ``epochs`` are set by :meth:`bind` to
            ``generations * epochs_per_generation``.
        batch_size: architectures per ``ask``: the argmax and ``batch_size - 1`` drawn.
        epochs_per_generation: epochs of the search before each ``ask`` returns.
        maximize: the fitness direction (for the best so far).
        bound: set by :meth:`bind`.
    """

    space: GenomeSpace
    relaxation: Relaxation
    batch_size: int = 8
    epochs_per_generation: int = 1
    maximize: bool = True
    bound: Bound | None = None

    def __post_init__(self):
        checks.positive_int(f"{self.relaxation.method}.batch_size", self.batch_size)
        checks.positive_int(f"{self.relaxation.method}.epochs_per_generation",
                            self.epochs_per_generation)
        if not isinstance(self.maximize, bool):
            raise ValueError(f"{self.relaxation.method} optimises one objective; got maximize="
                             f"{self.maximize!r}")

    @property
    def estimate_prefix(self) -> str:
        return ""

    def bind(self, encoding: Any, dataset: Any, train: TrainConfig, generations: int | None,
             cache: ProgramCache | None = None, key: jax.Array | None = None,
             evaluations: int | None = None) -> RelaxedSearch:
        """This search on ``encoding``'s supernet and ``dataset``, over ``generations``.

        Args:
            encoding: a trainable encoding with the ``relax`` hook, of this search's space.
            dataset: the data (its training split is halved for weights and architecture).
            train: the weights' optimiser, learning rate, schedule and batch size.
            generations: the search's generations (they fix the schedules' length).
            cache: where the compiled search is kept.
            key: the key of the halves' permutation (default ``key(0)``).
            evaluations: the search's budget of history rows (``batch_size`` per generation),
                if any.

        Raises:
            ValueError: one line: no encoding or data (a tabular experiment), no ``relax``
                hook or categorical gene, unknown generations, an evaluation budget that ends
                the search before its epochs, halves smaller than a batch.
        """
        method = self.relaxation.method
        if encoding is None or dataset is None:
            raise ValueError(f"strategy {method!r} trains the encoding's supernet on the data: "
                             "it needs a trainable encoding and a dataset, not a table")
        check_relaxable(encoding)
        if encoding.space != self.space:
            raise ValueError(f"strategy {method!r} was built for another space than the "
                             f"encoding {getattr(encoding, 'name', encoding)!r}'s")
        if generations is None:
            raise ValueError(f"strategy {method!r} spreads its epochs over the generations: "
                             "set search.generations (its schedules run over them)")
        done = None if evaluations is None else -(-int(evaluations) // self.batch_size)
        if done is not None and done < generations:  # the runner stops at the budget's rows
            raise ValueError(
                f"strategy {method!r} plans {generations} generations x "
                f"{self.epochs_per_generation} epochs, but search.evaluations={evaluations} "
                f"stops it after {done} generation{'s' if done != 1 else ''} of "
                f"{self.batch_size}, before its schedules end: set search.evaluations to at "
                f"least {(generations - 1) * self.batch_size + 1} or lower search.generations")
        relaxation = dataclasses.replace(
            self.relaxation, epochs=int(generations) * self.epochs_per_generation)
        weight_half, arch_half = halves(jax.random.key(0) if key is None else key, dataset,
                                        train.batch_size)
        per_epoch = len(weight_half) // train.batch_size
        program = advance_program(encoding, relaxation, train, per_epoch,
                                  self.epochs_per_generation, cache)
        bound = Bound(encoding, dataset, train, jnp.asarray(dataset.x_train),
                      jnp.asarray(dataset.y_train), jnp.asarray(weight_half),
                      jnp.asarray(arch_half), per_epoch, program)
        return dataclasses.replace(self, relaxation=relaxation, bound=bound)

    def _bound(self) -> Bound:
        if self.bound is None:
            raise ValueError(f"strategy {self.relaxation.method!r} is not bound to an encoding "
                             "and data: call .bind(encoding, dataset, train, generations) "
                             "(an Experiment does)")
        return self.bound

    def init(self, key: jax.Array) -> RelaxedState:
        """The supernet's initial weights from ``key``, a uniform distribution."""
        bound = self._bound()
        carry = start(key, bound.encoding, bound.dataset, self.relaxation, bound.train)
        genome, fitness = no_best(self.space, self.maximize)
        uniform = jnp.asarray(cat.uniform(self.space))
        nan = jnp.float32(jnp.nan)
        return RelaxedState(
            generation=jnp.int32(0), best_genome=genome, best_fitness=fitness,
            params=carry.params, opt_state=carry.opt_state, alpha=carry.alpha,
            arch_state=carry.arch_state, epoch=jnp.int32(0), probabilities=uniform,
            parameter_free=nan, train_loss=nan, val_loss=nan,
            parents=jnp.full((self.batch_size,), -1, jnp.int32))

    def ask(self, key: jax.Array, state: RelaxedState) -> tuple[jax.Array, RelaxedState]:
        """The next ``epochs_per_generation`` epochs of the search (from ``fold_in(key, 0)``),
        then the argmax and ``batch_size - 1`` architectures drawn (from ``fold_in(key, 1)``).

        Raises:
            ValueError: the search already ran every epoch its schedules planned, or its
                supernet's training diverged (a loss or an architecture parameter not finite).
        """
        bound = self._bound()
        if int(state.epoch) >= self.relaxation.epochs:
            raise ValueError(f"strategy {self.relaxation.method!r} ran its "
                             f"{self.relaxation.epochs} epochs: more generations than it was "
                             "bound to")
        carry = Carry(state.params, state.opt_state, state.alpha, state.arch_state)
        carry, epochs = bound.program(carry, jax.random.fold_in(key, 0), state.epoch, bound.x,
                                      bound.y, bound.weight_half, bound.arch_half)
        finite = [bool(jnp.all(jnp.isfinite(v))) for v in (epochs.train_loss, carry.alpha)]
        if not all(finite):
            first, last = int(state.epoch) + 1, int(state.epoch) + self.epochs_per_generation
            raise ValueError(
                f"strategy {self.relaxation.method!r}: the supernet's training diverged in "
                f"epochs {first}-{last} (its {'loss' if not finite[0] else 'architecture'} "
                "became NaN or infinite); the generations before are kept: lower "
                "train.learning_rate or strategy.params.arch_learning_rate and start again")
        drawn = draw(self.relaxation, carry.alpha, self.space, jax.random.fold_in(key, 1),
                     self.batch_size - 1)
        genomes = jnp.concatenate([epochs.argmax[-1:], drawn]).astype(jnp.int32)
        return genomes, state.replace(
            params=carry.params, opt_state=carry.opt_state, alpha=carry.alpha,
            arch_state=carry.arch_state, epoch=state.epoch + self.epochs_per_generation,
            probabilities=epochs.probabilities[-1], parameter_free=epochs.parameter_free[-1],
            train_loss=jnp.mean(epochs.train_loss), val_loss=jnp.mean(epochs.val_loss))

    def prior(self, state: RelaxedState, target: jax.Array) -> RelaxedState:
        """``state`` whose architecture parameters start at the distribution ``target``
        (``float32[G, K]``; a warm start): see :func:`~evonas.train.differentiable.alpha_for`.
        The supernet's weights start as they were."""
        mask = gene_mask(self.space)
        alpha = alpha_for(self.relaxation, target, mask)
        return state.replace(alpha=alpha,
                             probabilities=probabilities(self.relaxation, alpha, mask))

    def tell(self, key: jax.Array, genomes: jax.Array, fitness: jax.Array,
             state: RelaxedState) -> RelaxedState:
        """Keeps the best so far (the search learns from its gradients, not from fitness)."""
        del key
        best, best_fitness = _told_best(self.maximize, state.best_genome, state.best_fitness,
                                        genomes, fitness)
        return state.replace(best_genome=best, best_fitness=best_fitness,
                             generation=state.generation + 1)

    def diagnostics(self, state: RelaxedState) -> dict[str, float | None]:
        """Per generation, for the history and the report: the epochs run, the share of
        parameter-free choices in the argmax (None where the encoding can't say) and the
        mean losses of the generation's weight and architecture steps."""
        value = lambda x: None if not np.isfinite(float(x)) else float(x)
        return {"epoch": float(state.epoch), "parameter_free": value(state.parameter_free),
                "train_loss": value(state.train_loss), "arch_loss": value(state.val_loss)}


_told_best = jax.jit(told_best, static_argnums=0)


def relaxed(space: GenomeSpace, method: str = "darts", batch_size: int = 8,
            epochs_per_generation: int = 1, order: int = 1, arch_learning_rate: float = 3e-4,
            arch_weight_decay: float = 1e-3, temperature: tuple[float, float] = (10.0, 0.1),
            anchor: str = "l2", anchor_weight: float = 1e-3, prior: float = 1.0,
            maximize: bool = True) -> RelaxedSearch:
    """An unbound :class:`RelaxedSearch` (how the registry and a config build one): the
    method's settings are :class:`~evonas.train.differentiable.Relaxation`'s, checked here."""
    relaxation = Relaxation(method=method, epochs=1, order=order,
                            arch_learning_rate=arch_learning_rate,
                            arch_weight_decay=arch_weight_decay, temperature=temperature,
                            anchor=anchor, anchor_weight=anchor_weight, prior=prior)
    return RelaxedSearch(space, relaxation, batch_size=batch_size,
                         epochs_per_generation=epochs_per_generation, maximize=maximize)
