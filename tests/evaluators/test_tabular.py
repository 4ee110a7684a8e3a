"""The tabular evaluator over any Table: NAS-Bench-201 lookups, noise, failures, constraints."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from evonas.benchmarks import load_table, nb201
from evonas.evaluators import Evaluator, Results, TabularEvaluator


@pytest.fixture(scope="module")
def table():
    return load_table()


# -- the tabular evaluator ----------------------------------------------------------------------


def test_evaluator_looks_up_the_table_under_jit(table):
    ev = TabularEvaluator(nb201.table("cifar100"), objectives=("edgegpu_latency", "fpga_energy"))
    assert isinstance(ev, Evaluator) and ev.maximize and ev.protocol == "oracle tabular"
    idx = np.asarray([0, 9930, 6111, 15624])
    genomes = jnp.asarray(table.genomes[idx], jnp.int32)
    res = jax.jit(ev.evaluate)(jax.random.key(0), genomes)
    assert isinstance(res, Results)
    np.testing.assert_array_equal(res.fitness, table.test_acc[1, idx])
    np.testing.assert_array_equal(res.metrics["test_acc"], table.test_acc[1, idx])
    assert float(res.fitness[1]) == pytest.approx(73.51333, abs=1e-3)
    np.testing.assert_array_equal(res.objectives["edgegpu_latency"], table.latency[1, 0, idx])
    np.testing.assert_array_equal(res.objectives["fpga_energy"], table.energy[1, 2, idx])
    assert float(res.costs["params"][0]) == 129_306 + 90 * 65
    assert not bool(res.failed.any())


def test_evaluator_noise_and_failures_under_vmap(table):
    ev = TabularEvaluator(nb201.table("cifar10"), noise=1.0)
    genomes = jnp.asarray(table.genomes[:8], jnp.int32).reshape(2, 4, 6)
    genomes = genomes.at[1, 3, 0].set(5).at[0, 2, 4].set(-1)  # two genomes outside the space
    keys = jax.random.split(jax.random.key(3), 2)
    res = jax.jit(jax.vmap(ev.evaluate))(keys, genomes)
    assert res.fitness.shape == (2, 4)
    np.testing.assert_array_equal(res.failed, [[False, False, True, False], [False] * 3 + [True]])
    assert bool(jnp.isnan(res.fitness[res.failed]).all())
    assert bool(jnp.isnan(res.costs["params"][res.failed]).all())
    ok = ~np.asarray(res.failed)
    truth = table.test_acc[0, :8].reshape(2, 4)
    np.testing.assert_array_equal(np.asarray(res.metrics["test_acc"])[ok], truth[ok])
    noise = np.asarray(res.fitness)[ok] - truth[ok]
    assert 0.05 < np.abs(noise).mean() < 3.0  # noise of 1 point was added ...
    assert not np.allclose(noise[:3], noise[3:6])  # ... independently per run
    again = jax.jit(jax.vmap(ev.evaluate))(keys, genomes)
    np.testing.assert_array_equal(again.fitness, res.fitness)  # deterministic in the key


def test_evaluator_errors_list_the_allowed_values():
    cifar10 = nb201.table("cifar10")
    with pytest.raises(ValueError, match=r"needs an evonas.benchmarks.Table.*got str"):
        TabularEvaluator("cifar10")
    with pytest.raises(ValueError, match=r"'pixel3_energy'.*'edgegpu_latency'"):
        TabularEvaluator(cifar10, objectives=("pixel3_energy",))
    with pytest.raises(ValueError, match=r"noise must be >= 0.*-1"):
        TabularEvaluator(cifar10, noise=-1)


def test_evaluator_constraints_make_violators_infeasible(table):
    ev = TabularEvaluator(nb201.table("cifar10"), objectives=("edgegpu_latency",),
                          constraints=("edgegpu_latency <= 5 ms", "params <= 800000"))
    idx = np.arange(0, 15625, 97)
    res = jax.jit(ev.evaluate)(jax.random.key(0), jnp.asarray(table.genomes[idx], jnp.int32))
    latency = table.latency[0, 0, idx]
    params = np.asarray(ev.encoding.cost(jnp.asarray(table.genomes[idx]))["params"])
    expected = (latency <= 5.0) & (params <= 800_000)
    assert 0 < expected.sum() < len(idx)  # both kinds occur in the sample
    np.testing.assert_array_equal(~np.asarray(res.failed), expected)
    assert np.isnan(np.asarray(res.fitness)[~expected]).all()
    assert np.isnan(np.asarray(res.objectives["edgegpu_latency"])[~expected]).all()
    np.testing.assert_array_equal(np.asarray(res.fitness)[expected],
                                  table.test_acc[0, idx][expected])
    with pytest.raises(ValueError, match=r"unknown metric 'speed'"):
        TabularEvaluator(nb201.table(), constraints=("speed <= 3",))
    with pytest.raises(ValueError, match=r"unit 's' not understood"):
        TabularEvaluator(nb201.table(), constraints=("edgegpu_latency <= 3 s",))
