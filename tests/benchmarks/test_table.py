"""The generic Table: a user's own tabular benchmark, looked up inside jit, searched like NB201."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from evonas.benchmarks import Table
from evonas.evaluators import TabularEvaluator
from evonas.genomes import GenomeSpace
from evonas.strategies import RegularizedEvolution, run_searches, selected_true, summarize


class _Space:
    """A search-only encoding of 3 genes (4 x 3 x 2 = 24 architectures)."""

    name = "tiny"
    space = GenomeSpace.from_genes({"a": 4, "b": 3, "c": 2})

    def describe(self, genome):
        return self.space.to_dict(genome)

    def cost(self, genome):
        g = jnp.asarray(genome, jnp.float32)
        return {"params": 10.0 * g[..., 0] + g[..., 1], "flops": 100.0 * g[..., 0]}


ENC = _Space()
RANKS = np.arange(24)
VAL = (RANKS * 7 % 24).astype(np.float32)  # a permutation: one best architecture
TEST = VAL + 0.5
LATENCY = (RANKS % 5).astype(np.float32)


def _table(**changes):
    fields = dict(name="tiny", encoding=ENC, fitness="val_acc", report=("test_acc",),
                  costs=("latency",), columns={"val_acc": VAL, "test_acc": TEST,
                                               "latency": LATENCY})
    fields.update(changes)
    return Table(**fields)


def test_rank_ordered_table_lookups_and_roles():
    table = _table()
    assert len(table) == 24 and table.truth == "test_acc" and table.maximize
    assert table.searchable == ("val_acc", "latency")
    genomes = jnp.asarray(np.stack([ENC.space.from_index(r) for r in (0, 5, 23)]))
    np.testing.assert_array_equal(jax.jit(table.rows)(genomes), [0, 5, 23])
    np.testing.assert_array_equal(table.lookup(genomes, "val_acc"), VAL[[0, 5, 23]])
    outside = jnp.asarray([[4, 0, 0]])
    assert int(table.rows(outside)[0]) == -1 and np.isnan(float(table.lookup(outside,
                                                                              "val_acc")[0]))
    assert table.optimum() == pytest.approx(23.5)
    np.testing.assert_array_equal(table.all_genomes()[5], ENC.space.from_index(5))


def test_bad_tables_are_refused_with_both_numbers():
    with pytest.raises(ValueError, match=r"table 'tiny': column 'val_acc' has 23 values but the "
                       r"space of encoding 'tiny' has 24 architectures"):
        _table(columns={"val_acc": VAL[:23], "test_acc": TEST, "latency": LATENCY})
    with pytest.raises(ValueError, match=r"column 'latency' has shape \(24, 2\) \(float32\); a "
                       r"column is one number per architecture, shape \(24,\)"):
        _table(columns={"val_acc": VAL, "test_acc": TEST,
                        "latency": np.stack([LATENCY, LATENCY], 1)})
    with pytest.raises(ValueError, match=r"fitness names 'acc', which is not a column"):
        _table(fitness="acc")
    with pytest.raises(ValueError, match=r"column\(s\) \['val_acc'\] have two roles"):
        _table(report=("val_acc",))
    # A table in another order, through a lookup function: every column the same length.
    with pytest.raises(ValueError, match=r"column 'test_acc' has 3 values but column 'val_acc' "
                       r"has 4"):
        _table(index=lambda g: g[..., 0], columns={"val_acc": VAL[:4], "test_acc": TEST[:3]},
               costs=())


def test_a_custom_index_holds_part_of_a_space():
    def index(genomes):  # only the architectures with c == 0, by (a, b)
        return jnp.where(genomes[..., 2] == 0, genomes[..., 0] * 3 + genomes[..., 1], -1)

    genomes = np.stack([ENC.space.from_index(r) for r in range(24) if r % 2 == 0])
    table = _table(index=index, genomes=genomes, costs=(),
                   columns={"val_acc": VAL[:12], "test_acc": TEST[:12]})
    probe = jnp.asarray([[1, 2, 0], [1, 2, 1]])
    np.testing.assert_array_equal(table.rows(probe), [5, -1])
    ev = TabularEvaluator(table)
    res = ev.evaluate(jax.random.key(0), probe)
    np.testing.assert_array_equal(res.failed, [False, True])
    assert float(res.fitness[0]) == VAL[5]


def test_every_search_path_runs_on_a_user_table():
    table = _table()
    ev = TabularEvaluator(table, objectives=("latency",), constraints=("params <= 25",))
    res = jax.jit(ev.evaluate)(jax.random.key(0), jnp.asarray(table.all_genomes()))
    params = np.asarray(ENC.cost(table.all_genomes())["params"])
    np.testing.assert_array_equal(np.asarray(res.failed), params > 25)
    strategy = RegularizedEvolution(ENC.space, population_size=6, sample_size=2, batch_size=3)
    single = TabularEvaluator(table)
    trace = run_searches(strategy, single.search_fn(), jax.random.key(1), runs=8, budget=24)
    selected = selected_true(np.asarray(trace.observed), np.asarray(trace.true))
    summary = summarize(selected, table.optimum(), (10,))
    assert selected.shape == (8, 24) and summary["regret"]["10"] >= 0.0
    # Seen is the fitness, true the report-only test accuracy of the same genomes.
    np.testing.assert_allclose(np.asarray(trace.true), np.asarray(trace.observed) + 0.5)
    # The multi-objective contract: seen [B, 2] for the strategy, true [B, 2] for the front.
    seen, true = ev.search_fn(2)(jax.random.key(0), jnp.asarray(table.all_genomes()[:4]))
    assert seen.shape == (4, 2) and true.shape == (4, 2)
    with pytest.raises(ValueError, match=r"the strategy takes 3 objectives but this evaluator "
                       r"has 2"):
        ev.search_fn(3)
    with pytest.raises(ValueError, match=r"constraint on unknown metric 'test_acc' \(a "
                       r"report-only column"):
        TabularEvaluator(table, constraints=("test_acc >= 1",))
