"""Weight inheritance: the trainer keeps what each individual learned in the max-bounds layout,
and a child starts from its parent's values on the overlap of their architectures."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from evonas.data import load_dataset
from evonas.genomes.mlp import MLPEncoding
from evonas.train import TrainConfig, inherit, train_population

# (num_layers, width_0, act_0, width_1, act_1); widths (8, 16): the parent is 1 layer of 8, the
# child 2 layers of 16 then 8, so they share the first layer's 8 units and nothing after.
PARENT = np.array([[0, 0, 0, 0, 0]], np.int32)
CHILD = np.array([[1, 1, 0, 0, 0]], np.int32)
CONFIG = dict(steps=8, batch_size=32, learning_rate=2e-2, eval_batch_size=512)


@pytest.fixture(scope="module")
def dataset():
    return load_dataset("mnist1d", limit=256)


@pytest.fixture(scope="module")
def encoding():
    return MLPEncoding(input_shape=(40, 1), widths=(8, 16), max_layers=2,
                       activations=("relu", "tanh"))


def _init(encoding, dataset, genomes, key):
    """The usual initial max-bounds parameters: the trainer's, with no training."""
    from evonas.train.cache import ProgramCache

    init_key, _ = jax.random.split(key)
    index = np.arange(len(genomes), dtype=np.int32)
    params = ProgramCache().init(encoding, init_key, index, genomes,
                                 np.asarray(dataset.x_train[:1]))
    return jax.tree.map(np.asarray, params)


@pytest.mark.parametrize("plan", ["masked", "grouped", "auto"])
def test_kept_parameters_are_what_training_changed(encoding, dataset, plan):
    result = train_population(jax.random.key(0), encoding, PARENT, dataset,
                              TrainConfig(**CONFIG, plan=plan), keep_params=True)
    kernel = result.params["dense_0"]["kernel"][0]  # [40, 16]: 8 units are the arch's
    assert np.isfinite(kernel[:, :8]).all() and np.isnan(kernel[:, 8:]).all()
    init = _init(encoding, dataset, PARENT, jax.random.key(0))
    assert not np.allclose(kernel[:, :8], init["dense_0"]["kernel"][0][:, :8])
    # The second layer is not the parent's: nothing of it is kept.
    assert np.isnan(result.params["dense_1"]["kernel"]).all()


def test_a_child_starts_from_its_parent_on_the_overlap(encoding, dataset):
    parent = train_population(jax.random.key(0), encoding, PARENT, dataset,
                              TrainConfig(**CONFIG), keep_params=True)
    fresh = _init(encoding, dataset, CHILD, jax.random.key(1))
    start = inherit(fresh, parent.params)
    kept = parent.params["dense_0"]["kernel"][0]
    child = start["dense_0"]["kernel"][0]
    np.testing.assert_array_equal(child[:, :8], kept[:, :8])  # the overlap: the parent's
    np.testing.assert_array_equal(child[:, 8:], fresh["dense_0"]["kernel"][0][:, 8:])
    np.testing.assert_array_equal(start["dense_1"]["kernel"],
                                  fresh["dense_1"]["kernel"])
    # The trainer starts from exactly these values: with a tiny learning rate, what it keeps
    # (the values it changed) stays within the tiny step of them.
    crawl = train_population(jax.random.key(1), encoding, CHILD, dataset,
                             TrainConfig(**{**CONFIG, "learning_rate": 1e-7}),
                             start=parent.params, keep_params=True)
    for got, want in zip(jax.tree.leaves(crawl.params), jax.tree.leaves(start)):
        changed = np.isfinite(got)
        np.testing.assert_allclose(got[changed], want[changed], atol=1e-5)
    # The child trains its 16 first-layer units (but a unit ReLU never opens keeps its values).
    assert np.isfinite(crawl.params["dense_0"]["kernel"][0]).mean() > 0.75
    trained = train_population(jax.random.key(1), encoding, CHILD, dataset,
                               TrainConfig(**CONFIG), start=parent.params)
    fresh_run = train_population(jax.random.key(1), encoding, CHILD, dataset,
                                 TrainConfig(**CONFIG))
    assert trained.metrics["train_loss"][0] != fresh_run.metrics["train_loss"][0]


def test_start_parameters_of_another_layout_are_refused(encoding, dataset):
    parent = train_population(jax.random.key(0), encoding, PARENT, dataset,
                              TrainConfig(**CONFIG), keep_params=True)
    bad = jax.tree.map(lambda a: a[:, :3], parent.params)
    with pytest.raises(ValueError, match="don't fit the population's max-bounds layout"):
        train_population(jax.random.key(1), encoding, CHILD, dataset, TrainConfig(**CONFIG),
                         start=bad)
