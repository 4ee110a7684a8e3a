"""The ``conv`` encoding (1-D and 2-D): exactness of every execution shape, gradients, shared
kernels, init scale and costs."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from evonas.genomes import ConvEncoding, TrainableEncoding, _layers, get_encoding
from evonas.genomes.conv import ConvBounds, ConvLayerBounds
from tests.genomes.test_mlp import ATOL, _check_costs, _check_exactness, _check_gradients

ENC1 = ConvEncoding(input_shape=(12, 2), num_classes=5, max_layers=3, widths=(4, 8),
                    stem_width=6)
X1 = jax.random.normal(jax.random.key(1), (3, 12, 2))
ENC2 = ConvEncoding(input_shape=(6, 6, 1), num_classes=4, max_layers=2, widths=(3, 5),
                    ops=("conv3", "conv5", "dwsep3", "maxpool3", "avgpool3", "identity"),
                    activations=("relu", "tanh"), stem_width=4)
X2 = jax.random.normal(jax.random.key(2), (2, 6, 6, 1))
LABELS = jnp.arange(3) % 4


def _genome(enc, **genes):
    base = {n: 0 for n in enc.space.names}
    base.update(genes)
    return enc.space.from_dict(base)


def _layer(i, op, width=None, act=None, residual=False):
    genes = {f"on_{i}": True, f"op_{i}": op, f"residual_{i}": residual}
    if width is not None:
        genes[f"width_{i}"] = width
    if act is not None:
        genes[f"activation_{i}"] = act
    return genes


# A conv3 inside a conv7 kernel, a dwsep narrowing 8 -> 4 with a truncated residual, a pool.
MIXED1 = _genome(ENC1, **_layer(0, "conv3", 8, "gelu"), **_layer(1, "dwsep5", 4, "silu", True),
                 **_layer(2, "maxpool3", residual=True))
MIXED2 = _genome(ENC2, **_layer(0, "conv3", 5, "tanh", True), **_layer(1, "dwsep3", 3, "relu"))


def test_conv_is_a_registered_hashable_trainable_encoding():
    enc = get_encoding("conv", input_shape=(12, 2), num_classes=5, max_layers=3, widths=(4, 8),
                       stem_width=6)
    assert isinstance(enc, TrainableEncoding)
    assert enc == ENC1 and hash(enc) == hash(ENC1)
    assert enc.space.num_genes == 5 * 3
    assert enc.space.names[:5] == ("on_0", "op_0", "width_0", "activation_0", "residual_0")


def test_conv1d_supernet_bounds_join_and_build_agree():
    genomes = np.concatenate([np.asarray(ENC1.space.sample(jax.random.key(0), 4)), MIXED1[None]])
    worst = _check_exactness(ENC1, genomes, X1, jax.random.key(3))
    assert worst < ATOL


def test_conv2d_supernet_bounds_join_and_build_agree():
    genomes = np.concatenate([np.asarray(ENC2.space.sample(jax.random.key(5), 2)), MIXED2[None]])
    _check_exactness(ENC2, genomes, X2, jax.random.key(6))


def test_conv_gradients_match_standalone_and_vanish_outside_the_slice():
    _check_gradients(ENC1, MIXED1, X1, LABELS, jax.random.key(7))
    _check_gradients(ENC2, MIXED2, X2, LABELS[:2], jax.random.key(8))


def test_conv_implementations_agree():
    arch = ENC1.decode(MIXED1)
    bounds = ENC1.bounds(MIXED1)
    params = ENC1.supernet(bounds).init(jax.random.key(9), arch, X1)
    im2col = ConvEncoding(input_shape=(12, 2), num_classes=5, max_layers=3, widths=(4, 8),
                          stem_width=6, conv_impl="im2col")
    np.testing.assert_allclose(jax.jit(im2col.supernet(bounds).apply)(params, arch, X1),
                               jax.jit(ENC1.supernet(bounds).apply)(params, arch, X1), atol=ATOL)
    for nd in (1, 2):
        x = jax.random.normal(jax.random.key(10), (2,) + (7,) * nd + (3,))
        k = jax.random.normal(jax.random.key(11), (5,) * nd + (3, 4))
        dw = jax.random.normal(jax.random.key(12), (3,) * nd + (1, 3))
        dense = [_layers.conv(x, k, impl) for impl in _layers.CONV_IMPLS]
        depthwise = [_layers.depthwise_conv(x, dw, impl) for impl in _layers.CONV_IMPLS]
        for a, b in zip(dense[1:], depthwise[1:]):
            np.testing.assert_allclose(a, dense[0], atol=1e-4)
            np.testing.assert_allclose(b, depthwise[0], atol=1e-5)


@pytest.mark.parametrize("nd, taps", [(1, 5), (2, 5), (2, 3)])
def test_the_depthwise_gradient_is_the_shifted_sums_gradient(nd, taps):
    """The shifted-sum depthwise conv has its own gradient (the input's: the same sum with the
    kernel flipped; the kernel's: a grouped convolution over the batch): it must equal what
    autodiff of the plain sum gives, alone and under vmap (a population), and the grouped lax
    conv's gradient."""
    x = jax.random.normal(jax.random.key(30), (3,) + (9,) * nd + (4,))
    kernel = jax.random.normal(jax.random.key(31), (taps,) * nd + (1, 4))
    w = jax.random.normal(jax.random.key(32), x.shape)
    loss = lambda f: lambda x, k: jnp.sum(f(x, k) * w)
    ours = jax.grad(loss(lambda x, k: _layers.depthwise_conv(x, k, "auto")), (0, 1))
    plain = jax.grad(loss(_layers._depthwise_taps), (0, 1))
    grouped = jax.grad(loss(lambda x, k: _layers.depthwise_conv(x, k, "lax")), (0, 1))
    for want in (plain(x, kernel), grouped(x, kernel)):
        for a, b in zip(jax.jit(ours)(x, kernel), want):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)
    xs, ks = jnp.stack([x, 2 * x]), jnp.stack([kernel, -kernel])
    for a, b in zip(jax.vmap(ours)(xs, ks), jax.vmap(plain)(xs, ks)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("shape", [(2, 7, 3), (2, 6, 5, 3), (1, 4, 4, 2)])
def test_downsample_is_a_2x_max_pool_whose_gradient_picks_one_input(shape):
    """The stride-2 max pool equals ``lax.reduce_window``'s; its gradient sends each output's
    cotangent whole to one input of its window, one that holds the window's max, also where
    several do (a maxpool's overlapping windows and ReLU zeros make such ties)."""
    x = jnp.round(jax.random.normal(jax.random.key(33), shape))  # many exact ties
    dims = (1,) + (2,) * (len(shape) - 2) + (1,)
    want = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, dims, dims, "VALID")
    np.testing.assert_array_equal(_layers.downsample(x), want)
    g = jax.random.uniform(jax.random.key(34), want.shape, minval=1.0, maxval=2.0)
    grad = jax.jit(jax.grad(lambda x: jnp.sum(_layers.downsample(x) * g)))(x)

    def windows(a):  # [batch, *out_spatial, channels, window]
        nd = a.ndim - 2
        a = a[(slice(None),) + tuple(slice(0, 2 * n) for n in want.shape[1:-1])]
        a = a.reshape((a.shape[0],) + sum(((n, 2) for n in want.shape[1:-1]), ())
                      + (a.shape[-1],))
        order = (0, *range(1, 2 * nd, 2), 2 * nd + 1, *range(2, 2 * nd + 1, 2))
        return np.asarray(a.transpose(order)).reshape(want.shape + (2 ** nd,))

    gw, xw = windows(grad), windows(x)
    assert ((gw != 0).sum(-1) == 1).all()  # one input per window, never split, never none
    np.testing.assert_array_equal(gw.sum(-1), g)
    chosen = np.take_along_axis(xw, np.argmax(gw != 0, -1)[..., None], -1)[..., 0]
    np.testing.assert_array_equal(chosen, want)  # and it holds the max
    assert (xw == np.asarray(want)[..., None]).sum(-1).max() > 1  # ties were there


def test_conv_shares_one_kernel_across_kernel_sizes():
    conv3 = _genome(ENC1, **_layer(0, "conv3", 8))
    conv7 = _genome(ENC1, **_layer(0, "conv7", 8))
    joined = ENC1.join(ENC1.bounds(conv3), ENC1.bounds(conv7))
    assert joined.layers[0] == ConvLayerBounds(("conv",), 7, 0, 8)
    params = ENC1.supernet().init(jax.random.key(13), ENC1.decode(conv7), X1)
    kernel = params["params"]["layer_0"]["conv_kernel"]
    _, to_params = ENC1.build(conv3)
    np.testing.assert_array_equal(to_params(params)["params"]["layer_0"]["conv_kernel"],
                                  kernel[2:5, :6, :8])
    arch = ENC1.decode(conv3)
    np.testing.assert_array_equal(arch.conv_taps[0], [0, 0, 1, 1, 1, 0, 0])


def test_conv_costs_count_the_standalone_module():
    genomes = np.concatenate([np.asarray(ENC1.space.sample(jax.random.key(14), 4)), MIXED1[None]])
    _check_costs(ENC1, genomes, X1, jax.random.key(15))
    _check_costs(ENC2, np.stack([MIXED2]), X2, jax.random.key(16))
    c = ENC1.cost(MIXED1)
    stem, conv3, dwsep, head = 3 * 2 * 6, 3 * 6 * 8, 5 * 8 + 8 * 4, 4 * 5
    assert float(c["flops"]) == 12 * (stem + conv3 + dwsep) + head
    assert float(c["params"]) == stem + 6 + conv3 + 8 + dwsep + 4 + head + 5


# The same spaces with layer norms: every conv (and the stem) standardises its pre-activations
# over the real channels only, so the masked supernet still computes the standalone network.
# A flattening head: a [positions, channels, classes] kernel, narrower nets a prefix slice.
ENC1N = dataclasses.replace(ENC1, norm="layer")
ENC1F = dataclasses.replace(ENC1, head="flatten")
ENC2N = dataclasses.replace(ENC2, norm="layer", head="flatten")
# A hidden dense layer in the head (flattening or pooling): its kernel's channel axis is the
# prefix-sliced one, the logits' kernel [hidden, classes] is the same for every architecture.
ENC1FH = dataclasses.replace(ENC1, head="flatten", head_hidden=3)
ENC1H = dataclasses.replace(ENC1, head_hidden=3)


@pytest.mark.parametrize("enc", [ENC1N, ENC1F, ENC1FH, ENC1H])
def test_conv_with_layer_norm_or_flat_head_supernet_build_gradients_and_costs_agree(enc):
    genomes = np.concatenate([np.asarray(enc.space.sample(jax.random.key(20), 4)),
                              MIXED1[None]])
    assert _check_exactness(enc, genomes, X1, jax.random.key(21)) < ATOL
    _check_gradients(enc, MIXED1, X1, LABELS, jax.random.key(23))
    _check_costs(enc, genomes, X1, jax.random.key(25))


def test_conv_2d_with_layer_norm_and_flat_head():
    _check_exactness(ENC2N, np.stack([MIXED2]), X2, jax.random.key(22))
    _check_gradients(ENC2N, MIXED2, X2, LABELS[:2], jax.random.key(24))
    _check_costs(ENC2N, np.stack([MIXED2]), X2, jax.random.key(27))


def test_norm_and_head_costs_and_descriptions():
    plain = float(ENC1.cost(MIXED1)["params"])
    # Three numbers per output channel of the stem and each conv-like layer: bias, scale, shift.
    assert float(ENC1N.cost(MIXED1)["params"]) - plain == 2 * (6 + 8 + 4)
    # The flat head reads 12 positions of the last 4 channels (no reductions in ENC1).
    assert float(ENC1F.cost(MIXED1)["params"]) - plain == (12 - 1) * 4 * 5
    assert float(ENC1F.cost(MIXED1)["flops"]) - float(ENC1.cost(MIXED1)["flops"]) == 11 * 4 * 5
    assert ENC1N.describe(MIXED1)["norm"] == "layer" and "norm" not in ENC1.describe(MIXED1)
    assert ENC1F.describe(MIXED1)["head"] == "flatten" and "head" not in ENC1.describe(MIXED1)
    # A hidden layer of 3: 12 positions x 4 channels -> 3 units -> 5 classes, with 3 biases.
    hidden = float(ENC1FH.cost(MIXED1)["params"]) - float(ENC1F.cost(MIXED1)["params"])
    assert hidden == (12 * 4 * 3 + 3 + 3 * 5) - 12 * 4 * 5
    assert float(ENC1FH.cost(MIXED1)["flops"]) - float(ENC1F.cost(MIXED1)["flops"]) == (
        12 * 4 * 3 + 3 * 5 - 12 * 4 * 5)
    assert ENC1FH.describe(MIXED1)["head_hidden"] == 3
    assert "head_hidden" not in ENC1F.describe(MIXED1)


def test_layer_norm_uses_the_real_channels_only():
    z = jax.random.normal(jax.random.key(26), (2, 5, 3))
    padded = jnp.concatenate([z, 7.0 * jnp.ones((2, 5, 2))], axis=-1)
    got = _layers.normalize(padded, jnp.asarray([1.0, 1.0, 1.0, 0.0, 0.0]))[..., :3]
    flat = np.asarray(z).reshape(2, -1)
    want = (flat - flat.mean(1, keepdims=True)) / np.sqrt(flat.var(1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(got, want.reshape(z.shape), atol=1e-5)


def test_conv_inactive_genes_are_ignored():
    a = _genome(ENC1, **_layer(0, "maxpool3", 4, "gelu"), op_1="conv7", width_1=8)
    b = _genome(ENC1, **_layer(0, "maxpool3", 8, "relu"), op_1="dwsep5", residual_1=True)
    assert ENC1.bounds(a) == ENC1.bounds(b)
    for u, v in zip(ENC1.decode(a), ENC1.decode(b)):
        np.testing.assert_array_equal(u, v)
    assert ENC1.describe(a) == ENC1.describe(b)
    assert ENC1.describe(a)["layers"] == [
        {"index": 0, "op": "maxpool3", "width": 6, "activation": None, "residual": False}
    ]


def test_conv_bounds_join_and_max():
    a = ENC1.bounds(_genome(ENC1, **_layer(0, "conv5", 4), **_layer(2, "avgpool3")))
    b = ENC1.bounds(_genome(ENC1, **_layer(0, "dwsep5", 8)))
    assert a.layers[2] == ConvLayerBounds(("avgpool",), 0, 0, 4)
    j = ENC1.join(a, b)
    assert j.layers[0] == ConvLayerBounds(("conv", "dwsep"), 5, 5, 8)
    assert j.layers[1] == ConvLayerBounds(("keep",), 0, 0, 8)
    top = ENC1.max_bounds()
    kinds = ("conv", "dwsep", "maxpool", "avgpool", "keep")
    assert top == ConvBounds((ConvLayerBounds(kinds, 7, 5, 8),) * 3)
    assert ENC1.join(j, top) == top
    with pytest.raises(ValueError, match="exceed the space"):
        ENC1.supernet(ConvBounds((ConvLayerBounds(("conv",), 9, 0, 8),) * 3))


def test_conv_init_uses_the_real_fan_in():
    enc = ConvEncoding(input_shape=(16, 1), max_layers=2, widths=(16, 64), stem_width=64,
                       ops=("conv3", "conv7"), activations=("relu",))
    g = _genome(enc, **_layer(0, "conv3", 16), **_layer(1, "conv7", 64))
    x = jnp.zeros((1, 16, 1))
    p = jax.jit(enc.supernet().init)(jax.random.key(17), enc.decode(g), x)["params"]
    k0 = p["layer_0"]["conv_kernel"]  # [7, 64, 64]: active [2:5, :64, :16], fan-in 3 * 64
    k1 = p["layer_1"]["conv_kernel"]  # active [:, :16, :64], fan-in 7 * 16
    np.testing.assert_allclose(float(jnp.std(k0[2:5, :, :16])), 1 / math.sqrt(192), rtol=0.06)
    np.testing.assert_allclose(float(jnp.std(k1[:, :16, :])), 1 / math.sqrt(112), rtol=0.06)
    np.testing.assert_allclose(float(jnp.std(p["head_kernel"])), 1 / math.sqrt(64), rtol=0.15)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"input_shape": (4, 4, 4, 1)}, "input_shape (4, 4, 4, 1)"),
        ({"input_shape": (40,)}, "input_shape (40,)"),
        ({"input_shape": (5, 1)}, "must be >= 7"),
        ({"ops": ("conv3", "conv4")}, "'conv4'"),
        ({"conv_impl": "fft"}, "conv_impl"),
        ({"stem_width": 0}, "stem_width"),
        ({"norm": "batch"}, "ConvEncoding.norm"),
        ({"head": "attention"}, "ConvEncoding.head"),
        ({"head_hidden": -1}, "ConvEncoding.head_hidden"),
        ({"head_hidden": 2.5}, "ConvEncoding.head_hidden"),
    ],
)
def test_conv_rejects_bad_options(kwargs, needle):
    with pytest.raises(ValueError) as err:
        ConvEncoding(**kwargs)
    assert needle in str(err.value)
