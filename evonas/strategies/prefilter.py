"""``Prefilter``: a strategy wrapper that screens what its strategy asks for with a zero-cost proxy
before anything is evaluated.

Each genome the wrapped strategy asks for competes with ``factor - 1`` single-gene mutants of
itself; the best of them by the proxy (Mellor et al. 2021 and Abdelfattah et al. 2021 score
untrained networks in milliseconds) is asked in its place. ``tell`` receives exactly what ``ask``
returned, the screened genomes, and passes them on: the wrapped strategy learns the genomes that
were evaluated (the choice a strategy makes when it keeps what it is told: evolution's
population, Bayesian optimisation's history), and a strategy that learns from its own samples
(an evosax distribution, REINFORCE) learns the replacement's fitness for its sample.

Screening runs on the host (the proxies compile one program per encoding and train nothing): use
the wrapper in the experiment runner, not inside a whole search's ``jit``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from evonas import checks
from evonas.operators import mutate_one
from evonas.strategies.base import Wrapping, adapt
from evonas.train import ProgramCache
from evonas.train.proxies import check_proxies, zero_cost_scores


@dataclasses.dataclass(frozen=True, eq=False)
class Prefilter(Wrapping):
    """Screens the genomes ``inner`` asks for with the zero-cost ``proxy`` (module docstring).

    Args:
        inner: the strategy.
        encoding: a trainable encoding of the strategy's space.
        dataset: the ``evonas.data.Dataset`` whose training batch the proxy scores on.
        proxy: ``naswot``, ``synflow``, ``grad_norm`` or ``snip``.
        factor: candidates scored per genome asked (``>= 2``).
        cache: where the proxy's compiled program is kept between generations.
    """

    inner: Any
    encoding: Any
    dataset: Any
    proxy: str = "naswot"
    factor: int = 4
    cache: ProgramCache | None = None

    def __post_init__(self):
        object.__setattr__(self, "inner", adapt(self.inner))
        check_proxies("Prefilter.proxy", (self.proxy,), self.encoding)
        checks.integer("Prefilter.factor", self.factor, low=2)
        if self.cache is None:
            object.__setattr__(self, "cache", ProgramCache())

    def ask(self, key: jax.Array, state: Any) -> tuple[jax.Array, Any]:
        """The inner strategy's ask (from ``key``), each genome replaced by the best of itself
        and ``factor - 1`` of its single-gene mutants by the proxy (screened from
        ``fold_in(key, 1)``; ties: the asked genome)."""
        genomes, state = self.inner.ask(key, state)
        return self.screen(jax.random.fold_in(key, 1), genomes), state

    def screen(self, key: jax.Array, genomes: jax.Array) -> jax.Array:
        """``genomes`` (``int32[B, G]``) each replaced by the best of itself and ``factor - 1``
        of its mutants by the proxy."""
        genomes = jnp.asarray(genomes, jnp.int32)
        k_mutate, k_score = jax.random.split(key)
        space = self.encoding.space
        candidates = jnp.concatenate(
            [genomes] + [mutate_one(jax.random.fold_in(k_mutate, j), genomes, space)
                         for j in range(self.factor - 1)])
        scores = zero_cost_scores(k_score, self.encoding, np.asarray(candidates), self.dataset,
                                  (self.proxy,), cache=self.cache)[self.proxy]
        scores = np.where(np.isfinite(scores), scores, -np.inf).reshape(self.factor, -1)
        pick = np.argmax(scores, axis=0)  # ties: the asked genome (candidate 0) first
        return jnp.asarray(np.asarray(candidates).reshape(self.factor, *genomes.shape)[
            pick, np.arange(genomes.shape[0])])

    @property
    def estimate_prefix(self) -> str:
        """How a screened fitness is recorded: ``"naswot+"`` before the evaluator's estimate."""
        return f"{self.proxy}+"
