"""``Handoff``: one strategy for the first generations, then another that starts from what the
first learned.

The use it was made for: a differentiable search (DARTS, GDAS, DrNAS) learns a distribution over
each gene's choices from gradients in a few cheap generations, and an evolutionary search takes
over from it. At the handoff the second strategy starts from the first's distribution (its
state's ``probabilities``), by what it can use:

* a strategy that keeps a distribution itself (ASNG, PBIL, REINFORCE, DARTS, GDAS, DrNAS: it
  has the optional ``prior(state, probabilities)`` hook, :func:`evonas.strategies.with_prior`)
  takes it as its prior, each probability kept at least ``floor`` (mixed with the uniform
  distribution) so no value is ruled out;
* any other strategy's initial population is drawn from it: the genomes it asks for at random
  (no parent) in its first ``ceil(population_size / batch_size)`` generations are replaced by
  draws from the distribution, and it is told exactly those (evolution keeps what it is told).

The history and the report show both phases (``diagnostics``: the phase and the first's numbers),
so a run says how much the second phase added to the first.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from evonas import checks
from evonas.strategies import _categorical as cat
from evonas.strategies.base import State, adapt, no_best, told_best, with_prior


@struct.dataclass
class HandoffState(State):
    """Both strategies' states, the distribution handed over, and the best so far."""

    first: Any
    then: Any
    probabilities: jax.Array  # float32[G, K]: what the search believes (the phase's)
    parents: jax.Array  # int32[batch_size, ...]: the last asked genomes' parents


@dataclasses.dataclass(frozen=True, eq=False)
class Handoff:
    """``first`` for ``switch`` generations, then ``then`` (module docstring).

    Args:
        first: a strategy whose state has ``probabilities`` (``float32[G, K]``).
        then: any single-objective strategy of the same space and batch size.
        switch: generations of ``first`` (at least 1).
        floor: the smallest probability of a handed-over prior (mixed with the uniform).
    """

    first: Any
    then: Any
    switch: int = 3
    floor: float = 0.01

    def __post_init__(self):
        object.__setattr__(self, "first", adapt(self.first))
        object.__setattr__(self, "then", adapt(self.then))
        checks.positive_int("hybrid.first_generations", self.switch)
        checks.number("hybrid.floor", self.floor, 0.0, 1.0)
        if self.first.space != self.then.space:
            raise ValueError("hybrid: the two strategies search different spaces")
        if self.first.batch_size != self.then.batch_size:
            raise ValueError(f"hybrid: the first strategy asks {self.first.batch_size} genomes "
                             f"per generation and the second {self.then.batch_size}; set them "
                             "equal (search.population_size)")
        for which in (self.first, self.then):
            if not isinstance(which.maximize, bool):
                raise ValueError("hybrid: both strategies must be single-objective")
        if self.first.maximize != self.then.maximize:
            raise ValueError("hybrid: the two strategies optimise in different directions")
        if getattr(self.first, "bind", None) is None:  # a pure strategy: its state's shape
            self._check_distribution(jax.eval_shape(self.first.init, jax.random.key(0)))

    @staticmethod
    def _check_distribution(state: Any) -> None:
        if getattr(state, "probabilities", None) is None:
            raise ValueError("hybrid: the first strategy keeps no distribution (its state has "
                             "no probabilities) to hand over; use darts, gdas, drnas, asng, "
                             "pbil")

    @property
    def space(self) -> Any:
        return self.first.space

    @property
    def maximize(self) -> bool:
        return self.first.maximize

    @property
    def batch_size(self) -> int:
        return self.first.batch_size

    @property
    def estimate_prefix(self) -> str:
        return ""

    @property
    def seeded_generations(self) -> int:
        """Generations after the handoff whose random asks come from the distribution."""
        size = getattr(self.then, "population_size", self.batch_size)
        return max(1, math.ceil(int(size) / self.batch_size))

    def bind(self, generations: int | None = None, **context: Any) -> Handoff:
        """Binds each strategy that learns on the data (:func:`evonas.strategies.bind`) to its
        share of the generations: ``switch`` for the first, the rest for the second."""
        if generations is not None and generations <= self.switch:
            raise ValueError(f"hybrid: first_generations={self.switch} leaves nothing of "
                             f"search.generations={generations} to the second strategy")
        rest = None if generations is None else generations - self.switch
        evaluations = context.pop("evaluations", None)
        spent = self.switch * self.batch_size  # the first phase's rows
        if evaluations is not None and evaluations <= spent - self.batch_size:
            raise ValueError(f"hybrid: search.evaluations={evaluations} ends the search inside "
                             f"its first {self.switch} generations of {self.batch_size}")
        left = None if evaluations is None else evaluations - spent
        first = getattr(self.first, "bind", None)
        then = getattr(self.then, "bind", None)
        return dataclasses.replace(
            self,
            first=self.first if first is None else first(generations=self.switch, **context),
            then=self.then if then is None else then(generations=rest, evaluations=left,
                                                     **context))

    def init(self, key: jax.Array) -> HandoffState:
        k_first, k_then = jax.random.split(key)
        first = self.first.init(k_first)
        self._check_distribution(first)
        genome, fitness = no_best(self.space, self.maximize)
        return HandoffState(
            generation=jnp.int32(0), best_genome=genome, best_fitness=fitness, first=first,
            then=self.then.init(k_then), probabilities=jnp.asarray(first.probabilities),
            parents=jnp.full((self.batch_size,), -1, jnp.int32))

    def _phase(self, state: HandoffState) -> int:
        return 0 if int(state.generation) < self.switch else 1

    def floored(self, probabilities: jax.Array) -> jax.Array:
        """The handed-over distribution with each value's probability at least about
        ``floor`` (mixed with the uniform distribution)."""
        return jnp.asarray(cat.floored(jnp.asarray(probabilities), self.space, self.floor),
                           jnp.float32)

    def ask(self, key: jax.Array, state: HandoffState) -> tuple[jax.Array, HandoffState]:
        """The first strategy's ask, or the second's (seeded from the distribution)."""
        if self._phase(state) == 0:
            genomes, first = self.first.ask(key, state.first)
            parents = getattr(first, "parents", None)
            return genomes, state.replace(
                first=first, probabilities=jnp.asarray(first.probabilities),
                parents=self._parents(parents))
        then = state.then
        since = int(state.generation) - self.switch
        takes_prior = getattr(self.then, "prior", None) is not None
        if since == 0 and takes_prior:
            then = with_prior(self.then, then, self.floored(state.probabilities))
        genomes, then = self.then.ask(jax.random.fold_in(key, 0), then)
        parents = self._parents(getattr(then, "parents", None))
        if since < self.seeded_generations and not takes_prior:
            drawn = cat.sample(jax.random.fold_in(key, 1), self.floored(state.probabilities),
                               self.batch_size, self.space)
            orphan = jnp.all(parents.reshape(self.batch_size, -1) < 0, axis=1)
            genomes = jnp.where(orphan[:, None], drawn, genomes)
        believed = getattr(then, "probabilities", None)
        return genomes, state.replace(
            then=then, parents=parents,
            probabilities=state.probabilities if believed is None else jnp.asarray(believed))

    def _parents(self, parents: Any) -> jax.Array:
        if parents is None:
            return jnp.full((self.batch_size,), -1, jnp.int32)
        return jnp.asarray(parents, jnp.int32)

    def tell(self, key: jax.Array, genomes: jax.Array, fitness: jax.Array,
             state: HandoffState) -> HandoffState:
        """Tells the strategy of the phase exactly what was asked (and evaluated)."""
        if self._phase(state) == 0:
            state = state.replace(first=self.first.tell(key, genomes, fitness, state.first))
        else:
            state = state.replace(then=self.then.tell(key, genomes, fitness, state.then))
        best, best_fitness = told_best(self.maximize, state.best_genome, state.best_fitness,
                                       genomes, fitness)
        return state.replace(best_genome=best, best_fitness=best_fitness,
                             generation=state.generation + 1)

    def diagnostics(self, state: HandoffState) -> dict[str, float | None]:
        """The phase of the generation just told (0: the first strategy, 1: the second) and the
        first strategy's own diagnostics while it runs; the best fitness so far."""
        phase = 0 if int(state.generation) <= self.switch else 1
        out: dict[str, float | None] = {"phase": float(phase)}
        report = getattr(self.first, "diagnostics", None)
        if phase == 0 and report is not None:
            out.update(report(state.first))
        best = float(state.best_fitness)
        out["best_so_far"] = best if np.isfinite(best) else None
        return out
