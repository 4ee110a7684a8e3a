"""Reinforcement-learning searches: REINFORCE over a factorised policy, and tabular Q-learning
over gene-by-gene decisions.

* :class:`Reinforce` (Williams 1992, "Simple Statistical Gradient-Following Algorithms for
  Connectionist Reinforcement Learning"; the NAS-Bench-201 paper's REINFORCE baseline): a
  categorical policy per gene (logits ``[G, K]``), each asked genome one action sequence, the
  reward its fitness, the advantage the reward minus an exponential moving average of past
  rewards, and an Adam step on ``-mean(advantage * log pi(x))`` (plus an optional entropy
  bonus).
* :class:`QLearning` (Baker, Gupta, Naik & Raskar 2017, "Designing Neural Network Architectures
  using Reinforcement Learning", ICLR; MetaQNN): an agent chooses the genes in order, the state
  being the gene's position and the value chosen for the previous gene; the reward, the fitness,
  comes after the last choice. Epsilon-greedy exploration with epsilon decaying linearly, and
  experience replay: every ``tell`` replays ``replay_batch`` earlier genomes from a fixed-size
  memory (with the new ones) through the one-step Q update, last gene first.

A failed evaluation (NaN) earns the worst reward seen so far, so it is learned as bad.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax
from flax import struct

from evonas import checks
from evonas.genomes.space import GenomeSpace
from evonas.strategies import _categorical as cat
from evonas.strategies.base import State, StrategyBase


def _rewards(scores: jax.Array, worst: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Scores with ``-inf`` (failed) replaced by the worst finite reward seen so far (this
    batch's included); returns ``(rewards, worst)``."""
    finite = jnp.isfinite(scores)
    worst = jnp.minimum(worst, jnp.min(jnp.where(finite, scores, jnp.inf)))
    fill = jnp.where(jnp.isfinite(worst), worst, 0.0)
    return jnp.where(finite, scores, fill), worst


# -- REINFORCE ---------------------------------------------------------------------------------


@struct.dataclass
class ReinforceState(State):
    """The policy, its optimiser state and the reward baseline (and the base's best so far)."""

    logits: jax.Array  # float32[G, K] (padding ignored)
    opt_state: optax.OptState
    baseline: jax.Array  # float32, moving average of rewards (NaN before the first tell)
    worst: jax.Array  # float32, the worst finite reward seen (+inf before any)
    parents: jax.Array  # int32[batch_size], always -1

    @property
    def probabilities(self) -> jax.Array:
        """``float32[G, K]``: the policy's per-gene distribution."""
        return jax.nn.softmax(self.logits, axis=-1)


@dataclasses.dataclass(frozen=True)
class Reinforce(StrategyBase):
    """REINFORCE with a moving-average baseline over a factorised categorical policy.

    Args:
        space: the genome space.
        batch_size: genomes (episodes) per ``ask``.
        learning_rate: Adam's step size on the logits.
        baseline_decay: the moving average's momentum, in [0, 1).
        entropy_weight: weight of the policy's entropy in the objective (exploration), >= 0.
        maximize: whether higher fitness is better.
    """

    space: GenomeSpace
    batch_size: int = 8
    learning_rate: float = 0.05
    baseline_decay: float = 0.9
    entropy_weight: float = 0.0
    maximize: bool = True

    def __post_init__(self):
        super().__post_init__()
        owner = "Reinforce"
        checks.positive(f"{owner}.learning_rate", self.learning_rate)
        checks.number(f"{owner}.baseline_decay", self.baseline_decay, 0.0, 1.0, open_high=True)
        checks.number(f"{owner}.entropy_weight", self.entropy_weight, 0.0)

    @property
    def _optimizer(self) -> optax.GradientTransformation:
        return optax.adam(self.learning_rate)

    def prior(self, state: ReinforceState, probabilities: jax.Array) -> ReinforceState:
        """``state`` whose policy starts at ``probabilities`` (``float32[G, K]``; a warm start,
        a hand-over): the logits are their logarithms (padding stays unreachable)."""
        p = jnp.asarray(probabilities, jnp.float32)
        return state.replace(logits=jnp.where(p > 0, jnp.log(jnp.maximum(p, 1e-12)),
                                              state.logits))

    def _init(self, key: jax.Array) -> ReinforceState:
        """The uniform policy (``key`` is unused)."""
        del key
        logits = cat.masked_logits(jnp.zeros(cat.valid_mask(self.space).shape), self.space)
        return ReinforceState(
            **self.initial(), logits=logits,
            opt_state=self._optimizer.init(jnp.zeros_like(logits)),
            baseline=jnp.float32(jnp.nan), worst=jnp.float32(jnp.inf),
            parents=jnp.full((self.batch_size,), -1, jnp.int32))

    def _ask(self, key: jax.Array, state: ReinforceState) -> tuple[jax.Array, ReinforceState]:
        """``batch_size`` genomes sampled from the policy."""
        genomes = jax.random.categorical(key, state.logits,
                                         shape=(self.batch_size, self.space.num_genes))
        return genomes.astype(jnp.int32), state

    def _tell(self, key: jax.Array, genomes: jax.Array, scores: jax.Array,
              state: ReinforceState) -> ReinforceState:
        """One policy-gradient step with advantage = reward - baseline (the baseline before
        this batch; the first batch is its own baseline), then the baseline moves."""
        rewards, worst = _rewards(scores, state.worst)
        baseline = jnp.where(jnp.isnan(state.baseline), rewards.mean(), state.baseline)
        advantage = rewards - baseline
        mask = jnp.asarray(cat.valid_mask(self.space))

        def loss(logits):
            logp = jax.nn.log_softmax(jnp.where(mask, logits, -jnp.inf), axis=-1)
            picked = jnp.take_along_axis(logp[None], genomes[..., None], axis=-1)[..., 0]
            probs = jnp.exp(logp)
            entropy = -jnp.sum(jnp.where(mask, probs * jnp.where(mask, logp, 0.0), 0.0))
            return -jnp.mean(advantage * picked.sum(-1)) - self.entropy_weight * entropy

        finite_logits = jnp.where(mask, state.logits, 0.0)
        grads = jnp.where(mask, jax.grad(loss)(finite_logits), 0.0)
        updates, opt_state = self._optimizer.update(grads, state.opt_state, finite_logits)
        logits = jnp.where(mask, optax.apply_updates(finite_logits, updates), -jnp.inf)
        decay = self.baseline_decay
        return state.replace(
            logits=logits, opt_state=opt_state,
            baseline=decay * baseline + (1 - decay) * rewards.mean(), worst=worst)


# -- Q-learning --------------------------------------------------------------------------------


@struct.dataclass
class QLearningState(State):
    """The Q table and the replay memory (and the base's best so far)."""

    q: jax.Array  # float32[G, K, K]: q[i, previous value, value of gene i] (previous 0 at i=0)
    memory: jax.Array  # int32[R, G], genomes told so far (a ring buffer)
    memory_rewards: jax.Array  # float32[R]
    count: jax.Array  # int32, genomes told so far
    worst: jax.Array  # float32
    parents: jax.Array  # int32[batch_size], always -1


@dataclasses.dataclass(frozen=True)
class QLearning(StrategyBase):
    """MetaQNN-style tabular Q-learning over gene-by-gene choices (module docstring).

    Args:
        space: the genome space.
        batch_size: genomes (episodes) per ``ask``.
        learning_rate: the Q update's step ``alpha``, in (0, 1].
        discount: ``gamma``, in [0, 1] (MetaQNN: 1, the reward comes at the end).
        epsilon_start, epsilon_end: exploration's first and last probability of a random choice.
        epsilon_generations: generations over which epsilon decays linearly.
        memory_size: genomes the replay memory keeps (the most recent).
        replay_batch: remembered genomes replayed per ``tell``.
        maximize: whether higher fitness is better.
    """

    space: GenomeSpace
    batch_size: int = 8
    learning_rate: float = 0.1
    discount: float = 1.0
    epsilon_start: float = 1.0
    epsilon_end: float = 0.1
    epsilon_generations: int = 50
    memory_size: int = 512
    replay_batch: int = 32
    maximize: bool = True

    def __post_init__(self):
        super().__post_init__()
        owner = "QLearning"
        checks.number(f"{owner}.learning_rate", self.learning_rate, 0.0, 1.0, open_low=True)
        checks.number(f"{owner}.discount", self.discount, 0.0, 1.0)
        checks.rate(f"{owner}.epsilon_start", self.epsilon_start)
        checks.rate(f"{owner}.epsilon_end", self.epsilon_end)
        checks.positive_int(f"{owner}.epsilon_generations", self.epsilon_generations)
        checks.positive_int(f"{owner}.memory_size", self.memory_size)
        checks.integer(f"{owner}.replay_batch", self.replay_batch, low=0)

    def epsilon(self, generation: jax.Array) -> jax.Array:
        """Exploration probability at ``generation`` (linear decay, then constant)."""
        t = jnp.minimum(generation / self.epsilon_generations, 1.0)
        return self.epsilon_start + t * (self.epsilon_end - self.epsilon_start)

    def _init(self, key: jax.Array) -> QLearningState:
        """A zero Q table and an empty memory (``key`` is unused)."""
        del key
        g, k = cat.valid_mask(self.space).shape
        return QLearningState(
            **self.initial(), q=jnp.zeros((g, k, k), jnp.float32),
            memory=jnp.zeros((self.memory_size, g), jnp.int32),
            memory_rewards=jnp.zeros((self.memory_size,), jnp.float32), count=jnp.int32(0),
            worst=jnp.float32(jnp.inf), parents=jnp.full((self.batch_size,), -1, jnp.int32))

    def _ask(self, key: jax.Array, state: QLearningState) -> tuple[jax.Array, QLearningState]:
        """``batch_size`` episodes: each gene epsilon-greedy given the previous gene's value
        (ties among the best values broken at random)."""
        mask = jnp.asarray(cat.valid_mask(self.space))
        epsilon = self.epsilon(state.generation)
        keys = jax.random.split(key, self.space.num_genes)

        def choose(previous, inputs):
            i, k = inputs
            k_explore, k_random, k_tie = jax.random.split(k, 3)
            q = state.q[i, previous]  # [B, K]
            q = q + 1e-6 * jax.random.uniform(k_tie, q.shape)  # random tie-break
            greedy = jnp.argmax(jnp.where(mask[i], q, -jnp.inf), axis=-1)
            random = jax.random.categorical(
                k_random, jnp.where(mask[i], 0.0, -jnp.inf), shape=(self.batch_size,))
            explore = jax.random.uniform(k_explore, (self.batch_size,)) < epsilon
            value = jnp.where(explore, random, greedy).astype(jnp.int32)
            return value, value

        first = jnp.zeros((self.batch_size,), jnp.int32)
        _, genes = jax.lax.scan(choose, first, (jnp.arange(self.space.num_genes), keys))
        return genes.T, state

    def _tell(self, key: jax.Array, genomes: jax.Array, scores: jax.Array,
              state: QLearningState) -> QLearningState:
        """Stores the episodes, then updates Q over them and ``replay_batch`` remembered ones,
        drawn uniformly from the memory with ``key`` (the tell's key: replay differs from seed
        to seed, and is the same for the same seed)."""
        rewards, worst = _rewards(scores, state.worst)
        # Before the first update the table starts at the mean reward: no value looks better
        # than another before it was tried.
        q = jnp.where(state.count == 0, rewards.mean(), state.q)
        filled = jnp.minimum(state.count, self.memory_size)
        replay = jax.random.randint(key, (self.replay_batch,), 0, jnp.maximum(filled, 1))
        use = jnp.arange(self.replay_batch) < filled
        episodes = jnp.concatenate([state.memory[replay], genomes])
        episode_rewards = jnp.concatenate([state.memory_rewards[replay], rewards])
        active = jnp.concatenate([use, jnp.ones((self.batch_size,), bool)])
        mask = jnp.asarray(cat.valid_mask(self.space))
        g = self.space.num_genes

        def episode(q, inputs):
            genes, reward, on = inputs
            previous = jnp.concatenate([jnp.zeros((1,), jnp.int32), genes[:-1]])

            def step(q, i):  # last gene first, as MetaQNN replays
                nxt = jnp.minimum(i + 1, g - 1)
                future = jnp.max(jnp.where(mask[nxt], q[nxt, genes[i]], -jnp.inf))
                target = jnp.where(i == g - 1, reward, self.discount * future)
                old = q[i, previous[i], genes[i]]
                new = old + self.learning_rate * (target - old)
                return q.at[i, previous[i], genes[i]].set(jnp.where(on, new, old)), None

            return jax.lax.scan(step, q, jnp.arange(g - 1, -1, -1))[0], None

        q, _ = jax.lax.scan(episode, q, (episodes, episode_rewards, active))
        slots = (state.count + jnp.arange(self.batch_size)) % self.memory_size
        keep = min(self.batch_size, self.memory_size)
        return state.replace(
            q=q, memory=state.memory.at[slots[-keep:]].set(genomes[-keep:]),
            memory_rewards=state.memory_rewards.at[slots[-keep:]].set(rewards[-keep:]),
            count=state.count + self.batch_size, worst=worst)
