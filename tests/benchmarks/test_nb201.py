"""NAS-Bench-201: the vendored table, raw and as a generic Table."""

from __future__ import annotations

import csv
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from evonas.benchmarks import (
    DATASETS,
    DEVICES,
    ENERGY_DEVICES,
    get_benchmark,
    load_table,
    nb201,
)
from evonas.genomes import CellEncoding
from evonas.genomes.cell import OPS, arch_str_of
from tests.genomes.test_cell import ARCH0, ARCH6111

CSV = pathlib.Path(__file__).resolve().parents[3] / "shared/data/nas-bench-201/nb201.csv"
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


def test_generic_table_in_rank_order_equals_the_raw_table(table):
    generic = get_benchmark("nb201", dataset="cifar100")
    assert generic is nb201.table(dataset="cifar100") and len(generic) == 15625
    assert generic.fitness == "test_acc" and generic.truth == "test_acc"
    assert generic.protocol == "oracle tabular" and generic.maximize
    assert set(generic.costs) == {f"{d}_latency" for d in DEVICES} | {
        f"{d}_energy" for d in ENERGY_DEVICES}
    genomes = jnp.asarray(table.genomes, jnp.int32)
    rows = np.asarray(jax.jit(generic.rows)(genomes))
    np.testing.assert_array_equal(rows, np.asarray(generic.space.rank(genomes)))
    for column in ("test_acc", "edgegpu_latency", "fpga_energy", "edgetpu_latency"):
        np.testing.assert_array_equal(np.asarray(generic.lookup(genomes, column)),
                                      table.column("cifar100", column))
    assert generic.optimum() == pytest.approx(73.51333, abs=1e-3)
    np.testing.assert_array_equal(generic.all_genomes()[rows], table.genomes)
    # The table's own notation: a benchmark index.
    assert generic.parse("6111").tolist() == table.genome_of(6111).tolist()
    assert generic.parse("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|") is None
    with pytest.raises(ValueError, match=r"index 15625 is out of range; allowed 0..15624"):
        generic.parse("15625")
    with pytest.raises(ValueError, match=r"unknown NAS-Bench-201 dataset 'mnist'"):
        get_benchmark("nb201", dataset="mnist")
    with pytest.raises(ValueError, match=r"benchmark 'nb201' .* takes no option 'datset' "
                       r"\(did you mean 'dataset'\?\)"):
        get_benchmark("nb201", datset="cifar10")
