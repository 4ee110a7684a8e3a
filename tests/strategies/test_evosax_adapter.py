"""Tests of the evosax adapter: every algorithm runs, the sign is right, failures never win."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from evonas.genomes.space import GenomeSpace
from evonas.strategies import Strategy, get_strategy
from evonas.strategies.evosax_adapter import (
    EXCLUDED,
    EvosaxStrategy,
    evosax_algorithm_names,
)

SPACE = GenomeSpace(tuple(f"g{i}" for i in range(6)), (5,) * 6)
TARGET = jnp.arange(6) % 5
# These tests compile one small program per algorithm; XLA's optimiser dominates their run time
# and buys nothing at these sizes.
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
fast_jit = functools.partial(jax.jit, compiler_options=FAST_COMPILE)
SIGN_ALGORITHMS = ["CMA_ES", "Sep_CMA_ES", "SNES", "Open_ES", "SimpleGA"]
# Every algorithm is one compile of a few seconds on a CPU. A distribution-based and two
# population-based ones run in the quick set (the sign test covers four more); the others are
# marked slow, so `pytest -m "not slow"` skips them.
CORE = {"CMA_ES", "SimpleGA", "DiffusionEvolution"}


def matches(genomes):
    """Toy fitness: how many genes equal a hidden target (6 is the optimum)."""
    return jnp.sum(genomes == TARGET, axis=-1).astype(jnp.float32)


def search(strategy, key, generations, sign=1.0):
    """A whole search as one lax.scan; returns the final state, the genomes and their matches."""

    def step(state, key):
        genomes, state = strategy.ask(key, state)
        fitness = matches(genomes)
        return strategy.tell(jax.random.key(0), genomes, sign * fitness, state), (genomes, fitness)

    keys = jax.random.split(key, generations)
    return jax.lax.scan(step, strategy.init(key), keys)


# -- every algorithm, both relaxations ---------------------------------------------------------


def test_names_exclude_only_documented_algorithms():
    from evosax.algorithms import algorithms

    names = evosax_algorithm_names()
    assert names == sorted(set(algorithms) - set(EXCLUDED))
    assert {"CMA_ES", "SimpleGA", "DiffusionEvolution", "LES"} <= set(names)
    assert len(names) == len(algorithms) - 3


@pytest.mark.parametrize(
    "algorithm",
    [a if a in CORE else pytest.param(a, marks=pytest.mark.slow) for a in evosax_algorithm_names()],
)
def test_every_algorithm_runs_under_jit_vmap_and_scan(algorithm):
    # Every algorithm's default (logits) relaxation is also searched under jit and scan by
    # tests/test_examples.py; beyond the core algorithms, only the other relaxation is compiled
    # here, which keeps the suite's compile time in bounds.
    relaxations = ("logits", "random_keys") if algorithm in CORE else ("random_keys",)
    strategies = [EvosaxStrategy(SPACE, algorithm, 8, r) for r in relaxations]
    keys = jax.random.split(jax.random.key(0), 2)
    run = fast_jit(jax.vmap(lambda key: [search(s, key, 3) for s in strategies]))
    for strategy, (state, (genomes, fitness)) in zip(strategies, run(keys)):
        assert genomes.shape == (2, 3, 8, 6) and genomes.dtype == jnp.int32
        assert bool(SPACE.contains(genomes).all()), strategy.relaxation
        assert not bool((genomes[0] == genomes[1]).all())  # the two seeds differ
        np.testing.assert_array_equal(state.generation, [3, 3])
        assert bool(jnp.isfinite(state.population).all())
        # The best is the best genome ever told, and its fitness is its own.
        np.testing.assert_array_equal(state.best_fitness, fitness.max(axis=(1, 2)))
        np.testing.assert_array_equal(matches(state.best_genome), state.best_fitness)


# -- direction ---------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", SIGN_ALGORITHMS)
def test_sign_improves_and_opposite_worsens(algorithm):
    maximizer = EvosaxStrategy(SPACE, algorithm, 16, maximize=True)
    minimizer = dataclasses.replace(maximizer, maximize=False)
    signs = jnp.array([1.0, -1.0])  # told +matches (right) and -matches (the opposite)

    @fast_jit
    def run(key):
        up = jax.vmap(lambda sg: search(maximizer, key, 10, sg)[1])(signs)
        down = jax.vmap(lambda sg: search(minimizer, key, 10, -sg)[1])(signs)
        return up, down

    (genomes, fitness), (genomes_min, _) = run(jax.random.key(0))
    mean = fitness.mean(axis=-1)  # [sign, generation]
    # Random genomes match 6/5 genes on average; the right sign climbs towards 6.
    assert float(mean[0, -1]) >= float(mean[0, 0]) + 1.0, mean[0]
    assert float(mean[1, -1]) <= float(mean[1, 0]) - 0.5, mean[1]
    # maximize=False told -fitness is the same search, genome for genome.
    np.testing.assert_array_equal(genomes, genomes_min)


# -- failures ----------------------------------------------------------------------------------


def test_failure_penalty_is_finite_and_worst():
    strategy = EvosaxStrategy(SPACE, "CMA_ES", 4)
    score = strategy._score(jnp.array([jnp.nan, 1.0, 3.0, jnp.inf]))
    loss = strategy._evosax_fitness(score)
    # evosax minimises -score; failures sit one spread (2) beyond the worst success (-1).
    np.testing.assert_array_equal(loss, [1.0, -1.0, -3.0, 1.0])
    np.testing.assert_array_equal(score, [-jnp.inf, 1.0, 3.0, -jnp.inf])
    minimizer = dataclasses.replace(strategy, maximize=False)
    loss = minimizer._evosax_fitness(minimizer._score(jnp.full(4, jnp.nan)))
    np.testing.assert_array_equal(loss, [1.0, 1.0, 1.0, 1.0])


@pytest.mark.parametrize(("algorithm", "maximize"), [("CMA_ES", True), ("SimpleGA", False)])
def test_nan_never_becomes_best(algorithm, maximize):
    strategy = EvosaxStrategy(SPACE, algorithm, 8, maximize=maximize)

    @fast_jit
    def run(key):
        def step(state, key):
            genomes, state = strategy.ask(key, state)
            fitness = matches(genomes)
            # The best individual of every generation fails; in the minimiser's direction too.
            fitness = jnp.where(fitness == fitness.max(), jnp.nan, fitness)
            told = fitness if maximize else -fitness
            return strategy.tell(jax.random.key(0), genomes, told, state), fitness

        state, fitness = jax.lax.scan(step, strategy.init(key), jax.random.split(key, 4))
        all_failed = strategy.tell(jax.random.key(0),
            strategy.ask(key, state)[0], jnp.full((8,), jnp.nan), state
        )
        return state, fitness, all_failed

    state, fitness, all_failed = run(jax.random.key(1))
    best = float(jnp.nanmax(fitness))
    assert float(state.best_fitness) == (best if maximize else -best)
    assert float(matches(state.best_genome)) == best
    # A generation where everything failed changes no best and leaves evosax finite.
    assert float(all_failed.best_fitness) == float(state.best_fitness)
    leaves = jax.tree.leaves(all_failed.evo_state)
    assert all(bool(jnp.isfinite(x).all()) for x in leaves if jnp.issubdtype(x.dtype, jnp.floating)
               and x.size and not bool(jnp.isinf(x).all()))


def test_best_fitness_starts_at_the_worst_value():
    maximizer = EvosaxStrategy(SPACE, "SNES", 8)
    minimizer = dataclasses.replace(maximizer, maximize=False)
    a, b = fast_jit(lambda key: (maximizer.init(key), minimizer.init(key)))(jax.random.key(0))
    assert float(a.best_fitness) == -np.inf and int(a.generation) == 0
    assert float(b.best_fitness) == np.inf
    np.testing.assert_array_equal(a.evo_state.mean, np.zeros(30))  # logits start uniform


# -- population-based start --------------------------------------------------------------------


def test_first_tell_initialises_a_population_based_algorithm():
    strategy = EvosaxStrategy(SPACE, "SimpleGA", 8)

    @fast_jit
    def run(key):
        state = strategy.init(key)
        genomes, state = strategy.ask(key, state)
        return genomes, state, strategy.tell(jax.random.key(0), genomes, matches(genomes), state)

    genomes, asked, told = run(jax.random.key(2))
    # The first population is N(0, 1) logits (uniform genomes), told to evosax unchanged.
    assert abs(float(asked.population.std()) - 1.0) < 0.15
    np.testing.assert_array_equal(told.evo_state.population, asked.population)
    np.testing.assert_array_equal(told.evo_state.fitness, -matches(genomes))
    assert int(told.evo_state.generation_counter) == 0
    np.testing.assert_array_equal(genomes, strategy.decode(asked.population))


# -- jax transformations -------------------------------------------------------------------------


def test_vmap_over_seeds_matches_single_runs():
    # SimpleGA: under vmap the first-generation lax.cond becomes a select of both branches, so
    # this checks that both paths give the same numbers. (CMA-ES's batched eigendecomposition
    # rounds differently from the unbatched one, so it is only checked to run, above.)
    strategy = EvosaxStrategy(SPACE, "SimpleGA", 8)
    keys = jax.random.split(jax.random.key(3), 3)
    run = lambda key: search(strategy, key, 4)
    batched, single = fast_jit(lambda keys: (jax.vmap(run)(keys), run(keys[1])))(keys)
    np.testing.assert_array_equal(batched[1][0][1], single[1][0])
    np.testing.assert_array_equal(batched[0].best_genome[1], single[0].best_genome)


# -- relaxations -------------------------------------------------------------------------------


def test_logits_decode_to_the_argmax_of_each_block():
    space = GenomeSpace(("a", "b", "c"), (2, 3, 1))
    strategy = EvosaxStrategy(space, "CMA_ES", 4)
    assert strategy.num_dims == 6
    # Ties go to the first value; NaN counts as 0.
    x = jnp.array([[0.1, 0.5, 2.0, -1.0, 3.0, -9.0], [1.0, 1.0, -1.0, jnp.nan, -2.0, 5.0]])
    np.testing.assert_array_equal(strategy.decode(x), [[1, 2, 0], [0, 1, 0]])


def test_random_keys_decode_by_floor_and_clamp():
    space = GenomeSpace(("a", "b", "c", "d"), (4, 3, 2, 5))
    strategy = EvosaxStrategy(space, "CMA_ES", 4, relaxation="random_keys")
    assert strategy.num_dims == 4
    x = jnp.array([[0.0, 0.34, 0.5, 0.99], [1.0, -3.0, 7.0, jnp.nan]])
    np.testing.assert_array_equal(strategy.decode(x), [[0, 1, 1, 4], [3, 0, 1, 0]])


def test_std_init_reaches_evosax():
    _, params = EvosaxStrategy(SPACE, "CMA_ES", 8, std_init=0.5)._evosax()
    assert float(params.std_init) == 0.5
    _, params = EvosaxStrategy(SPACE, "CMA_ES", 8)._evosax()
    assert float(params.std_init) == 1.0  # logits keep evosax's default
    _, params = EvosaxStrategy(SPACE, "SNES", 8, relaxation="random_keys")._evosax()
    assert float(params.std_init) == 0.25  # random keys: a quarter of the key range
    algo, _ = EvosaxStrategy(SPACE, "Open_ES", 8, std_init=0.3)._evosax()
    assert float(algo.std_schedule(0)) == pytest.approx(0.3)  # through a constant schedule
    _, params = EvosaxStrategy(SPACE, "CMA_ES", 8, params={"c_std": 0.2})._evosax()
    assert float(params.c_std) == pytest.approx(0.2)


# -- configuration -------------------------------------------------------------------------------


def test_strategy_is_hashable_and_routed_by_name():
    a = EvosaxStrategy(SPACE, "Open_ES", 8, algorithm_kwargs={"use_antithetic_sampling": False})
    b = EvosaxStrategy(SPACE, "Open_ES", 8, algorithm_kwargs={"use_antithetic_sampling": False})
    assert a == b and hash(a) == hash(b) and a.batch_size == 8
    assert isinstance(a, Strategy)
    routed = get_strategy("evosax_SNES", SPACE, population_size=6, relaxation="random_keys")
    assert isinstance(routed, EvosaxStrategy)
    assert (routed.algorithm, routed.batch_size, routed.num_dims) == ("SNES", 6, 6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"algorithm": "CMAES"}, "supported: \\[.*'CMA_ES'"),
        ({"algorithm": "RandomSearch"}, "sampling_fn"),
        ({"population_size": 0}, "population_size must be an integer >= 1; got 0"),
        ({"algorithm": "Open_ES", "population_size": 7}, "population_size=7.*even"),
        ({"algorithm": "DifferentialEvolution", "population_size": 3}, "population_size >= 4"),
        ({"relaxation": "onehot"}, "relaxation must be one of"),
        ({"std_init": -1.0}, "std_init must be a positive number; got -1.0"),
        ({"algorithm": "PSO", "std_init": 0.5}, "PSO has no initial std"),
        ({"params": {"sigma": 1.0}}, "params \\['sigma'\\] are not evosax params"),
        ({"params": {"weights": 1.0}}, "scalar field"),
        ({"algorithm_kwargs": {"lr": 0.1}}, "algorithm_kwargs \\['lr'\\] are not arguments"),
        ({"algorithm_kwargs": {"solution": 1}}, "may not set 'solution'"),
        ({"algorithm_kwargs": {"x": [1]}}, "must be hashable"),
    ],
)
def test_bad_configuration_is_a_readable_error(kwargs, message):
    kwargs = {"algorithm": "CMA_ES", "population_size": 8} | kwargs
    with pytest.raises(ValueError, match=message):
        EvosaxStrategy(SPACE, **kwargs)
