"""The model-based, reinforcement, distribution-based, grid and local searches: fixed state
shapes (one compile), hand-computed updates, exhaustive grids, a predictor that learns."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import evonas
from evonas.genomes import GenomeSpace
from evonas.strategies import (
    BayesianOptimization,
    DistributionSearch,
    GridSearch,
    LocalSearch,
    QLearning,
    Reinforce,
    beliefs,
)
from evonas.strategies import _categorical as cat

SPACE = GenomeSpace(("a", "b", "c"), (3, 2, 4))

FAMILIES = {
    "bayesian_optimization": BayesianOptimization(SPACE, batch_size=4, history_size=8,
                                                  num_init=4, train_steps=2, num_candidates=8),
    "bayesian_optimization_gp": BayesianOptimization(SPACE, batch_size=4, history_size=8,
                                                     surrogate="gp", num_candidates=8),
    "reinforce": Reinforce(SPACE, batch_size=4),
    "q_learning": QLearning(SPACE, batch_size=4, memory_size=8, replay_batch=4),
    "asng": DistributionSearch(SPACE, method="asng", batch_size=4),
    "pbil": DistributionSearch(SPACE, method="pbil", batch_size=4),
    "grid_search": GridSearch(SPACE, batch_size=4),
    "local_search": LocalSearch(SPACE, batch_size=4),
}


def _shapes(tree):
    """Shape, dtype and weak type of every leaf: what decides whether jit compiles again."""
    return jax.tree.map(lambda x: (jnp.shape(x), x.dtype, getattr(x, "weak_type", False)), tree)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_state_shapes_never_change_and_each_method_compiles_once(name):
    strategy = FAMILIES[name]
    cls = type(strategy)
    state = strategy.init(jax.random.key(0))
    first = _shapes(state)
    sizes = None
    for generation in range(5):  # warm-up, then the learned phase (model, policy, climb)
        genomes, state = strategy.ask(jax.random.key(generation), state)
        assert _shapes(state) == first
        fitness = jnp.sum(genomes * jnp.asarray([1, 2, 3]), axis=1).astype(jnp.float32)
        fitness = jnp.where(genomes[:, 0] == 2, jnp.nan, fitness)  # some fail
        state = strategy.tell(jax.random.key(0), genomes, fitness, state)
        assert _shapes(state) == first
        if generation == 0:
            sizes = (cls.ask._cache_size(), cls.tell._cache_size())
    # No generation after the first compiled anything new.
    assert (cls.ask._cache_size(), cls.tell._cache_size()) == sizes


def _pbil_step(theta, genomes, scores, rate, quantile=0.25):
    """PBIL by hand: move each gene's distribution towards the best mu's mean one-hot."""
    mu = math.ceil(quantile * len(scores))
    elite = np.argsort(-np.asarray(scores), kind="stable")[:mu]
    target = np.zeros_like(theta)
    for i in elite:
        for g, v in enumerate(genomes[i]):
            target[g, v] += 1.0 / mu
    return theta + rate * (target - theta)


def test_pbil_update_matches_a_hand_computed_step_on_a_two_gene_space():
    space = GenomeSpace(("x", "y"), (2, 3))
    strategy = DistributionSearch(space, method="pbil", batch_size=4, learning_rate=0.5,
                                  min_probability=0.0)
    state = strategy.init(jax.random.key(0))
    genomes = np.asarray([[0, 2], [1, 0], [1, 2], [0, 1]], np.int32)
    scores = np.asarray([3.0, 1.0, 0.0, 2.0], np.float32)  # the best is genome 0
    state = strategy.tell(jax.random.key(0), jnp.asarray(genomes), jnp.asarray(scores), state)
    theta = np.asarray([[0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3]])
    expected = _pbil_step(theta, genomes, scores, 0.5)
    # x: 0.5 + 0.5 (1 - 0.5) = 0.75 for value 0; y: 1/3 + 0.5 (1 - 1/3) = 2/3 for value 2.
    np.testing.assert_allclose(expected[0], [0.75, 0.25, 0.0])
    np.testing.assert_allclose(expected[1], [1 / 6, 1 / 6, 2 / 3])
    np.testing.assert_allclose(np.asarray(state.probabilities), expected, atol=1e-6)


def test_asng_update_matches_a_hand_computed_step_on_a_two_gene_space():
    space = GenomeSpace(("x", "y"), (2, 2))
    strategy = DistributionSearch(space, method="asng", batch_size=2, delta=0.5,
                                  min_probability=0.0)
    state = strategy.init(jax.random.key(0))
    genomes = np.asarray([[0, 1], [1, 1]], np.int32)  # the first is better
    state = strategy.tell(jax.random.key(0), jnp.asarray(genomes), jnp.asarray([2.0, 1.0]), state)
    # lambda = 2: utilities +1 and -1 (mean 0). The natural gradient in expectation
    # parameters, mean_b u_b (onehot_b - theta): x = ((1,0) - (0,1)) / 2 = (0.5, -0.5);
    # y: both chose 1, so it cancels: (0, 0).
    gradient = np.asarray([[0.5, -0.5], [0.0, 0.0]])
    # The Fisher norm over the free coordinates (each gene's first value), theta = 1/2:
    # s = g / sqrt(t) + sqrt(t) g / (t_K + sqrt(t_K)), with t_K = 1/2.
    t = 0.5
    s_x = 0.5 / math.sqrt(t) + math.sqrt(t) * 0.5 / (t + math.sqrt(t))
    step = 0.5 * gradient / abs(s_x)
    np.testing.assert_allclose(np.asarray(state.probabilities), 0.5 + step, atol=1e-6)
    # The step-size adaptation: beta = delta / sqrt(2), s = sqrt(beta (2 - beta)) (1, 0).
    beta = 0.5 / math.sqrt(2)
    gamma = beta * (2 - beta)
    np.testing.assert_allclose(float(state.gamma), gamma, rtol=1e-6)
    np.testing.assert_allclose(float(state.delta_scale),
                               math.exp(beta * (gamma - gamma / 1.5)), rtol=1e-5)


def test_the_entropy_term_keeps_the_distribution_wider():
    space = GenomeSpace.from_genes({f"g{i}": 4 for i in range(6)})
    target = jnp.asarray([3, 1, 0, 2, 2, 0])
    entropies = {}
    for weight in (0.0, 1.0):
        strategy = DistributionSearch(space, method="pbil", batch_size=8, entropy_weight=weight)
        state = strategy.init(jax.random.key(0))
        for i in range(30):
            genomes, state = strategy.ask(jax.random.key(i), state)
            fitness = jnp.sum(genomes == target, 1).astype(jnp.float32)
            state = strategy.tell(jax.random.key(0), genomes, fitness, state)
        entropies[weight] = float(cat.entropy(state.probabilities).sum())
    assert entropies[1.0] > entropies[0.0] + 0.5
    # The entropy gradient is a direction inside the simplex: each gene's row sums to zero.
    from evonas.strategies.distribution import entropy_gradient

    theta = jnp.asarray([[0.7, 0.2, 0.1, 0.0], [0.25, 0.25, 0.25, 0.25]])
    np.testing.assert_allclose(np.asarray(entropy_gradient(theta)).sum(1), 0.0, atol=1e-7)
    np.testing.assert_allclose(np.asarray(entropy_gradient(theta))[1], 0.0, atol=1e-7)


def test_beliefs_name_each_gene_and_value_of_the_distribution():
    space = evonas.get_encoding("nb201").space
    strategy = DistributionSearch(space, batch_size=4)
    believed = beliefs(strategy, strategy.init(jax.random.key(0)))
    assert list(believed) == list(space.names)
    first = believed[space.names[0]]
    assert set(first) == set(map(str, space.choices[0]))
    assert all(abs(p - 1 / space.cardinalities[0]) < 1e-6 for p in first.values())
    assert beliefs(FAMILIES["grid_search"], FAMILIES["grid_search"].init(jax.random.key(0))) \
        is None


def test_grid_search_enumerates_every_genome_exactly_once():
    grid = GridSearch(SPACE, batch_size=5)  # 24 genomes: 5 asks cover them, then it wraps
    state = grid.init(jax.random.key(0))
    asked = []
    for i in range(5):
        genomes, state = grid.ask(jax.random.key(i), state)
        state = grid.tell(jax.random.key(0), genomes, jnp.zeros(5), state)
        asked += [tuple(map(int, g)) for g in genomes]
    first = asked[:SPACE.size]
    assert len(set(first)) == SPACE.size == 24
    assert [SPACE.index(g) for g in first] == list(range(24))  # in mixed-radix order
    assert asked[24] == asked[0]


def test_grid_search_over_a_users_values_per_gene():
    space = evonas.get_encoding("nb201").space
    grid = GridSearch(space, batch_size=4, values={space.names[0]: ["none", "nor_conv_3x3"],
                                                   space.names[1]: [0, 2]})
    assert grid.size == 2 * 2 * 5**4
    genomes = np.asarray(grid.genomes_at(jnp.arange(grid.size)))
    assert len({g.tobytes() for g in genomes}) == grid.size
    names = space.choices[0]
    assert set(genomes[:, 0]) == {names.index("none"), names.index("nor_conv_3x3")}
    assert set(genomes[:, 1]) == {0, 2}


@pytest.mark.parametrize("make, message", [
    (lambda: GridSearch(GenomeSpace.from_genes({f"g{i}": 10 for i in range(8)})),
     r"GridSearch: the grid has 100,000,000 genomes \(10 x 10 x 10 x 10 x 10 x 10 x 10 x 10\), "
     r"more than max_size=1,000,000; restrict it with values="),
    (lambda: BayesianOptimization(SPACE, ensemble_size=0),
     r"BayesianOptimization.ensemble_size must be an integer >= 1; got 0"),
    (lambda: DistributionSearch(SPACE, entropy_weight=-0.1),
     r"DistributionSearch.entropy_weight must be a number in \[0, inf\); got -0.1"),
    (lambda: Reinforce(SPACE, entropy_weight=-1.0),
     r"Reinforce.entropy_weight must be a number in \[0, inf\); got -1.0"),
    (lambda: GridSearch(SPACE, values={"z": [0]}), r"unknown gene 'z'"),
    (lambda: GridSearch(SPACE, values={"a": [0, 7]}), r"7 is not a value of the gene"),
    (lambda: DistributionSearch(SPACE, method="cem"), r"method must be one of \['asng', 'pbil'\]"),
    (lambda: BayesianOptimization(SPACE, surrogate="rf"), r"surrogate must be one of"),
    (lambda: QLearning(SPACE, epsilon_start=2.0), r"epsilon_start must be in \[0, 1\]"),
])
def test_bad_hyper_parameters_are_one_line_errors(make, message):
    with pytest.raises(ValueError, match=message) as err:
        make()
    assert "\n" not in str(err.value)


def test_the_predictor_error_on_held_out_nb201_architectures_falls_as_its_history_grows():
    from evonas.benchmarks.nb201 import load_table

    table = load_table()
    space = evonas.get_encoding("nb201").space
    rng = np.random.default_rng(0)
    order = rng.permutation(len(table.genomes))
    held_out, pool = order[:500], order[500:]
    genomes = jnp.asarray(table.genomes)
    accuracy = jnp.asarray(table.test_acc[0])  # CIFAR-10
    size = 1024
    bo = BayesianOptimization(space, history_size=size, train_steps=400)

    def errors(n):
        """RMSE (accuracy points) and Kendall tau of the ensemble's mean on the held-out."""
        state = bo.init(jax.random.key(1))
        rows = pool[:n]
        history = jnp.zeros((size, space.num_genes), jnp.int32).at[:n].set(genomes[rows])
        scores = jnp.full((size,), -jnp.inf).at[:n].set(accuracy[rows])
        valid = jnp.arange(size) < n
        params, _ = bo.fit(state.params, state.opt_state, history, scores, valid)
        state = state.replace(params=params, history=history, scores=scores, filled=valid)
        mean, _ = bo.predict(state, genomes[held_out])
        _, mu, sigma = bo.standardise(scores, valid)
        predicted = np.asarray(mean * sigma + mu)
        truth = np.asarray(accuracy[held_out])
        sign = lambda x: np.sign(x[:, None] - x[None, :])
        tau = float((sign(predicted) * sign(truth)).sum() / (len(truth) * (len(truth) - 1)))
        return float(np.sqrt(np.mean((predicted - truth) ** 2))), tau

    (rmse_16, tau_16), (rmse_128, tau_128), (rmse_1024, tau_1024) = map(errors, (16, 128, 1024))
    # The accuracies have a long tail (std 12.9 points): with 1024 rows the error halves.
    assert rmse_16 > rmse_128 > rmse_1024 and rmse_1024 < 0.6 * rmse_16
    assert tau_16 < tau_128 < tau_1024 and tau_1024 > 0.6


def test_q_learning_replays_from_the_key_it_is_told_with():
    """Experience replay draws its remembered genomes from tell's key: another key replays
    others (a run's seed changes it), the same key the same ones."""
    space = GenomeSpace.from_genes({"a": (0, 1, 2, 3), "b": (0, 1, 2, 3), "c": (0, 1)})
    strategy = QLearning(space, batch_size=4, memory_size=64, replay_batch=8)

    def after(tell_key):
        state = strategy.init(jax.random.key(0))
        for g in range(6):
            genomes, state = strategy.ask(jax.random.key(100 + g), state)
            fitness = jnp.sum(genomes, axis=1).astype(jnp.float32)
            state = strategy.tell(jax.random.fold_in(tell_key, g), genomes, fitness, state)
        return np.asarray(state.q)

    first, again, other = after(jax.random.key(1)), after(jax.random.key(1)), after(
        jax.random.key(2))
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)
