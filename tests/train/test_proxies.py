"""Zero-cost proxies: each matches a straightforward reference on a tiny network, for the whole
population in one program, and the supernet's scores equal the standalone builds'."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from evonas.data import load_dataset
from evonas.genomes import CellEncoding, ConvEncoding, MLPEncoding, _layers
from evonas.train import PROXIES, zero_cost_scores
from evonas.train.programs import init_population

DATA = load_dataset("digits", limit=200)
# Enough units for 8 examples' codes to be distinct (else K is singular and log det noise).
MLP = MLPEncoding(input_shape=DATA.input_shape, num_classes=DATA.num_classes, max_layers=2,
                  widths=(16, 32), activations=("relu", "tanh"))
KEY = jax.random.key(3)


def _inputs(encoding, genomes, batch=8):
    """The parameters and batch zero_cost_scores uses, rebuilt by hand."""
    init_key, batch_key = jax.random.split(KEY)
    idx = np.asarray(jax.random.permutation(batch_key, len(DATA.y_train))[:batch])
    x, y = jnp.asarray(DATA.x_train[idx]), jnp.asarray(DATA.y_train[idx])
    params = init_population(encoding, init_key, jnp.arange(len(genomes)), jnp.asarray(genomes),
                             x[:1])
    return params, x, y


def _reference(encoding, genome, params, x, y):
    """The four proxies written out on the standalone network, with plain numpy for naswot."""
    module, to_params = encoding.build(genome)
    p = to_params(params)["params"]

    def loss(q):
        logits = module.apply({"params": q}, x)
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1))

    g = jax.grad(loss)(p)
    leaves = lambda t: [np.asarray(v, np.float64) for v in jax.tree.leaves(t)]
    grad_norm = np.sqrt(sum((v ** 2).sum() for v in leaves(g)))
    snip = sum(np.abs(a * b).sum() for a, b in zip(leaves(p), leaves(g)))
    absolute = jax.tree.map(jnp.abs, p)
    ones = jnp.ones((1, *x.shape[1:]))
    g1 = jax.grad(lambda q: jnp.sum(module.apply({"params": q}, ones)))(absolute)
    synflow = sum((a * b).sum() for a, b in zip(leaves(absolute), leaves(g1)))
    # naswot by hand for an MLP: every dense layer's pre-activation codes.
    h = np.asarray(x, np.float64).reshape(len(x), -1)
    codes = []
    layers = sorted(k for k in p if k.startswith("dense_"))
    for name in layers:
        z = h @ np.asarray(p[name]["kernel"]) + np.asarray(p[name]["bias"])
        codes.append((z > 0).astype(np.float64))
        act = module.activations[int(name.split("_")[1])]
        h = np.maximum(z, 0) if act == "relu" else np.tanh(z)
    c = np.concatenate(codes, axis=1)
    kernel = c @ c.T + (1 - c) @ (1 - c).T
    return {"grad_norm": grad_norm, "snip": snip, "synflow": synflow,
            "naswot": np.linalg.slogdet(kernel)[1]}


def test_every_proxy_matches_its_reference_on_a_tiny_mlp():
    genomes = np.asarray(MLP.space.sample(jax.random.key(0), 6))
    scores = zero_cost_scores(KEY, MLP, genomes, DATA, batch_size=8)
    assert set(scores) == set(PROXIES) and all(v.shape == (6,) for v in scores.values())
    params, x, y = _inputs(MLP, genomes)
    for i, genome in enumerate(genomes):
        mine = jax.tree.map(lambda a, i=i: a[i], params)
        ref = _reference(MLP, genome, {"params": mine}, x, y)
        for name in PROXIES:
            assert scores[name][i] == pytest.approx(ref[name], rel=2e-4, abs=1e-4), (name, i)
    assert np.ptp(scores["naswot"]) > 0 and np.ptp(scores["synflow"]) > 0


def test_the_supernet_scores_equal_the_standalone_conv_builds():
    enc = ConvEncoding(input_shape=(40, 1), max_layers=3, widths=(8, 16),
                       ops=("conv3", "dwsep5", "maxpool3", "identity"), stem_width=8)
    data = load_dataset("mnist1d", limit=300)
    genomes = np.asarray(enc.space.sample(jax.random.key(1), 5))
    scores = zero_cost_scores(KEY, enc, genomes, data, names=("naswot", "snip"), batch_size=12)
    init_key, batch_key = jax.random.split(KEY)
    idx = np.asarray(jax.random.permutation(batch_key, len(data.y_train))[:12])
    x = jnp.asarray(data.x_train[idx])
    params = init_population(enc, init_key, jnp.arange(5), jnp.asarray(genomes), x[:1])
    for i, genome in enumerate(genomes):
        module, to_params = enc.build(genome)
        p = to_params({"params": jax.tree.map(lambda a, i=i: a[i], params)})
        _, sown = module.apply(p, x, mutable=[_layers.CODES])
        codes = [v for v in jax.tree.leaves(sown[_layers.CODES], is_leaf=lambda v: isinstance(
            v, tuple) and len(v) == 2 and hasattr(v[0], "shape"))]
        c = np.concatenate([np.asarray(a) for a, _ in codes], axis=1).astype(np.float64)
        kernel = c @ c.T + (1 - c) @ (1 - c).T
        assert scores["naswot"][i] == pytest.approx(np.linalg.slogdet(kernel)[1], rel=1e-4)


def test_bad_proxies_are_refused_in_one_line():
    with pytest.raises(ValueError, match=r"proxy must be one of \['naswot', 'synflow', "
                       r"'grad_norm', 'snip'\]; got 'jacov'"):
        zero_cost_scores(KEY, MLP, np.zeros((1, MLP.space.num_genes), np.int32), DATA,
                         names=("jacov",))
    with pytest.raises(ValueError, match=r"synflow is degenerate for CellEncoding"):
        zero_cost_scores(KEY, CellEncoding(channels=4, cells_per_stage=1),
                         np.zeros((1, 6), np.int32), DATA, names=("synflow",))
