"""Distribution-based search: a per-gene categorical distribution moved by the natural gradient of
expected fitness, plus an entropy term (a variational objective over architectures).

The search keeps ``theta[g, k]``, the probability that gene ``g`` takes value ``k``; each ``ask``
samples ``batch_size`` genomes from it, each ``tell`` moves it. The objective is

    J(theta) = E_theta[u(x)] + entropy_weight * H(theta),

``u`` the ranking-based utility of the batch (the best quarter ``+1/mu``, the worst ``-1/mu``), so
``theta`` is an approximate posterior over architectures that prefers the good ones without
collapsing faster than the evidence allows. Its natural gradient in the expectation parameters
is ``mean_b (u_b - mean u) (onehot(x_b) - theta)`` for the utility and
``-theta_k (log theta_k + H)`` for the entropy. Two updates:

* ``method="asng"``: adaptive stochastic natural gradient (Akimoto, Shirakawa, Yoshinari, Uchida,
  Saito & Nishida 2019, "Adaptive Stochastic Natural Gradient Method for One-Shot Neural
  Architecture Search", ICML): a step of length ``delta`` in the Fisher metric, with ``delta``
  adapted from the signal-to-noise ratio of accumulated steps (threshold ``alpha``).
* ``method="pbil"``: population-based incremental learning (Baluja 1994), the simplest case:
  ``theta += learning_rate * (mean onehot(best mu) - theta)``.

Each probability stays at least ``min_probability`` (ASNG's range restriction, default
``1 / (D (K - 1))`` over ``D`` genes with more than one value), so no value is ever ruled out.
The state's ``probabilities`` are "what the search believes", shown in the report.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from evonas import checks
from evonas.genomes.space import GenomeSpace
from evonas.strategies import _categorical as cat
from evonas.strategies.base import State, StrategyBase

METHODS = ("asng", "pbil")


@struct.dataclass
class DistributionState(State):
    """The distribution and ASNG's step-size adaptation (and the base's best so far)."""

    probabilities: jax.Array  # float32[G, K], rows sum to 1, 0 on padding
    delta_scale: jax.Array  # float32, ASNG's Delta: the step is delta / delta_scale
    accumulation: jax.Array  # float32[G, K], ASNG's s (free coordinates; 0 elsewhere)
    gamma: jax.Array  # float32, ASNG's normaliser of |s|^2
    parents: jax.Array  # int32[batch_size], always -1: samples have no parent


@dataclasses.dataclass(frozen=True)
class DistributionSearch(StrategyBase):
    """Natural-gradient search over a per-gene categorical distribution (module docstring).

    Args:
        space: the genome space.
        method: ``"asng"`` or ``"pbil"``.
        batch_size: genomes sampled per ``ask`` (ASNG's lambda; at least 2).
        learning_rate: PBIL's rate, in (0, 1].
        delta: ASNG's initial step length in the Fisher metric.
        alpha: ASNG's signal-to-noise threshold of the step-size adaptation.
        quantile: share of the batch that gets positive (and negative) utility.
        entropy_weight: weight of the entropy term, at least 0.
        min_probability: the floor of every probability (default ``1 / (D (K - 1))``).
        maximize: whether higher fitness is better.
    """

    space: GenomeSpace
    method: str = "asng"
    batch_size: int = 8
    learning_rate: float = 0.1
    delta: float = 1.0
    alpha: float = 1.5
    quantile: float = 0.25
    entropy_weight: float = 0.0
    min_probability: float | None = None
    maximize: bool = True

    def __post_init__(self):
        super().__post_init__()
        owner = type(self).__name__
        checks.choice(f"{owner}.method", self.method, METHODS)
        checks.integer(f"{owner}.batch_size", self.batch_size, low=2)
        checks.number(f"{owner}.learning_rate", self.learning_rate, 0.0, 1.0,
                      open_low=True)
        checks.positive(f"{owner}.delta", self.delta)
        checks.positive(f"{owner}.alpha", self.alpha)
        checks.number(f"{owner}.quantile", self.quantile, 0.0, 0.5, open_low=True)
        checks.number(f"{owner}.entropy_weight", self.entropy_weight, 0.0)
        if self.min_probability is not None:
            checks.number(f"{owner}.min_probability", self.min_probability, 0.0,
                          1.0 / max(self.space.cardinalities))

    @property
    def floor(self) -> np.ndarray:
        """``float32[G]``: each gene's probability floor (0 for a gene with one value)."""
        cards = np.asarray(self.space.cardinalities)
        if self.min_probability is not None:
            return np.where(cards > 1, self.min_probability, 0.0).astype(np.float32)
        free = max(int((cards > 1).sum()), 1)
        return np.where(cards > 1, 1.0 / (free * np.maximum(cards - 1, 1)), 0.0
                        ).astype(np.float32)

    def _init(self, key: jax.Array) -> DistributionState:
        """The uniform distribution (``key`` is unused)."""
        del key
        probabilities = jnp.asarray(cat.uniform(self.space))
        return DistributionState(
            **self.initial(), probabilities=probabilities, delta_scale=jnp.float32(1.0),
            accumulation=jnp.zeros_like(probabilities), gamma=jnp.float32(0.0),
            parents=jnp.full((self.batch_size,), -1, jnp.int32))

    def prior(self, state: DistributionState, probabilities: jax.Array) -> DistributionState:
        """``state`` starting from ``probabilities`` (``float32[G, K]``) instead of the
        uniform distribution (a warm start, a hand-over; the caller floors it)."""
        return state.replace(probabilities=jnp.asarray(probabilities, jnp.float32))

    def _ask(self, key: jax.Array, state: DistributionState
             ) -> tuple[jax.Array, DistributionState]:
        """``batch_size`` genomes drawn independently from the distribution."""
        return cat.sample(key, state.probabilities, self.batch_size, self.space), state

    def _tell(self, key: jax.Array, genomes: jax.Array, scores: jax.Array,
              state: DistributionState) -> DistributionState:
        """One natural-gradient step of the distribution (nothing moves when the whole batch
        ties: there is no evidence)."""
        theta = state.probabilities
        mask = jnp.asarray(cat.valid_mask(self.space))
        utility = cat.ranking_utility(scores, self.quantile)
        onehot = cat.one_hot(genomes, self.space)
        if self.method == "pbil":
            elite = jnp.maximum(utility, 0.0)  # the best mu, each 1/mu (ties share)
            target = jnp.einsum("b,bgk->gk", elite, onehot) / jnp.maximum(elite.sum(), 1e-12)
            step = self.learning_rate * (target - theta + self.entropy_weight
                                         * entropy_gradient(theta))
            new = _restrict(theta + step * mask, mask, self.floor)
            moved = utility.max() > utility.min()
            return state.replace(probabilities=jnp.where(moved, new, theta))
        return self._asng(state, utility, onehot, mask)

    def _asng(self, state: DistributionState, utility, onehot, mask) -> DistributionState:
        theta = state.probabilities
        cards = np.asarray(self.space.cardinalities)
        free_mask = jnp.asarray(np.arange(mask.shape[1])[None, :] < (cards - 1)[:, None])
        free = int((cards - 1).sum())
        centred = utility - utility.mean()
        gradient = jnp.einsum("b,bgk->gk", centred, onehot - theta[None]) / utility.shape[0]
        gradient = (gradient + self.entropy_weight * entropy_gradient(theta)) * mask
        # The gradient in Fisher-orthonormal coordinates (the last value of each gene is the
        # dependent one): s_k = g_k / sqrt(theta_k) + sqrt(theta_k) sum_free(g) / (t_K + sqrt t_K).
        last = jnp.take_along_axis(theta, jnp.asarray(cards - 1)[:, None], axis=1)
        summed = jnp.sum(gradient * free_mask, axis=1, keepdims=True)
        safe = jnp.where(free_mask, theta, 1.0)
        fisher = jnp.where(free_mask, gradient / jnp.sqrt(safe)
                           + jnp.sqrt(safe) * summed / (last + jnp.sqrt(last)), 0.0)
        norm = jnp.sqrt(jnp.sum(fisher**2))
        moved = (utility.max() > utility.min()) & (norm > 1e-18)
        norm = jnp.where(moved, norm, 1.0)
        delta = self.delta / state.delta_scale
        beta = delta / math.sqrt(max(free, 1))
        new = _restrict(theta + delta * gradient / norm, mask, self.floor)
        accumulation = ((1 - beta) * state.accumulation
                        + jnp.sqrt(beta * (2 - beta)) * fisher / norm)
        gamma = (1 - beta) ** 2 * state.gamma + beta * (2 - beta)
        scale = state.delta_scale * jnp.exp(beta * (gamma - jnp.sum(accumulation**2)
                                                    / self.alpha))
        pick = lambda a, b: jnp.where(moved, a, b)
        return state.replace(probabilities=pick(new, theta),
                             accumulation=pick(accumulation, state.accumulation),
                             gamma=pick(gamma, state.gamma),
                             delta_scale=pick(scale, state.delta_scale))


def entropy_gradient(theta: jax.Array) -> jax.Array:
    """The natural gradient of each gene's entropy in the expectation parameters:
    ``-theta_k (log theta_k + H)`` (0 on padding; sums to 0 per gene)."""
    h = cat.entropy(theta)[:, None]
    return jnp.where(theta > 0, -theta * (jnp.log(jnp.where(theta > 0, theta, 1.0)) + h), 0.0)


def _restrict(theta: jax.Array, mask: jax.Array, floor: np.ndarray) -> jax.Array:
    """Every valid probability at least its gene's ``floor``, rows summing to 1: values above
    the floor give up mass in proportion to their excess (ASNG's range restriction)."""
    low = jnp.asarray(floor)[:, None]
    theta = jnp.where(mask, jnp.maximum(theta, low), 0.0)
    total = theta.sum(1, keepdims=True)
    excess = jnp.where(mask, theta - low, 0.0)
    spare = jnp.maximum(excess.sum(1, keepdims=True), 1e-12)
    theta = theta - (total - 1.0) * excess / spare
    theta = jnp.where(mask, jnp.maximum(theta, 0.0), 0.0)
    return theta / theta.sum(1, keepdims=True)
