"""The trainable NAS-Bench-201 cell: supernet vs exact build, bounds, slicing, costs, init."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from evonas.genomes import CellEncoding, TrainableEncoding
from evonas.genomes.cell import EDGES, OPS, CellBounds

# A network small enough for a shared CPU: C=2 (stages of 2, 4, 8 channels), one cell a stage.
ENC = CellEncoding(num_classes=5, input_size=8, channels=2, cells_per_stage=1, in_channels=1)
GENOMES = np.asarray(
    [
        [4, 2, 1, 3, 0, 3],  # every op
        [3, 3, 3, 3, 3, 3],  # all nor_conv_3x3
        [0, 0, 0, 1, 4, 2],  # nodes 1 and 2 have no inputs: their ops see zeros
        [1, 0, 2, 0, 0, 0],  # node 3 has no inputs: the cell outputs zeros
    ],
    np.int32,
)


def _count(tree) -> int:
    return sum(int(np.prod(a.shape)) for a in jax.tree_util.tree_leaves(tree))


@pytest.fixture(scope="module")
def setup():
    # The rbg PRNG compiles ~4x faster than threefry on CPU; how parameters get their keys (by
    # module path) is the same for every PRNG implementation.
    key = jax.random.key(0, impl="rbg")
    x = jax.random.normal(jax.random.key(1), (3, 8, 8, 1))
    arch = ENC.decode(GENOMES[0])
    variables = ENC.supernet().init(key, arch, x)
    return key, x, variables


def test_is_a_trainable_encoding():
    assert isinstance(ENC, TrainableEncoding)
    arch = jax.jit(jax.vmap(ENC.decode))(jnp.asarray(GENOMES))
    assert arch.ops.shape == (4, 6, 5)
    np.testing.assert_array_equal(arch.ops.argmax(-1), GENOMES)
    np.testing.assert_array_equal(arch.ops.sum(-1), 1.0)


def test_supernet_equals_the_exact_build(setup):
    key, x, variables = setup
    archs = jax.vmap(ENC.decode)(jnp.asarray(GENOMES))
    masked = jax.jit(jax.vmap(ENC.supernet().apply, in_axes=(None, 0, None)))(variables, archs, x)
    assert masked.shape == (len(GENOMES), 3, 5)
    for genome, logits in zip(GENOMES, masked):
        module, to_params = ENC.build(genome)
        standalone = module.apply(to_params(variables), x)
        np.testing.assert_allclose(standalone, logits, atol=2e-5, rtol=1e-5)
    # Different genomes compute different functions, and the dead cell ignores its input.
    assert float(jnp.abs(masked[0] - masked[1]).max()) > 1e-2
    dead = ENC.build(GENOMES[3])[0]
    other_x = jax.random.normal(jax.random.key(2), x.shape)
    out = dead.apply(ENC.build(GENOMES[3])[1](variables), other_x)
    np.testing.assert_allclose(out, masked[3], atol=1e-6)


def test_bounded_supernets_match_the_masked_one(setup):
    key, x, variables = setup
    a, b = GENOMES[0], GENOMES[2]
    joined = ENC.join(ENC.bounds(a), ENC.bounds(b))
    assert joined == CellBounds(((0, 4), (0, 2), (0, 1), (1, 3), (0, 4), (2, 3)))
    assert ENC.join(joined, ENC.max_bounds()) == ENC.max_bounds()
    full = ENC.supernet().apply(variables, ENC.decode(a), x)
    for bounds in (ENC.bounds(a), joined):
        params = ENC.slice_params(variables, bounds)
        out = ENC.supernet(bounds).apply(params, ENC.decode(a), x)
        np.testing.assert_allclose(out, full, atol=2e-5, rtol=1e-5)


def test_slice_params_keeps_population_axes_and_checks_input(setup):
    _, _, variables = setup
    population = jax.tree_util.tree_map(lambda p: jnp.stack([p, 2 * p]), variables)
    bounds = ENC.bounds(GENOMES[1])
    sliced = ENC.slice_params(population["params"], bounds)
    cell = sliced["stage_2_cell_0"]
    assert sorted(cell) == [f"edge_{t}_{f}_nor_conv_3x3" for t, f in EDGES]
    assert cell["edge_3_2_nor_conv_3x3"]["conv"]["kernel"].shape == (2, 3, 3, 8, 8)
    np.testing.assert_array_equal(
        cell["edge_3_2_nor_conv_3x3"]["conv"]["kernel"][1],
        2 * variables["params"]["stage_2_cell_0"]["edge_3_2_nor_conv_3x3"]["conv"]["kernel"],
    )
    bounded = ENC.slice_params(variables, bounds)
    missing = r"stage_0_cell_0 lack \['edge_1_0_nor_conv_1x1', .*max-bounds"
    with pytest.raises(ValueError, match=missing):
        ENC.slice_params(bounded, ENC.max_bounds())
    with pytest.raises(ValueError, match=r"bounds must be CellBounds.*got \(\(0,\),\)"):
        ENC.supernet(((0,),))
    with pytest.raises(ValueError, match=r"6 edges of op indices in 0\.\.4; got"):
        CellBounds(((5,),) * 6)


def test_costs_count_the_modules_parameters(setup):
    _, _, variables = setup
    # The analytic counts equal the real parameter trees: executed at max bounds ...
    assert _count(variables) == float(ENC.cost(GENOMES[0])["executed_params"])
    for genome in GENOMES:
        cost = ENC.cost(genome, ENC.bounds(genome))
        module, to_params = ENC.build(genome)
        # ... useful = the standalone module, and exact bounds execute nothing more.
        assert _count(to_params(variables)) == float(cost["params"])
        assert float(cost["params"]) == ENC.describe(genome)["params"]
        assert float(cost["executed_params"]) == float(cost["params"])
        assert float(cost["executed_flops"]) == float(cost["flops"])
    joined = ENC.join(ENC.bounds(GENOMES[0]), ENC.bounds(GENOMES[2]))
    for bounds, population in ((None, GENOMES), (joined, GENOMES[[0, 2]])):
        cost = jax.jit(jax.vmap(lambda g, b=bounds: ENC.cost(g, b)))(population)
        assert bool(jnp.all(cost["executed_params"] > cost["params"]))
        assert bool(jnp.all(cost["executed_flops"] > cost["flops"]))
    # The masked supernet executes every conv on every edge.
    full = ENC.cost(GENOMES[0])
    all_conv = ENC.cost(GENOMES[1])
    one_by_one = ENC.cost(np.full(6, OPS.index("nor_conv_1x1")))
    none = ENC.cost(np.zeros(6, np.int32))
    expected = float(all_conv["flops"] + one_by_one["flops"] - none["flops"])
    assert float(full["executed_flops"]) == expected


def test_init_matches_the_standalone_module(setup):
    key, x, variables = setup
    module, to_params = ENC.build(GENOMES[0])
    standalone = module.init(key, x)
    assert jax.tree_util.tree_structure(standalone) == jax.tree_util.tree_structure(
        to_params(variables)
    )
    for got, want in zip(
        jax.tree_util.tree_leaves(to_params(variables)), jax.tree_util.tree_leaves(standalone)
    ):
        np.testing.assert_array_equal(got, want)
    # LeCun-normal scale of the real fan-in: std = 1 / sqrt(9 * 8) for a stage-3 3x3 conv.
    cell = variables["params"]["stage_2_cell_0"]
    k3 = jnp.concatenate(
        [cell[f"edge_{t}_{f}_nor_conv_3x3"]["conv"]["kernel"].ravel() for t, f in EDGES]
    )
    assert float(k3.std()) == pytest.approx(1 / np.sqrt(72), rel=0.08)
    k1 = jnp.concatenate(
        [cell[f"edge_{t}_{f}_nor_conv_1x1"]["conv"]["kernel"].ravel() for t, f in EDGES]
    )
    assert float(k1.std()) == pytest.approx(1 / np.sqrt(8), rel=0.15)
