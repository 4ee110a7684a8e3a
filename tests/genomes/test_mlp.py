"""The ``mlp`` encoding: exactness of every execution shape, gradients, init scale and costs.

The ``_check_*`` helpers are generic over trainable encodings; ``test_conv.py`` reuses them.
"""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from evonas.genomes import MLPEncoding, TrainableEncoding, get_encoding
from evonas.genomes.mlp import MLPBounds

ATOL = 1e-5


def _leaf_count(tree) -> int:
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(tree))


def _active_mask(params, to_params):
    """A 0/1 tree over the max-bounds ``params``: 1 where ``to_params`` reads an entry."""
    positions = jax.tree.map(lambda leaf: jnp.arange(leaf.size).reshape(leaf.shape), params)
    read = {
        jax.tree_util.keystr(path): leaf
        for path, leaf in jax.tree_util.tree_leaves_with_path(to_params(positions))
    }

    def mark(path, leaf):
        flat = jnp.zeros(leaf.size, jnp.float32)
        key = jax.tree_util.keystr(path)
        if key in read:
            flat = flat.at[read[key].reshape(-1)].set(1.0)
        return flat.reshape(leaf.shape)

    return jax.tree_util.tree_map_with_path(mark, params)


def _check_exactness(enc, genomes, x, key):
    """For every genome: max supernet == supernet at its bounds == standalone build, and the same
    at the join of all the genomes' bounds. Returns the worst standalone difference."""
    archs = jax.vmap(enc.decode)(jnp.asarray(genomes))
    params = jax.jit(enc.supernet().init)(key, enc.decode(genomes[0]), x)
    joined = enc.bounds(genomes[0])
    for g in genomes[1:]:
        joined = enc.join(joined, enc.bounds(g))
    # One compiled program each for the max and the joined supernet, vmapped over the genomes.
    over_archs = lambda module: jax.jit(jax.vmap(module.apply, in_axes=(None, 0, None)))
    full = over_archs(enc.supernet())(params, archs, x)
    at_join = over_archs(enc.supernet(joined))(enc.slice_params(params, joined), archs, x)
    assert full.shape == (len(genomes), x.shape[0], enc.num_classes)
    np.testing.assert_allclose(at_join, full, atol=ATOL, rtol=1e-5)
    worst = 0.0
    for i, g in enumerate(genomes):
        arch = jax.tree.map(lambda a, i=i: a[i], archs)
        b = enc.bounds(g)
        exact = jax.jit(enc.supernet(b).apply)(enc.slice_params(params, b), arch, x)
        module, to_params = enc.build(g)
        standalone = jax.jit(module.apply)(to_params(params), x)
        assert float(jnp.std(full[i])) > 1e-3  # a dead network would make equality trivial
        np.testing.assert_allclose(exact, full[i], atol=ATOL, rtol=1e-5)
        np.testing.assert_allclose(standalone, full[i], atol=ATOL, rtol=1e-5)
        worst = max(worst, float(jnp.abs(standalone - full[i]).max()))
    return worst


def _check_gradients(enc, genome, x, labels, key):
    """Gradients of the max supernet equal the standalone gradients on the active slice and are
    exactly zero elsewhere."""
    arch = enc.decode(genome)
    params = jax.jit(enc.supernet().init)(key, arch, x)
    module, to_params = enc.build(genome)

    def loss_full(p):
        logits = enc.supernet().apply(p, arch, x)
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], 1))

    def loss_exact(p):
        logits = module.apply(p, x)
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], 1))

    g_full = jax.jit(jax.grad(loss_full))(params)
    g_exact = jax.jit(jax.grad(loss_exact))(to_params(params))
    for a, b in zip(jax.tree.leaves(to_params(g_full)), jax.tree.leaves(g_exact)):
        np.testing.assert_allclose(a, b, atol=ATOL, rtol=1e-4)
    assert max(float(jnp.abs(leaf).max()) for leaf in jax.tree.leaves(g_exact)) > 1e-4
    mask = _active_mask(params, to_params)
    for (path, grad), m in zip(jax.tree_util.tree_leaves_with_path(g_full), jax.tree.leaves(mask)):
        masked_out = jnp.where(m > 0, 0.0, grad)
        assert float(jnp.abs(masked_out).max()) == 0.0, jax.tree_util.keystr(path)


def _check_costs(enc, genomes, x, key):
    """Useful costs count the standalone build; executed >= useful; equal at exact bounds."""
    params = jax.eval_shape(enc.supernet().init, key, enc.decode(genomes[0]), x)
    batched = jax.jit(jax.vmap(enc.cost))(jnp.asarray(genomes))
    for i, g in enumerate(genomes):
        c = enc.cost(g)
        _, to_params = enc.build(g)
        assert float(c["params"]) == _leaf_count(jax.eval_shape(to_params, params))
        assert float(batched["params"][i]) == float(c["params"])
        assert float(batched["flops"][i]) == float(c["flops"])
        assert float(c["executed_params"]) >= float(c["params"])
        assert float(c["executed_flops"]) >= float(c["flops"])
        assert float(c["executed_params"]) == _leaf_count(params)
        exact = enc.cost(g, enc.bounds(g))
        assert float(exact["executed_params"]) == float(c["params"])
        assert float(exact["executed_flops"]) == float(c["flops"])
        d = enc.describe(g)
        assert json.loads(json.dumps(d)) == d
        assert d["params"] == int(c["params"]) and d["flops"] == int(c["flops"])


# -- mlp -----------------------------------------------------------------------------------------

ENC = MLPEncoding(input_shape=(10, 2), num_classes=5, max_layers=3, widths=(4, 8, 16),
                  activations=("relu", "gelu", "tanh"))
X = jax.random.normal(jax.random.key(1), (6, 10, 2))
LABELS = jnp.arange(6) % 5
GENOMES = np.asarray(ENC.space.sample(jax.random.key(0), 6))


def _genome(enc, **genes):
    base = {n: 0 for n in enc.space.names}
    base.update(genes)
    return enc.space.from_dict(base)


def test_mlp_is_a_registered_hashable_trainable_encoding():
    enc = get_encoding("mlp", input_shape=(10, 2), num_classes=5, max_layers=3, widths=(4, 8, 16))
    assert isinstance(enc, TrainableEncoding)
    assert enc == MLPEncoding(input_shape=(10, 2), num_classes=5, max_layers=3, widths=(4, 8, 16))
    assert hash(enc) == hash(MLPEncoding((10, 2), 5, 3, (4, 8, 16)))
    assert enc.space.num_genes == 1 + 2 * 3
    assert enc.space.names[:3] == ("num_layers", "width_0", "activation_0")


def test_mlp_supernet_bounds_join_and_build_agree():
    assert len({int(g[0]) for g in GENOMES}) >= 2  # the sample covers several depths
    worst = _check_exactness(ENC, GENOMES, X, jax.random.key(2))
    assert worst < ATOL


def test_mlp_gradients_match_standalone_and_vanish_outside_the_slice():
    deep = [g for g in GENOMES if g[0] == 2][0]  # 3 layers: widths and activations vary
    _check_gradients(ENC, deep, X, LABELS, jax.random.key(10))
    _check_gradients(ENC, GENOMES[1], X, LABELS, jax.random.key(11))


def test_mlp_costs_count_the_standalone_module():
    _check_costs(ENC, GENOMES, X, jax.random.key(3))
    g = _genome(ENC, num_layers=2, width_0=4, width_1=16)
    c = ENC.cost(g)
    assert float(c["flops"]) == 20 * 4 + 4 * 16 + 16 * 5
    assert float(c["params"]) == 20 * 4 + 4 + 4 * 16 + 16 + 16 * 5 + 5
    assert float(c["executed_flops"]) == 20 * 16 + 16 * 16 * 2 + 16 * 5


def test_mlp_inactive_genes_are_ignored():
    a = _genome(ENC, num_layers=1, width_0=8, width_1=4, activation_2="tanh")
    b = _genome(ENC, num_layers=1, width_0=8, width_1=16, activation_2="relu")
    assert ENC.bounds(a) == ENC.bounds(b) == MLPBounds((8,), 1)
    for u, v in zip(ENC.decode(a), ENC.decode(b)):
        np.testing.assert_array_equal(u, v)
    assert ENC.describe(a) == ENC.describe(b)


def test_mlp_join_and_max_bounds():
    a = ENC.bounds(_genome(ENC, num_layers=1, width_0=16))
    b = ENC.bounds(_genome(ENC, num_layers=3, width_0=4, width_1=8, width_2=4))
    j = ENC.join(a, b)
    assert j == MLPBounds((16, 8, 4), 1)
    assert j.head_width == 16
    assert ENC.join(j, ENC.max_bounds()) == ENC.max_bounds() == MLPBounds((16, 16, 16), 1)


def test_mlp_init_uses_the_real_fan_in():
    enc = MLPEncoding(input_shape=(64,), num_classes=10, max_layers=2, widths=(32, 512))
    narrow = _genome(enc, num_layers=2, width_0=32, width_1=512)
    wide = _genome(enc, num_layers=2, width_0=512, width_1=32)
    archs = jax.vmap(enc.decode)(jnp.stack([jnp.asarray(narrow), jnp.asarray(wide)]))
    x = jnp.zeros((2, 64))
    keys = jax.random.split(jax.random.key(4), 2)
    params = jax.jit(jax.vmap(enc.supernet().init, in_axes=(0, 0, None)))(keys, archs, x)
    p = params["params"]
    # individual 0: layer 1 reads 32 real inputs; individual 1: 512.
    std_narrow = float(jnp.std(p["dense_1"]["kernel"][0, :32, :512]))
    std_wide = float(jnp.std(p["dense_1"]["kernel"][1, :512, :32]))
    np.testing.assert_allclose(std_narrow, 1 / math.sqrt(32), rtol=0.05)
    np.testing.assert_allclose(std_wide, 1 / math.sqrt(512), rtol=0.05)
    np.testing.assert_allclose(float(jnp.std(p["dense_0"]["kernel"][0, :, :32])),
                               1 / math.sqrt(64), rtol=0.05)
    np.testing.assert_allclose(float(jnp.std(p["head"]["kernel"][0, :512])),
                               1 / math.sqrt(512), rtol=0.05)
    np.testing.assert_allclose(float(jnp.std(p["head"]["kernel"][1, :32])),
                               1 / math.sqrt(32), rtol=0.1)
    assert float(jnp.abs(p["dense_0"]["bias"]).max()) == 0.0


def test_mlp_population_step_matches_one_by_one():
    archs = jax.vmap(ENC.decode)(jnp.asarray(GENOMES[:4]))
    keys = jax.random.split(jax.random.key(5), 4)
    params = jax.jit(jax.vmap(ENC.supernet().init, in_axes=(0, 0, None)))(keys, archs, X)
    logits = jax.jit(jax.vmap(ENC.supernet().apply, in_axes=(0, 0, None)))(params, archs, X)
    for i in range(4):
        one = jax.tree.map(lambda leaf, i=i: leaf[i], params)
        module, to_params = ENC.build(GENOMES[i])
        np.testing.assert_allclose(logits[i], jax.jit(module.apply)(to_params(one), X), atol=ATOL)
    # slice_params accepts a leading population axis too.
    b = ENC.bounds(GENOMES[0])
    sliced = ENC.slice_params(params, b)
    assert sliced["params"]["head"]["kernel"].shape == (4, b.head_width, 5)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"input_shape": (0, 3)}, "input_shape (0, 3)"),
        ({"input_shape": 7}, "input_shape must be a tuple"),
        ({"widths": (8, -1)}, "widths"),
        ({"widths": ()}, "widths"),
        ({"activations": ("relu", "swish")}, "'swish'"),
        ({"max_layers": 0}, "max_layers"),
        ({"num_classes": 1.5}, "num_classes"),
    ],
)
def test_mlp_rejects_bad_options(kwargs, needle):
    with pytest.raises(ValueError) as err:
        MLPEncoding(**kwargs)
    assert needle in str(err.value)


def test_mlp_rejects_bounds_outside_the_space():
    with pytest.raises(ValueError, match="exceed the space"):
        ENC.supernet(MLPBounds((32,), 1))
    with pytest.raises(ValueError, match="MLPBounds"):
        ENC.supernet((16, 16))
    with pytest.raises(ValueError, match="num_layers"):
        ENC.bounds(np.asarray([3, 0, 0, 0, 0, 0, 0]))
