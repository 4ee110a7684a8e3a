"""Bayesian optimisation with a neural ensemble or a Hamming-kernel GP, BANANAS-style.

White, Neiswanger & Savani 2021, "BANANAS: Bayesian Optimization with Neural Architectures for
Neural Architecture Search", AAAI. The evaluated history lives in a fixed-size buffer of the
state (``history_size`` rows; when it is full the worst are dropped), so every shape is fixed and
a whole search is one compiled program. Each ``tell`` trains the surrogate on the buffer; each
``ask`` scores a candidate pool (single-gene mutations of the best genomes plus random samples)
with an acquisition and returns the best ``batch_size`` distinct candidates not in the buffer.

Surrogates (``surrogate=``):

* ``"ensemble"``: ``ensemble_size`` MLPs on the one-hot encoding of the genome (BANANAS' meta
  neural network, with the one-hot rather than the path encoding, so it works for any space),
  each trained with Adam on the standardised fitness of the buffer, warm-started from the last
  ``tell`` (``train_steps`` full-batch steps per ``tell``). Mean and spread over the members.
* ``"gp"``: a Gaussian process with the kernel ``exp(-theta * hamming(x, y) / G)``, ``theta``
  picked per ``ask`` by marginal likelihood over ``gp_thetas``; exact posterior by Cholesky.

Acquisitions (``acquisition=``): ``"its"``, independent Thompson sampling (one normal draw per
candidate from its predictive mean and spread; BANANAS' choice for batches), or ``"ucb"``,
mean + ``ucb_beta`` x spread. The first ``num_init`` genomes are random.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax
from flax import struct

from evonas import checks
from evonas.genomes.space import GenomeSpace
from evonas.operators import first_occurrence, mutate_one
from evonas.strategies import _categorical as cat
from evonas.strategies.base import State, StrategyBase

SURROGATES = ("ensemble", "gp")
ACQUISITIONS = ("its", "ucb")


@struct.dataclass
class BayesianOptimizationState(State):
    """The history buffer and the surrogate (and the base's best so far)."""

    history: jax.Array  # int32[H, G]
    scores: jax.Array  # float32[H], higher is better; -inf = failed or empty
    filled: jax.Array  # bool[H]
    ids: jax.Array  # int32[H], evaluation ids (order told)
    count: jax.Array  # int32, genomes told so far
    params: dict  # the ensemble's stacked MLP parameters (leading axis ensemble_size)
    opt_state: optax.OptState
    parents: jax.Array  # int32[batch_size]: the mutated genome's id, -1 for a random one


@dataclasses.dataclass(frozen=True)
class BayesianOptimization(StrategyBase):
    """Bayesian optimisation over genomes (module docstring).

    Args:
        space: the genome space.
        batch_size: genomes per ``ask``.
        surrogate: ``"ensemble"`` or ``"gp"``.
        acquisition: ``"its"`` or ``"ucb"``.
        ucb_beta: UCB's weight on the predictive spread (>= 0).
        num_init: random genomes before the surrogate is used.
        history_size: evaluated genomes the buffer keeps (the best, when full).
        ensemble_size: MLPs in the ensemble (>= 1; 1 gives no spread, so ITS = greedy).
        hidden: the MLPs' hidden widths.
        train_steps: Adam steps per ``tell`` (warm-started).
        learning_rate: Adam's step size.
        num_candidates: the acquisition's candidate pool per ``ask`` (>= batch_size).
        num_parents: best genomes whose single-gene mutants fill the pool.
        random_fraction: share of the pool that is random genomes, in [0, 1].
        gp_thetas: the GP kernel's candidate inverse length-scales.
        gp_noise: the GP's noise variance on the standardised fitness.
        maximize: whether higher fitness is better.
    """

    space: GenomeSpace
    batch_size: int = 10
    surrogate: str = "ensemble"
    acquisition: str = "its"
    ucb_beta: float = 1.0
    num_init: int = 10
    history_size: int = 256
    ensemble_size: int = 5
    hidden: tuple[int, ...] = (32, 32)
    train_steps: int = 50
    learning_rate: float = 0.01
    num_candidates: int = 100
    num_parents: int = 10
    random_fraction: float = 0.2
    gp_thetas: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0)
    gp_noise: float = 0.01
    maximize: bool = True

    def __post_init__(self):
        super().__post_init__()
        owner = "BayesianOptimization"
        checks.choice(f"{owner}.surrogate", self.surrogate, SURROGATES)
        checks.choice(f"{owner}.acquisition", self.acquisition, ACQUISITIONS)
        checks.number(f"{owner}.ucb_beta", self.ucb_beta, 0.0)
        checks.integer(f"{owner}.num_init", self.num_init, low=0)
        checks.positive_int(f"{owner}.history_size", self.history_size)
        checks.positive_int(f"{owner}.ensemble_size", self.ensemble_size)
        hidden = (self.hidden,) if isinstance(self.hidden, int) else self.hidden
        if not isinstance(hidden, (tuple, list)) or not hidden:
            raise ValueError(f"{owner}.hidden must be a list of positive layer widths; got "
                             f"{self.hidden!r}")
        object.__setattr__(self, "hidden", tuple(
            checks.positive_int(f"{owner}.hidden", w) for w in hidden))
        checks.integer(f"{owner}.train_steps", self.train_steps, low=0)
        checks.positive(f"{owner}.learning_rate", self.learning_rate)
        checks.integer(f"{owner}.num_candidates", self.num_candidates, low=self.batch_size)
        checks.positive_int(f"{owner}.num_parents", self.num_parents)
        checks.rate(f"{owner}.random_fraction", self.random_fraction)
        if isinstance(self.gp_thetas, (int, float)):
            object.__setattr__(self, "gp_thetas", (self.gp_thetas,))
        object.__setattr__(self, "gp_thetas", tuple(
            checks.positive(f"{owner}.gp_thetas", float(t)) for t in self.gp_thetas))
        if not self.gp_thetas:
            raise ValueError(f"{owner}.gp_thetas must list at least one positive number")
        checks.positive(f"{owner}.gp_noise", self.gp_noise)

    # -- the surrogate ---------------------------------------------------------------------

    @property
    def _optimizer(self) -> optax.GradientTransformation:
        return optax.adam(self.learning_rate)

    def init_params(self, key: jax.Array) -> dict:
        """The ensemble's stacked MLP parameters (He-normal weights, zero biases)."""
        sizes = (int(sum(self.space.cardinalities)), *self.hidden, 1)

        def one(key):
            layers = []
            for k, (fan_in, fan_out) in zip(jax.random.split(key, len(sizes) - 1),
                                            zip(sizes[:-1], sizes[1:])):
                w = jax.random.normal(k, (fan_in, fan_out)) * jnp.sqrt(2.0 / fan_in)
                layers.append({"w": w, "b": jnp.zeros((fan_out,))})
            return layers

        return jax.vmap(one)(jax.random.split(key, self.ensemble_size))

    @staticmethod
    def _mlp(layers, x: jax.Array) -> jax.Array:
        for layer in layers[:-1]:
            x = jax.nn.relu(x @ layer["w"] + layer["b"])
        return (x @ layers[-1]["w"] + layers[-1]["b"])[..., 0]

    @staticmethod
    def standardise(scores: jax.Array, valid: jax.Array) -> tuple[jax.Array, jax.Array,
                                                                  jax.Array]:
        """``(targets, mean, std)``: the valid scores standardised (0 elsewhere)."""
        n = jnp.maximum(valid.sum(), 1)
        mean = jnp.sum(jnp.where(valid, scores, 0.0)) / n
        var = jnp.sum(jnp.where(valid, (scores - mean) ** 2, 0.0)) / n
        std = jnp.sqrt(jnp.maximum(var, 1e-12))
        return jnp.where(valid, (scores - mean) / std, 0.0), mean, std

    def fit(self, params, opt_state, genomes: jax.Array, scores: jax.Array, valid: jax.Array):
        """``train_steps`` Adam steps of every member on the valid rows: ``(params,
        opt_state)``. ``scores`` are raw (standardised here)."""
        x = cat.features(genomes, self.space)
        y, _, _ = self.standardise(scores, valid)
        weight = valid / jnp.maximum(valid.sum(), 1)

        def loss(layers):
            return jnp.sum(weight * (self._mlp(layers, x) - y) ** 2)

        def step(carry, _):
            layers, state = carry
            grads = jax.grad(loss)(layers)
            updates, state = self._optimizer.update(grads, state, layers)
            return (optax.apply_updates(layers, updates), state), None

        def member(layers, state):
            return jax.lax.scan(step, (layers, state), None, length=self.train_steps)[0]

        return jax.vmap(member)(params, opt_state)

    def predict(self, state: BayesianOptimizationState, genomes: jax.Array
                ) -> tuple[jax.Array, jax.Array]:
        """The surrogate's ``(mean, spread)`` of ``genomes`` (``[C, G]``), on the standardised
        scale of the buffer's valid scores: ``float32[C]`` each."""
        valid = state.filled & jnp.isfinite(state.scores)
        if self.surrogate == "gp":
            return self._gp(state.history, state.scores, valid, genomes)
        preds = jax.vmap(self._mlp, in_axes=(0, None))(state.params,
                                                       cat.features(genomes, self.space))
        return preds.mean(0), preds.std(0)

    def _gp(self, history, scores, valid, genomes):
        y, _, _ = self.standardise(scores, valid)
        g = self.space.num_genes
        hamming = lambda a, b: jnp.sum(a[:, None, :] != b[None, :, :], axis=-1) / g
        d_hh, d_ch = hamming(history, history), hamming(genomes, history)
        both = valid[:, None] & valid[None, :]
        eye = jnp.eye(history.shape[0])

        def posterior(theta):
            k = jnp.where(both, jnp.exp(-theta * d_hh), 0.0)
            k = k + eye * jnp.where(valid, self.gp_noise, 1.0)
            chol = jnp.linalg.cholesky(k)
            alpha = jax.scipy.linalg.cho_solve((chol, True), y)
            lml = -0.5 * y @ alpha - jnp.sum(jnp.log(jnp.diag(chol)))
            cross = jnp.where(valid[None, :], jnp.exp(-theta * d_ch), 0.0)
            v = jax.scipy.linalg.solve_triangular(chol, cross.T, lower=True)
            var = jnp.maximum(1.0 - jnp.sum(v**2, axis=0), 1e-9)
            return lml, cross @ alpha, jnp.sqrt(var)

        lml, means, spreads = jax.vmap(posterior)(jnp.asarray(self.gp_thetas))
        best = jnp.argmax(jnp.where(jnp.isfinite(lml), lml, -jnp.inf))
        return means[best], spreads[best]

    # -- the protocol ----------------------------------------------------------------------

    def _init(self, key: jax.Array) -> BayesianOptimizationState:
        """An empty buffer and a freshly initialised ensemble."""
        h, g = self.history_size, self.space.num_genes
        params = self.init_params(key)
        return BayesianOptimizationState(
            **self.initial(), history=jnp.zeros((h, g), jnp.int32),
            scores=jnp.full((h,), -jnp.inf, jnp.float32),
            filled=jnp.zeros((h,), bool), ids=jnp.full((h,), -1, jnp.int32),
            count=jnp.int32(0), params=params,
            opt_state=jax.vmap(self._optimizer.init)(params),
            parents=jnp.full((self.batch_size,), -1, jnp.int32))

    def _ask(self, key: jax.Array, state: BayesianOptimizationState
             ) -> tuple[jax.Array, BayesianOptimizationState]:
        """The ``batch_size`` best candidates by the acquisition (random during warm-up)."""
        k_pool, k_mutate, k_random, k_its, k_warm = jax.random.split(key, 5)
        c = self.num_candidates
        n_random = int(round(self.random_fraction * c))
        n_mutants = c - n_random
        # Parents: the best of the buffer (a failed or empty slot gives a random candidate).
        top = jax.lax.top_k(state.scores, min(self.num_parents, self.history_size))[1]
        picks = top[jnp.arange(n_mutants) % top.shape[0]]
        mutants = mutate_one(k_mutate, state.history[picks], self.space)
        usable = jnp.isfinite(state.scores[picks])
        spare = self.space.sample(k_pool, n_mutants)
        mutants = jnp.where(usable[:, None], mutants, spare)
        pool = jnp.concatenate([mutants, self.space.sample(k_random, n_random)])
        pool_parents = jnp.concatenate([jnp.where(usable, state.ids[picks], -1),
                                        jnp.full((n_random,), -1, jnp.int32)])
        mean, spread = self.predict(state, pool)
        if self.acquisition == "its":
            value = mean + spread * jax.random.normal(k_its, mean.shape)
        else:
            value = mean + self.ucb_beta * spread
        # Never ask again what the buffer holds, nor the same candidate twice.
        seen = jnp.any(jnp.all(pool[:, None, :] == state.history[None], axis=-1)
                       & state.filled[None], axis=1)
        value = jnp.where(seen | ~first_occurrence(pool), -jnp.inf, value)
        chosen = jax.lax.top_k(value, self.batch_size)[1]
        genomes, parents = pool[chosen], pool_parents[chosen]
        warm = state.count + jnp.arange(self.batch_size) < self.num_init
        random = self.space.sample(k_warm, self.batch_size)
        genomes = jnp.where(warm[:, None], random, genomes)
        parents = jnp.where(warm, -1, parents).astype(jnp.int32)
        return genomes, state.replace(parents=parents)

    def _tell(self, key: jax.Array, genomes: jax.Array, scores: jax.Array,
              state: BayesianOptimizationState) -> BayesianOptimizationState:
        """Adds the genomes to the buffer (the worst leave when it is full), then trains the
        ensemble on it (the GP needs no training)."""
        ids = state.count + jnp.arange(self.batch_size, dtype=jnp.int32)
        history = jnp.concatenate([state.history, genomes])
        all_scores = jnp.concatenate([state.scores, scores])
        filled = jnp.concatenate([state.filled, jnp.ones((self.batch_size,), bool)])
        all_ids = jnp.concatenate([state.ids, ids])
        # Filled before empty, then by score, then the newer.
        order = jnp.lexsort((all_ids, all_scores, filled))[::-1][: self.history_size]
        state = state.replace(history=history[order], scores=all_scores[order],
                              filled=filled[order], ids=all_ids[order])
        if self.surrogate == "ensemble" and self.train_steps > 0:
            valid = state.filled & jnp.isfinite(state.scores)
            params, opt_state = self.fit(state.params, state.opt_state, state.history,
                                         state.scores, valid)
            state = state.replace(params=params, opt_state=opt_state)
        return state.replace(count=state.count + self.batch_size)
