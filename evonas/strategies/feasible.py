"""``Feasible``: a strategy wrapper that asks only for architectures inside the search's bounds on
analytic costs (parameters, multiply-adds), so no slot of a generation goes to an architecture
the search would refuse untrained.

Each genome the wrapped strategy asks for that breaks a bound is replaced by the first feasible
of ``tries`` of its single-gene mutants (near what the strategy wanted: an offspring stays near
its parent), else of ``tries`` fresh samples of the space (rejection sampling, as Once-for-All
samples its sub-networks inside a FLOPs budget). A genome without a feasible candidate is kept,
and fails as before, naming the bound. ``tell`` receives exactly what ``ask`` returned, as with
:class:`~evonas.strategies.Prefilter`: the wrapped strategy learns the genomes that were
evaluated.

Without it, a constrained search spends its first generation's slots on random architectures it
refuses (``benchmarks/fashion_mnist.py``, at most 12 M multiply-adds: 4 of 8 refused, in every
run). The costs are the encoding's analytic ``cost``, vmapped and jitted: no network is built or
trained to screen.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from evonas import checks
from evonas.genomes.encoding import cost_names
from evonas.objectives.constraints import Constraint, violation
from evonas.operators import mutate_one
from evonas.strategies.base import Wrapping, adapt


@dataclasses.dataclass(frozen=True, eq=False)
class Feasible(Wrapping):
    """Replaces the genomes ``inner`` asks for that break ``constraints`` on ``encoding``'s
    analytic costs (module docstring).

    Args:
        inner: the strategy.
        encoding: the encoding of the strategy's space (its ``cost`` and ``space``).
        constraints: the search's constraints; those on metrics the encoding's ``cost`` does not
            give (latency, accuracy, proxies) are left to the evaluator.
        tries: mutants, then samples, tried per infeasible genome (``>= 1``).

    Raises:
        ValueError: no constraint is on an analytic cost of ``encoding`` (nothing to screen), or
            ``tries`` below 1.
    """

    inner: Any
    encoding: Any
    constraints: Sequence[Constraint]
    tries: int = 16

    def __post_init__(self):
        object.__setattr__(self, "inner", adapt(self.inner))
        checks.integer("Feasible.tries", self.tries, low=1)
        names = cost_names(self.encoding)
        bounds = tuple(c for c in self.constraints if c.metric in names)
        if not bounds:
            have = ", ".join(f"{c.metric} {c.operator} {c.bound:g}" for c in self.constraints)
            raise ValueError(f"Feasible needs a constraint on an analytic cost ({', '.join(names)}"
                             f"); got {have or 'none'}")
        object.__setattr__(self, "constraints", bounds)
        cost = jax.vmap(self.encoding.cost)
        object.__setattr__(self, "_violation",
                           jax.jit(lambda g: violation(bounds, cost(g))))

    def ask(self, key: jax.Array, state: Any) -> tuple[jax.Array, Any]:
        """The inner strategy's ask (from ``key``), each infeasible genome replaced (candidates
        drawn from ``fold_in(key, 2)``). A genome replaced by a fresh sample has no parent: the
        state's ``parents`` (the lineage the history records) says -1 for it."""
        genomes, state = self.inner.ask(key, state)
        genomes, sampled = self._repair(jax.random.fold_in(key, 2), genomes)
        parents = getattr(state, "parents", None)
        if sampled.any() and parents is not None and hasattr(state, "replace"):
            held = np.array(parents).reshape(len(sampled), -1)
            held[sampled] = -1
            state = state.replace(parents=jnp.asarray(held.reshape(np.shape(parents)),
                                                      jnp.asarray(parents).dtype))
        return genomes, state

    def repair(self, key: jax.Array, genomes: jax.Array) -> jax.Array:
        """``genomes`` (``int32[B, G]``), each that breaks a bound replaced by the first
        feasible of its ``tries`` single-gene mutants, then of ``tries`` samples of the space;
        kept where none is feasible. Feasible genomes come back unchanged."""
        return self._repair(key, genomes)[0]

    def _repair(self, key: jax.Array, genomes: jax.Array) -> tuple[jax.Array, np.ndarray]:
        """:meth:`repair`'s genomes, and which of them are fresh samples of the space."""
        genomes = jnp.asarray(genomes, jnp.int32)
        size = genomes.shape[0]
        bad = np.asarray(self._violation(genomes)) > 0.0
        if not bad.any():
            return genomes, np.zeros(size, bool)
        k_mutate, k_sample = jax.random.split(key)
        space = self.encoding.space
        candidates = jnp.concatenate(
            [mutate_one(jax.random.fold_in(k_mutate, j), genomes, space)
             for j in range(self.tries)]
            + [space.sample(k_sample, self.tries * size)])
        ok = np.asarray(self._violation(candidates)).reshape(2 * self.tries, size) <= 0.0
        first = np.argmax(ok, axis=0)  # the first feasible candidate of each genome
        picked = np.asarray(candidates).reshape(2 * self.tries, size, -1)[first, np.arange(size)]
        replace = bad & ok.any(axis=0)
        repaired = np.where(replace[:, None], picked, np.asarray(genomes))
        return jnp.asarray(repaired, jnp.int32), replace & (first >= self.tries)
