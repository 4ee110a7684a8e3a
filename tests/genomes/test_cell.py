"""The NAS-Bench-201 cell encoding: arch strings, costs, descriptions, isomorphism classes."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from evonas.benchmarks import encoding_for, load_table
from evonas.genomes import CellEncoding, get_encoding, list_encodings
from evonas.genomes.cell import OPS, canonical_ranks

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




# -- isomorphism classes ------------------------------------------------------------------------


def test_canonical_merges_isomorphic_cells_and_nothing_else():
    enc = CellEncoding()
    ranks = canonical_ranks()
    assert len(np.unique(ranks)) == 4930  # of 15,625 (module docstring of ``canonical``)
    assert (ranks <= np.arange(15625)).all() and (ranks[ranks] == ranks).all()
    canon = jax.jit(enc.canonical)
    parse = enc.from_arch_str
    # Node 2 feeds nothing into the output (its edge to node 3 is "none"): its ops don't matter.
    a = parse("|skip_connect~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
              "+|none~0|avg_pool_3x3~1|none~2|")
    b = parse("|skip_connect~0|+|none~0|none~1|+|none~0|avg_pool_3x3~1|none~2|")
    # A skip passes its input on: avg_pool(node 1) with node 1 = x is avg_pool(x).
    c = parse("|none~0|+|none~0|none~1|+|avg_pool_3x3~0|none~1|none~2|")
    assert canon(a).tolist() == canon(b).tolist() == canon(c).tolist()
    # Sums are sets of terms, however nested: (conv1(x) + pool(x)) + conv3(x) in either order.
    d = parse("|nor_conv_1x1~0|+|avg_pool_3x3~0|skip_connect~1|"
              "+|nor_conv_3x3~0|none~1|skip_connect~2|")
    e = parse("|avg_pool_3x3~0|+|nor_conv_3x3~0|skip_connect~1|"
              "+|nor_conv_1x1~0|none~1|skip_connect~2|")
    assert canon(d).tolist() == canon(e).tolist()
    # Different ops, or an op on a different input, stay apart.
    f = parse("|nor_conv_1x1~0|+|avg_pool_3x3~0|skip_connect~1|"
              "+|nor_conv_1x1~0|none~1|skip_connect~2|")
    g = parse("|nor_conv_1x1~0|+|avg_pool_3x3~0|skip_connect~1|"
              "+|none~0|nor_conv_3x3~1|skip_connect~2|")
    assert len({tuple(canon(x).tolist()) for x in (d, f, g)}) == 3
    # Batched, idempotent, inside the space.
    genomes = enc.space.sample(jax.random.key(0), 64)
    once = canon(genomes)
    np.testing.assert_array_equal(canon(once), once)
    assert bool(enc.space.contains(once).all())
