"""NAS-Bench-201: the vendored table, the cell encoding's strings and costs, the evaluator."""

from __future__ import annotations

import csv
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from evonas.benchmarks import DATASETS, DEVICES, ENERGY_DEVICES, encoding_for, load_table
from evonas.evaluators import Evaluator, Results, TabularEvaluator
from evonas.genomes import CellEncoding, get_encoding, list_encodings
from evonas.genomes.cell import OPS, arch_str_of

CSV = pathlib.Path(__file__).resolve().parents[2] / "shared/data/nas-bench-201/nb201.csv"
ARCH0 = (
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|"
    "+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
)
ARCH6111 = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
    "+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
)


@pytest.fixture(scope="module")
def table():
    return load_table()


# -- the table ----------------------------------------------------------------------------------


def test_table_shapes_and_known_values(table):
    assert table.genomes.shape == (15625, 6) and table.genomes.dtype == np.int8
    assert table.test_acc.shape == (3, 15625) and table.test_acc.dtype == np.float32
    assert table.latency.shape == (3, len(DEVICES), 15625)
    assert table.energy.shape == (3, len(ENERGY_DEVICES), 15625)
    assert load_table() is table  # cached
    # README's known values.
    assert table.test_acc[0, 0] == pytest.approx(85.8633, abs=1e-4)
    assert table.column("cifar10", "edgegpu_latency")[0] == pytest.approx(5.80742, abs=1e-5)
    assert table.column("cifar10", "fpga_energy")[0] == pytest.approx(18.0107, abs=1e-4)
    best = table.test_acc.argmax(axis=1)
    assert best.tolist() == [6111, 9930, 857]
    best_acc = [94.37333, 73.51333, 47.31111]
    np.testing.assert_allclose(table.test_acc.max(axis=1), best_acc, atol=1e-3)
    # Only edgetpu lacks measurements, for 4,699 architectures on each dataset.
    assert np.isnan(table.latency).sum(axis=-1).tolist() == [[0, 0, 0, 0, 0, 4699]] * 3
    assert not np.isnan(table.energy).any()


def test_round_trips_over_all_architectures(table):
    enc = CellEncoding()
    genomes = table.genomes.astype(np.int32)
    # genome -> index, vectorised on device, and host side.
    np.testing.assert_array_equal(np.asarray(jax.jit(table.indices)(genomes)), np.arange(15625))
    assert table.index_of(table.genome_of(6111)) == 6111
    assert table.index_of(enc.from_arch_str(ARCH6111)) == 6111
    # Every genome of the space appears once.
    codes = genomes @ (5 ** np.arange(5, -1, -1))
    np.testing.assert_array_equal(np.sort(codes), np.arange(15625))
    # genome -> arch string -> genome for every architecture.
    strings = [enc.to_arch_str(g) for g in genomes]
    assert strings[0] == ARCH0 and strings[6111] == ARCH6111
    assert len(set(strings)) == 15625
    back = np.stack([enc.from_arch_str(s) for s in strings])
    np.testing.assert_array_equal(back, genomes)


@pytest.mark.skipif(not CSV.exists(), reason="the shared CSV is only on the development machine")
def test_vendored_table_matches_the_csv(table):
    with open(CSV, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [arch_str_of(tuple(OPS[g] for g in genome)) for genome in table.genomes] == [
        r["arch_str"] for r in rows
    ]
    for d, dataset in enumerate(DATASETS):
        np.testing.assert_allclose(
            table.test_acc[d], [float(r[f"test_acc_{dataset}"]) for r in rows], rtol=1e-7
        )
        for device in DEVICES:
            col = [float(r[f"{dataset}_{device}_latency"] or "nan") for r in rows]
            np.testing.assert_allclose(table.column(dataset, f"{device}_latency"), col, rtol=1e-7)
        for device in ENERGY_DEVICES:
            col = [float(r[f"{dataset}_{device}_energy"]) for r in rows]
            np.testing.assert_allclose(table.column(dataset, f"{device}_energy"), col, rtol=1e-7)


def test_table_errors_name_the_bad_value(table):
    with pytest.raises(ValueError, match=r"'mnist'.*cifar10.*cifar100.*imagenet16"):
        table.column("mnist", "test_acc")
    with pytest.raises(ValueError, match=r"'raspi4_energy'.*edgegpu_energy"):
        table.column("cifar10", "raspi4_energy")
    with pytest.raises(ValueError, match=r"15625.*0\.\.15624"):
        table.genome_of(15625)
    with pytest.raises(ValueError, match=r"'edge_2_1' = 5.*0\.\.4"):
        table.index_of([0, 0, 5, 0, 0, 0])


# -- the cell encoding --------------------------------------------------------------------------


def test_encoding_is_registered_with_named_genes():
    assert "nb201" in list_encodings()
    enc = get_encoding("nb201", num_classes=100)
    assert isinstance(enc, CellEncoding) and enc.num_classes == 100
    names = ("edge_1_0", "edge_2_0", "edge_2_1", "edge_3_0", "edge_3_1", "edge_3_2")
    assert enc.space.names == names
    assert enc.space.cardinalities == (5,) * 6 and enc.space.choices[0] == OPS
    assert enc.space.size == 15625


def test_bad_arch_strings_name_the_token():
    enc = CellEncoding()
    with pytest.raises(ValueError, match=r"'conv_5x5'.*'none', 'skip_connect'"):
        enc.from_arch_str(ARCH0.replace("avg_pool_3x3", "conv_5x5"))
    with pytest.raises(ValueError, match=r"'avg_pool_3x3~1'.*'op~0'"):
        enc.from_arch_str(ARCH0.replace("avg_pool_3x3~0", "avg_pool_3x3~1"))
    with pytest.raises(ValueError, match=r"2 node groups.*expected 3"):
        enc.from_arch_str("|none~0|+|none~0|none~1|")
    with pytest.raises(ValueError, match=r"has 1 inputs; node 2 has 2"):
        enc.from_arch_str("|none~0|+|none~0|+|none~0|none~1|none~2|")
    with pytest.raises(ValueError, match=r"must start and end with '\|'"):
        enc.from_arch_str("none~0|+|none~0|none~1|+|none~0|none~1|none~2|")


def test_bad_genomes_and_options_name_the_value():
    enc = CellEncoding()
    with pytest.raises(ValueError, match=r"'edge_3_2' = 9.*0\.\.4"):
        enc.to_arch_str([0, 0, 0, 0, 0, 9])
    with pytest.raises(ValueError, match=r"6 genes.*shape \(5,\)"):
        enc.describe([0, 0, 0, 0, 0])
    with pytest.raises(ValueError, match=r"input_size must be a multiple of 4.*got 30"):
        CellEncoding(input_size=30)
    with pytest.raises(ValueError, match=r"channels must be an integer >= 1; got 0"):
        CellEncoding(channels=0)


# Hand-computed whole-network counts (trainable params; MACs of convs + classifier): NAS-Bench-201
# records 0.129306 M params for arch 0; the paper's ranges are 0.073-1.531 M params and
# 7.78-220.11 MFLOPs on CIFAR-10.
@pytest.mark.parametrize(
    "dataset, arch, params, flops",
    [
        ("cifar10", ARCH0, 129_306, 15_647_360),
        ("cifar10", [0] * 6, 73_306, 7_783_040),
        ("cifar10", [1] * 6, 73_306, 7_783_040),
        ("cifar10", [4] * 6, 73_306, 7_783_040),
        ("cifar10", [3] * 6, 1_531_546, 220_119_680),
        ("cifar100", [0] * 6, 73_306 + 90 * 65, 7_783_040 + 90 * 64),
        ("cifar100", [3] * 6, 1_531_546 + 90 * 65, 220_119_680 + 90 * 64),
        # ImageNet16-120: a quarter of the conv MACs (16x16 input), a 120-way classifier.
        ("imagenet16", [0] * 6, 73_306 + 110 * 65, (7_783_040 - 640) // 4 + 7_680),
        ("imagenet16", [3] * 6, 1_531_546 + 110 * 65, (220_119_680 - 640) // 4 + 7_680),
    ],
)
def test_params_and_flops(dataset, arch, params, flops):
    enc = encoding_for(dataset)
    genome = enc.from_arch_str(arch) if isinstance(arch, str) else np.asarray(arch, np.int32)
    described = enc.describe(genome)
    assert (described["params"], described["flops"]) == (params, flops)
    cost = jax.jit(enc.cost)(genome)
    assert float(cost["params"]) == params
    assert float(cost["flops"]) == pytest.approx(flops, rel=1e-7)


def test_paper_ranges_and_vmapped_cost(table):
    enc = CellEncoding()
    cost = jax.jit(jax.vmap(enc.cost))(jnp.asarray(table.genomes, jnp.int32))
    assert round(float(cost["params"].min()) / 1e6, 3) == 0.073
    assert round(float(cost["params"].max()) / 1e6, 3) == 1.532
    assert float(cost["flops"].min()) / 1e6 == pytest.approx(7.78304)
    assert int(float(cost["flops"].max()) / 1e4) / 100 == 220.11  # the paper truncates
    # vmap over the population equals the exact host count everywhere we look.
    for i in (0, 1, 6111, 15624):
        exact = enc.describe(table.genome_of(i))
        assert float(cost["params"][i]) == exact["params"]
    # The masked supernet computes every conv on every edge.
    executed = 73_306 + (241_306 - 73_306) + (1_531_546 - 73_306)
    assert float(cost["executed_params"][0]) == executed
    assert bool(jnp.all(cost["executed_flops"] >= cost["flops"]))


def test_describe_is_json_and_readable():
    enc = CellEncoding()
    d = enc.describe(enc.from_arch_str(ARCH6111))
    assert json.loads(json.dumps(d)) == d
    assert d["arch_str"] == ARCH6111
    assert d["nodes"]["node_3"] == {
        "node_0": "skip_connect",
        "node_1": "nor_conv_3x3",
        "node_2": "nor_conv_1x1",
    }
    assert d["genes"]["edge_2_1"] == "nor_conv_3x3"
    assert d["params"] == 1_073_466 and d["flops"] == 153_272_960


# -- the tabular evaluator ----------------------------------------------------------------------


def test_evaluator_looks_up_the_table_under_jit(table):
    ev = TabularEvaluator("cifar100", objectives=("edgegpu_latency", "fpga_energy"))
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
    ev = TabularEvaluator("cifar10", noise=1.0)
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
    with pytest.raises(ValueError, match=r"'imagenet'.*'imagenet16'"):
        TabularEvaluator("imagenet")
    with pytest.raises(ValueError, match=r"'pixel3_energy'.*'edgegpu_latency'"):
        TabularEvaluator(objectives=("pixel3_energy",))
    with pytest.raises(ValueError, match=r"noise must be >= 0.*-1"):
        TabularEvaluator(noise=-1)


def test_evaluator_constraints_make_violators_infeasible(table):
    ev = TabularEvaluator("cifar10", objectives=("edgegpu_latency",),
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
        TabularEvaluator(constraints=("speed <= 3",))
    with pytest.raises(ValueError, match=r"unit 's' not understood"):
        TabularEvaluator(constraints=("edgegpu_latency <= 3 s",))
