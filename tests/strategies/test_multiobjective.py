"""Tests of non-dominated sorting, crowding distance, NSGA-II, MAP-Elites and the weighted sum."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from evonas.genomes import GenomeSpace
from evonas.objectives import hypervolume
from evonas.operators import crowded_tournament, crowding_distance, non_dominated_rank
from evonas.strategies import (
    NSGA2,
    MapElites,
    RandomSearch,
    WeightedSum,
    get_strategy,
    list_strategies,
    num_objectives,
)

# Toy problem: 6 genes of 8 values (262,144 genomes). Objective 1, the sum of the genes, is
# maximised; objective 2, the number of non-zero genes, is minimised. The true front is
# (7k, k) for k = 0..6: k genes at 7, the rest 0.
TOY = GenomeSpace.from_genes({f"g{i}": 8 for i in range(6)})
MAXIMIZE = (True, False)
REFERENCE = (-1.0, 7.0)


def toy_objectives(genomes):
    genomes = jnp.asarray(genomes)
    return jnp.stack(
        [genomes.sum(-1).astype(jnp.float32), (genomes > 0).sum(-1).astype(jnp.float32)], -1
    )


def nonzero(genomes):
    return (jnp.asarray(genomes) > 0).sum(-1).astype(jnp.float32)[:, None]


def genes_sum(genomes):
    return jnp.asarray(genomes).sum(-1).astype(jnp.float32)


def search(strategy, key, generations, fitness_fn):
    """A whole search as one lax.scan; returns the final state and every asked batch."""

    def step(state, k):
        genomes, state = strategy.ask(k, state)
        return strategy.tell(jax.random.key(0), genomes, fitness_fn(genomes), state), genomes

    k_init, k_run = jax.random.split(key)
    return jax.lax.scan(step, strategy.init(k_init), jax.random.split(k_run, generations))


# -- numpy references ---------------------------------------------------------------------------


def reference_rank(objectives, maximize):
    """Front peeling by brute force; NaN rows one rank past the last feasible front."""
    cost = np.where(maximize, -objectives, objectives)
    failed = np.isnan(cost).any(axis=1)
    rank = np.full(len(cost), -1)
    remaining = set(np.flatnonzero(~failed).tolist())
    front = 0
    while remaining:
        current = [i for i in remaining if not any(
            np.all(cost[j] <= cost[i]) and np.any(cost[j] < cost[i]) for j in remaining)]
        rank[current] = front
        remaining -= set(current)
        front += 1
    rank[failed] = front
    return rank


def reference_crowding(objectives, rank):
    """Deb et al.'s crowding distance front by front (stable sorts: ties keep row order)."""
    distance = np.zeros(len(objectives))
    failed = np.isnan(objectives).any(axis=1)
    for front in np.unique(rank[~failed]):
        members = np.flatnonzero(rank == front)
        for m in range(objectives.shape[1]):
            values = objectives[members, m]
            order = members[np.argsort(values, kind="stable")]
            ordered = objectives[order, m]
            span = ordered[-1] - ordered[0]
            distance[order[0]] = distance[order[-1]] = np.inf
            for k in range(1, len(order) - 1):
                if span > 0:
                    distance[order[k]] += (ordered[k + 1] - ordered[k - 1]) / span
    return distance


def random_objectives(rng, n, m, nan_rows=0):
    objectives = rng.integers(0, 4, size=(n, m)).astype(np.float32)  # ties and duplicates
    objectives[rng.choice(n, nan_rows, replace=False), rng.integers(0, m)] = np.nan
    return objectives


# -- non-dominated sorting and crowding -------------------------------------------------------


@pytest.mark.parametrize("m", [1, 2, 3])
def test_rank_and_crowding_match_the_reference(m):
    rng = np.random.default_rng(m)
    for trial in range(6):
        objectives = random_objectives(rng, 24, m, nan_rows=trial % 3)
        maximize = (trial % 2 == 0, True, False)[:m]
        rank = np.asarray(non_dominated_rank(objectives, maximize))
        expected = reference_rank(objectives, np.asarray(maximize))
        np.testing.assert_array_equal(rank, expected)
        crowding = np.asarray(crowding_distance(objectives, rank))
        np.testing.assert_allclose(crowding, reference_crowding(objectives, rank), rtol=1e-6)


def test_rank_of_a_hand_made_set():
    objectives = np.array(
        [[1, 2], [2, 1], [0, 0], [3, 3], [np.nan, 1], [1, 2]], np.float32
    )
    # Minimising both: (0, 0) dominates everything; the duplicates (1, 2) share front 1.
    minimized = non_dominated_rank(objectives, (False, False))
    np.testing.assert_array_equal(minimized, [1, 1, 0, 2, 3, 1])
    np.testing.assert_array_equal(non_dominated_rank(objectives, True), [1, 1, 2, 0, 3, 1])
    all_failed = np.full((3, 2), np.nan, np.float32)
    np.testing.assert_array_equal(non_dominated_rank(all_failed, (True, False)), [0, 0, 0])
    np.testing.assert_array_equal(crowding_distance(all_failed, jnp.zeros(3, jnp.int32)), 0.0)
    with pytest.raises(ValueError, match=r"one True/False per objective \(2 objectives\)"):
        non_dominated_rank(objectives, (True, False, True))


def test_crowded_tournament_prefers_lower_rank_then_larger_crowding():
    key = jax.random.key(0)
    # Row 1 has the lower rank: it wins every tournament (contestants are distinct rows).
    np.testing.assert_array_equal(
        crowded_tournament(key, jnp.array([1, 0]), jnp.array([np.inf, 0.0]), 64), 1
    )
    # Same rank: the larger crowding distance wins.
    np.testing.assert_array_equal(
        crowded_tournament(key, jnp.array([0, 0]), jnp.array([1.0, 2.0]), 64), 1
    )
    # Row 2 (worse rank) never wins; row 0 wins only against it, so a third of the time.
    winners = np.asarray(crowded_tournament(key, jnp.array([0, 0, 1]), jnp.array([2.0, 5.0, 9.0]),
                                            3000))
    assert set(winners.tolist()) == {0, 1}
    assert abs((winners == 0).mean() - 1 / 3) < 0.03


# -- NSGA-II ------------------------------------------------------------------------------------


def test_nsga2_keeps_the_best_n_of_parents_and_children_by_rank_and_crowding():
    nsga = NSGA2(TOY, population_size=8, maximize=(True, False, True))
    rng = np.random.default_rng(0)
    state = nsga.init(jax.random.key(0))
    told_genomes, told_objectives = [], []
    for generation in range(4):
        genomes, state = nsga.ask(jax.random.key(generation), state)
        objectives = random_objectives(rng, 8, 3, nan_rows=generation % 3)
        previous = state
        state = nsga.tell(jax.random.key(0), genomes, objectives, state)
        told_genomes.append(np.asarray(genomes))
        told_objectives.append(objectives)
        if generation == 0:  # only children: the empty slots are never kept
            np.testing.assert_array_equal(np.sort(np.asarray(state.ids)), np.arange(8))
            continue
        merged = np.concatenate([np.asarray(previous.objectives), objectives])
        ids = np.concatenate([np.asarray(previous.ids), generation * 8 + np.arange(8)])
        rank = reference_rank(merged, np.array([True, False, True]))
        crowding = reference_crowding(merged, rank)
        order = np.lexsort((np.arange(16), -crowding, rank))[:8]
        np.testing.assert_array_equal(state.ids, ids[order])
        np.testing.assert_array_equal(state.rank, rank[order])
        np.testing.assert_allclose(state.crowding, crowding[order])
    # The population holds each member's own genome and objectives (by evaluation id).
    every_genome = np.concatenate(told_genomes)
    every_objective = np.concatenate(told_objectives)
    np.testing.assert_array_equal(state.population, every_genome[np.asarray(state.ids)])
    np.testing.assert_array_equal(state.objectives, every_objective[np.asarray(state.ids)])


def test_nsga2_infeasible_rows_never_survive_become_parents_or_enter_the_front():
    nsga = NSGA2(TOY, population_size=8, crossover_rate=0.0, mutation_rate=0.0)
    genomes, state = nsga.ask(jax.random.key(0), nsga.init(jax.random.key(0)))
    np.testing.assert_array_equal(state.parents, -1)
    # Only rows 2 and 5 are feasible; the failed ones would dominate them if they counted.
    fitness = jnp.stack([jnp.full(8, 100.0), jnp.full(8, jnp.nan)], axis=1)
    fitness = fitness.at[2].set(jnp.array([3.0, 2.0])).at[5].set(jnp.array([5.0, 4.0]))
    state = nsga.tell(jax.random.key(0), genomes, fitness, state)
    np.testing.assert_array_equal(state.rank[:2], [0, 0])
    assert np.all(np.asarray(state.rank[2:]) == 1)
    _, objectives, mask = nsga.front(state)
    np.testing.assert_array_equal(np.asarray(state.ids)[np.asarray(mask)], [2, 5])
    assert not np.isnan(np.asarray(objectives)[np.asarray(mask)]).any()
    # Children copy their parents (no variation): every parent is feasible or the child random.
    children, state = nsga.ask(jax.random.key(1), state)
    parents = np.asarray(state.parents)
    np.testing.assert_array_equal(parents[:, 1], -1)
    assert set(parents[:, 0].tolist()) <= {-1, 2, 5} and (parents[:, 0] >= 0).any()
    copied = parents[:, 0] >= 0
    np.testing.assert_array_equal(np.asarray(children)[copied],
                                  np.asarray(genomes)[parents[copied, 0]])
    # With 8 feasible children the failed members are all replaced.
    state = nsga.tell(jax.random.key(0), children, toy_objectives(children), state)
    assert not np.isnan(np.asarray(state.objectives)).any()
    assert set(np.asarray(state.ids).tolist()) <= {2, 5} | set(range(8, 16))


def test_nsga2_lower_rank_parents_are_preferred():
    # No variation: children are copies of tournament winners. Fitness (i, 0) for member i and
    # (7, -1) for member 7 make the ranks a chain, 7 best; member i wins exactly when the other
    # contestant is one of the i members below it: probability 2 i / 56.
    nsga = NSGA2(TOY, population_size=8, crossover_rate=0.0, mutation_rate=0.0)
    genomes, state = nsga.ask(jax.random.key(0), nsga.init(jax.random.key(0)))
    fitness = jnp.stack([jnp.arange(8.0), jnp.zeros(8)], 1).at[7, 1].set(-1.0)
    state = nsga.tell(jax.random.key(0), genomes, fitness, state)
    np.testing.assert_array_equal(state.ids, np.arange(8)[::-1])
    np.testing.assert_array_equal(state.rank, np.arange(8))
    counts = np.zeros(8)
    for i in range(60):
        _, asked = nsga.ask(jax.random.key(i), state)
        np.add.at(counts, np.asarray(asked.parents[:, 0]), 1)
    assert counts[0] == 0  # the worst member never wins a tournament
    np.testing.assert_allclose(counts / counts.sum(), 2 * np.arange(8) / 56, atol=0.04)


@pytest.fixture(scope="module")
def toy_fronts():
    """Hypervolume of everything evaluated in 320 evaluations, 8 seeds vmapped per strategy."""
    keys = jax.random.split(jax.random.key(0), 8)
    nsga = NSGA2(TOY, population_size=16)
    weighted = get_strategy("weighted_sum", TOY, strategy="regularized_evolution",
                            weights=(1.0, 3.0), strategy_params={
                                "population_size": 16, "sample_size": 4, "batch_size": 16})
    runs = {}
    for name, strategy in {"nsga2": nsga, "weighted_sum": weighted}.items():
        run = jax.jit(jax.vmap(lambda k, s=strategy: search(s, k, 20, toy_objectives)))
        state, genomes = run(keys)
        runs[name] = (state, np.asarray(genomes).reshape(8, -1, TOY.num_genes), run, keys)
    random = jax.jit(jax.vmap(lambda k: TOY.sample(k, 320)))(keys)
    runs["random"] = (None, np.asarray(random), None, keys)
    volume = {name: np.array([hypervolume(toy_objectives(g), REFERENCE, MAXIMIZE) for g in gs])
              for name, (_, gs, _, _) in runs.items()}
    return runs, volume


def test_nsga2_finds_more_of_the_true_front_than_random_and_weighted_sum(toy_fronts):
    runs, volume = toy_fronts
    everything = np.stack(np.meshgrid(*[np.arange(8)] * 6, indexing="ij"), -1).reshape(-1, 6)
    true = hypervolume(toy_objectives(everything), REFERENCE, MAXIMIZE)
    assert true == 154.0  # 8 x 1 + sum over k of 7 x (7 - k) for the front (7k, k)
    gap = {name: 1 - v.mean() / true for name, v in volume.items()}
    assert gap["nsga2"] < 0.05
    assert gap["nsga2"] < 0.5 * gap["random"]
    assert gap["nsga2"] < 0.5 * gap["weighted_sum"]
    # The final population's front is non-dominated, feasible and inside the space.
    state = runs["nsga2"][0]
    genomes, objectives, mask = jax.vmap(NSGA2(TOY, population_size=16).front)(state)
    np.testing.assert_array_equal(objectives, jax.vmap(toy_objectives)(genomes))
    assert bool(TOY.contains(genomes).all()) and bool(mask.any(axis=1).all())
    for o, m in zip(np.asarray(objectives), np.asarray(mask)):
        cost = o * np.array([-1.0, 1.0])
        dominated = [np.any(np.all(cost <= c, 1) & np.any(cost < c, 1)) for c in cost[m]]
        assert not any(dominated)


def test_nsga2_is_deterministic_per_key_and_records_lineage(toy_fronts):
    runs, _ = toy_fronts
    first_state, first_genomes, run, keys = runs["nsga2"]
    state, genomes = run(keys)
    np.testing.assert_array_equal(np.asarray(genomes).reshape(8, -1, 6), first_genomes)
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.all(a == b)), state, first_state))
    # Different seeds search differently.
    assert len({g.tobytes() for g in first_genomes}) == len(keys)
    np.testing.assert_array_equal(state.generation, 20)
    ids = np.asarray(state.ids)
    assert all(len(set(row.tolist())) == 16 for row in ids) and ids.max() < 320
    parents = np.asarray(state.parents)
    assert parents.shape == (8, 16, 2) and parents.max() < 304 and (parents[..., 0] >= 0).all()


# -- MAP-Elites -------------------------------------------------------------------------------


def make_map_elites(**changes):
    settings = {"batch_size": 8, "descriptors": nonzero, "bins": ((0.5, 1.5, 2.5, 3.5, 4.5, 5.5),)}
    return MapElites(TOY, **{**settings, **changes})


@pytest.mark.parametrize("maximize", [True, False])
def test_map_elites_cells_only_improve_and_fill(maximize):
    me = make_map_elites(maximize=maximize, crossover_rate=0.5)
    sign = 1.0 if maximize else -1.0
    state = me.init(jax.random.key(0))
    told = []
    occupied = []
    for generation in range(12):
        genomes, asked = me.ask(jax.random.key(generation), state)
        # Noisy fitness with failures, so elites must survive worse and failed re-evaluations.
        noise = jax.random.normal(jax.random.key(100 + generation), (8,))
        fitness = sign * (genes_sum(genomes) + 4.0 * noise)
        fitness = jnp.where(noise > 1.2, jnp.nan, fitness)
        new = me.tell(jax.random.key(0), genomes, fitness, asked)
        old_fit, new_fit = np.asarray(state.fitness), np.asarray(new.fitness)
        assert np.all(np.asarray(new.occupied) >= np.asarray(state.occupied))
        assert np.all(sign * new_fit[np.asarray(state.occupied)]
                      >= sign * old_fit[np.asarray(state.occupied)])
        told.append((np.asarray(genomes), np.asarray(fitness)))
        occupied.append(int(new.occupied.sum()))
        state = new
    assert occupied[-1] > occupied[0]
    # Every elite is the told genome with its id, in its own cell, with its own fitness, and the
    # best told to its cell.
    genomes_told = np.concatenate([g for g, _ in told])
    fitness_told = np.concatenate([f for _, f in told])
    elites, fitness, cells = me.elites(state)
    ids = np.asarray(state.ids)[cells]
    np.testing.assert_array_equal(elites, genomes_told[ids])
    np.testing.assert_array_equal(fitness, fitness_told[ids])
    np.testing.assert_array_equal(np.asarray(me.cells(jnp.asarray(elites))), cells)
    all_cells = np.asarray(me.cells(jnp.asarray(genomes_told)))
    for cell, value in zip(cells, fitness):
        in_cell = fitness_told[(all_cells == cell) & ~np.isnan(fitness_told)]
        assert value == (in_cell.max() if maximize else in_cell.min())
    assert float(state.best_fitness) == (np.nanmax(fitness_told) if maximize
                                         else np.nanmin(fitness_told))


def test_map_elites_batch_ties_go_to_the_first_and_nan_never_enters():
    me = make_map_elites(batch_size=4)
    state = me.init(jax.random.key(0))
    genomes = jnp.array([[1, 0, 0, 0, 0, 0], [2, 0, 0, 0, 0, 0], [3, 0, 0, 0, 0, 0],
                         [0, 0, 0, 0, 0, 0]], jnp.int32)  # cells 1, 1, 1 and 0
    state = me.tell(jax.random.key(0), genomes, jnp.array([1.0, 3.0, 3.0, jnp.nan]), state)
    np.testing.assert_array_equal(np.flatnonzero(state.occupied), [1])
    np.testing.assert_array_equal(state.archive[1], genomes[1])
    assert int(state.ids[1]) == 1 and float(state.fitness[1]) == 3.0
    # An equal fitness does not replace the elite; a strictly better one does.
    state = me.tell(jax.random.key(0), genomes, jnp.array([3.0, 2.0, 2.0, jnp.nan]), state)
    assert int(state.ids[1]) == 1
    state = me.tell(jax.random.key(0), genomes, jnp.array([2.0, 2.0, 3.5, 0.0]), state)
    assert int(state.ids[1]) == 10 and int(state.ids[0]) == 11
    np.testing.assert_array_equal(np.flatnonzero(state.occupied), [0, 1])


def test_map_elites_children_are_mutated_elites():
    me = make_map_elites(num_init=8)
    genomes, state = me.ask(jax.random.key(0), me.init(jax.random.key(0)))
    np.testing.assert_array_equal(state.parents, -1)
    state = me.tell(jax.random.key(0), genomes, genes_sum(genomes), state)
    children, state = me.ask(jax.random.key(1), state)
    parents = np.asarray(state.parents)
    np.testing.assert_array_equal(parents[:, 1], -1)
    assert set(parents[:, 0].tolist()) <= set(np.asarray(state.ids)[np.asarray(state.occupied)])
    # Single-gene mutation (the default): one gene away from the parent elite.
    np.testing.assert_array_equal((np.asarray(children) != np.asarray(genomes)[parents[:, 0]])
                                  .sum(-1), 1)


def test_map_elites_fills_cells_with_better_elites_than_random_search():
    keys = jax.random.split(jax.random.key(0), 8)

    def qd_score(strategy):
        state, _ = jax.jit(jax.vmap(lambda k: search(strategy, k, 30, genes_sum)))(keys)
        occupied = np.asarray(state.occupied)
        return np.where(occupied, np.asarray(state.fitness), 0.0).sum(1), occupied.sum(1)

    # num_init = the whole budget: every genome random, the same archive rule.
    random_score, random_cells = qd_score(make_map_elites(num_init=240))
    elites_score, elites_cells = qd_score(make_map_elites())
    assert elites_cells.mean() >= random_cells.mean()
    assert elites_score.mean() > random_score.mean() + 10


@pytest.mark.parametrize(
    "params, message",
    [
        ({}, "MapElites needs descriptors and bins"),
        ({"descriptors": nonzero}, "MapElites: descriptors without bins"),
        ({"bins": ((1.0,),)}, "MapElites: bins without descriptors"),
        ({"descriptors": nonzero, "bins": ()}, "bins must be a non-empty sequence"),
        ({"descriptors": nonzero, "bins": ((),)}, r"bins\[0\] must be a non-empty sequence"),
        ({"descriptors": nonzero, "bins": ((2.0, 1.0),)},
         r"bins\[0\] must be strictly increasing; got \[2.0, 1.0\]"),
        ({"descriptors": nonzero, "bins": ((1.0, 1.0),)}, "strictly increasing"),
        ({"descriptors": nonzero, "bins": (("a",),)}, r"bins\[0\] must hold numbers"),
        ({"descriptors": nonzero, "bins": ((1.0,), (2.0,))},
         r"D = len\(bins\) = 2; got shape \(32, 1\)"),
        ({"descriptors": "params", "bins": ((1.0,),)}, "descriptors must be a function"),
        ({"descriptors": nonzero, "bins": ((1.0,),), "num_init": -1}, "num_init must be a non"),
        ({"descriptors": nonzero, "bins": ((1.0,),), "crossover_rate": 2},
         r"crossover_rate must be in \[0, 1\]"),
    ],
)
def test_map_elites_bad_configuration_is_named(params, message):
    with pytest.raises(ValueError, match=message):
        MapElites(TOY, **params)
    with pytest.raises(ValueError, match=message):
        get_strategy("map_elites", TOY, **params)


# -- weighted sum ---------------------------------------------------------------------------------


def test_weighted_sum_is_the_hand_computed_scalarisation_and_nan_propagates():
    ws = WeightedSum(TOY, RandomSearch(TOY, batch_size=3), weights=(2.0, 0.5),
                     maximize=(True, False))
    fitness = jnp.array([[0.9, 100.0], [0.5, 10.0], [jnp.nan, 1.0]])
    np.testing.assert_allclose(ws.scalarise(fitness), [1.8 - 50.0, 1.0 - 5.0, np.nan])
    assert ws.batch_size == 3 and num_objectives(ws) == 2
    genomes, state = ws.ask(jax.random.key(0), ws.init(jax.random.key(0)))
    np.testing.assert_array_equal(state.parents, -1)  # random search records no parents
    state = ws.tell(jax.random.key(0), genomes, fitness, state)
    assert float(state.inner.best_fitness) == pytest.approx(-4.0)
    np.testing.assert_array_equal(state.best_genome, genomes[1])
    np.testing.assert_allclose(state.best_objectives, [0.5, 10.0])
    failed = ws.tell(jax.random.key(0), genomes, jnp.full((3, 2), jnp.nan),
                     ws.init(jax.random.key(0)))
    assert float(failed.best_score) == -np.inf and float(failed.inner.best_fitness) == -np.inf


def test_weighted_sum_drives_the_wrapped_strategy_and_exposes_its_parents():
    ws = get_strategy("weighted_sum", TOY, weights=(1.0, 3.0),
                      strategy_params={"population_size": 4, "sample_size": 2, "batch_size": 4})
    inner = get_strategy("regularized_evolution", TOY, population_size=4, sample_size=2,
                         batch_size=4)
    assert ws.inner == inner and ws.batch_size == 4
    state, inner_state = ws.init(jax.random.key(0)), inner.init(jax.random.key(0))
    for i in range(3):
        genomes, state = ws.ask(jax.random.key(i), state)
        same, inner_state = inner.ask(jax.random.key(i), inner_state)
        np.testing.assert_array_equal(genomes, same)
        np.testing.assert_array_equal(state.parents, inner_state.parents)
        objectives = toy_objectives(genomes)
        state = ws.tell(jax.random.key(0), genomes, objectives, state)
        inner_state = inner.tell(jax.random.key(0), genomes,
                                 objectives[:, 0] - 3.0 * objectives[:, 1], inner_state)
    assert (np.asarray(state.parents) >= 0).all()
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.all(a == b)), state.inner,
                                     inner_state))


@pytest.mark.parametrize(
    "params, message",
    [
        ({"weights": (1.0,)}, "weights must have one entry per objective \\(2"),
        ({"weights": (1.0, -1.0)}, "weights must be finite and non-negative"),
        ({"weights": "ab"}, "weights must be a sequence of numbers"),
        ({"maximize": True}, "maximize must be a tuple of True/False"),
        ({"strategy": "nsga2"}, "must be single-objective; 'nsga2' takes 2 objectives"),
        ({"strategy": "annealing"}, "unknown strategy 'annealing'"),
        ({"strategy_params": {"maximize": False}}, "strategy_params must not set maximize"),
        ({"strategy_params": {"batch_size": 0}}, "batch_size must be an integer >= 1"),
        ({"strategy_params": {"batchsize": 4}}, "takes no option 'batchsize'"),
    ],
)
def test_weighted_sum_bad_configuration_is_named(params, message):
    with pytest.raises(ValueError, match=message):
        get_strategy("weighted_sum", TOY, **params)


def test_weighted_sum_wraps_only_a_maximising_single_objective_strategy():
    with pytest.raises(ValueError, match=r"must maximise the weighted sum"):
        WeightedSum(TOY, RandomSearch(TOY, maximize=False))
    with pytest.raises(ValueError, match=r"must be single-objective; NSGA2 takes 2"):
        WeightedSum(TOY, NSGA2(TOY))
    with pytest.raises(ValueError, match=r"inner must be a strategy .*got str"):
        WeightedSum(TOY, "random_search")


# -- all three --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params, message",
    [
        ({"maximize": (True,)}, "maximize must be a tuple of True/False, one per objective"),
        ({"population_size": 0}, "NSGA2.population_size must be an integer >= 1; got 0"),
        ({"crossover": "cut"}, "crossover must be one of"),
        ({"mutation_rate": 1.5}, r"mutation_rate must be in \[0, 1\]"),
    ],
)
def test_nsga2_bad_configuration_is_named(params, message):
    with pytest.raises(ValueError, match=message):
        NSGA2(TOY, **params)


def test_registered_and_tell_shapes_checked():
    assert {"nsga2", "map_elites", "weighted_sum"} <= set(list_strategies())
    nsga = get_strategy("nsga2", TOY, population_size=4, maximize=(True, False, False))
    assert isinstance(nsga, NSGA2) and num_objectives(nsga) == 3 and nsga.batch_size == 4
    assert num_objectives(make_map_elites()) == 1
    state = nsga.init(jax.random.key(0))
    with pytest.raises(ValueError, match=r"fitness of shape \(4, 3\).*got \(4, 6\) and \(4,\)"):
        nsga.tell(jax.random.key(0), jnp.zeros((4, 6), jnp.int32), jnp.zeros(4), state)
