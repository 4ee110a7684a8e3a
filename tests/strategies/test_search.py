"""Whole searches in one jit: the budget counted in queries or in distinct architectures."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from evonas.benchmarks import nb201
from evonas.evaluators import TabularEvaluator
from evonas.genomes import GenomeSpace
from evonas.genomes.cell import canonical_ranks
from evonas.strategies import RandomSearch, RegularizedEvolution, run_searches, summarize

SMALL = GenomeSpace.from_genes({"a": 3, "b": 2})  # 6 genomes: random search repeats a lot


def _evaluate(key, genomes):
    value = (genomes[:, 0] * 2 + genomes[:, 1]).astype(jnp.float32)
    return value, value


def test_unique_count_stops_after_budget_distinct_genomes():
    strategy = RandomSearch(SMALL, batch_size=4)
    trace = run_searches(strategy, _evaluate, jax.random.key(0), runs=5, budget=5,
                         count="unique")
    counted = np.asarray(trace.counted)
    assert counted.shape == (5, 100) and (counted.sum(axis=1) == 5).all()
    for run in range(5):
        genomes = np.asarray(trace.genomes[run])[counted[run]]
        assert len({tuple(g) for g in genomes}) == 5  # each counted query is a new genome
        first = counted[run].nonzero()[0]
        seen = set()
        for q in range(first[-1] + 1):  # every query before the last counted one was made ...
            g = tuple(np.asarray(trace.genomes[run, q]))
            assert counted[run, q] == (g not in seen)  # ... and counted iff it was new
            seen.add(g)
    # Queries are counted instead: Q = budget rows, all counted, duplicates included.
    queries = run_searches(strategy, _evaluate, jax.random.key(0), runs=5, budget=5)
    assert queries.genomes.shape == (5, 5, 2) and bool(queries.counted.all())
    with pytest.raises(ValueError, match=r"budget=7 distinct architectures exceeds the space's 6"):
        run_searches(strategy, _evaluate, jax.random.key(0), runs=1, budget=7, count="unique")
    with pytest.raises(ValueError, match=r"count must be one of \['queries', 'unique'\]"):
        run_searches(strategy, _evaluate, jax.random.key(0), runs=1, budget=3, count="distinct")


def test_unique_count_on_nb201_uses_the_isomorphism_classes():
    table = nb201.table()
    evaluator = TabularEvaluator(table)
    strategy = RegularizedEvolution(table.space, population_size=20, sample_size=5,
                                    batch_size=10)
    key = jax.random.key(2)
    canon = table.encoding.canonical
    trace = run_searches(strategy, evaluator.search_fn(), key, runs=4, budget=100,
                         count="unique", canonical=canon)
    counted = np.asarray(trace.counted)
    assert (counted.sum(axis=1) == 100).all()
    classes = canonical_ranks()[np.asarray(table.space.rank(trace.genomes))]
    for run in range(4):
        assert len(set(classes[run][counted[run]].tolist())) == 100
    # More queries than distinct classes: evolution revisits isomorphic cells.
    made = np.asarray(jnp.isfinite(trace.observed)).sum(axis=1)
    assert (made >= 100).all() and made.max() > 100
    summary = summarize(np.asarray(trace.true), table.optimum(), (10, 100), counted)
    assert set(summary["regret"]) == {"10", "100"}
