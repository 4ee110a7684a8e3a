"""Tests for evonas.data: splits, normalisation, the three sources, errors and batch indices."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from evonas.data import (
    DATASETS,
    Dataset,
    DatasetNotFoundError,
    batch_indices,
    load_dataset,
)
from evonas.data.splits import split_indices


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """A private cache dir for the whole module, so mnist1d is generated once (~2 s)."""
    path = tmp_path_factory.mktemp("evonas-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EVONAS_CACHE_DIR", str(path))
        yield path


@pytest.fixture(scope="module")
def first_load(cache_dir):
    """The first mnist1d load (it generates the data) and the global numpy draw after it."""
    np.random.seed(123)  # noqa: NPY002 (the global stream is under test)
    data = load_dataset("mnist1d", seed=0)
    return data, np.random.rand()  # noqa: NPY002


@pytest.fixture(scope="module")
def mnist1d(first_load):
    return first_load[0]


def _rows(x: np.ndarray) -> set[bytes]:
    return {row.tobytes() for row in x.reshape(len(x), -1)}


# -- splits --------------------------------------------------------------------------------------


def test_split_indices_stratified_disjoint_and_seeded():
    labels = np.repeat(np.arange(4), 25)  # 4 classes x 25
    kept, held = split_indices(labels, 0.2, seed=3)
    assert len(held) == 20 and len(kept) == 80
    assert np.bincount(labels[held]).tolist() == [5, 5, 5, 5]
    assert np.intersect1d(kept, held).size == 0
    assert np.array_equal(np.union1d(kept, held), np.arange(100))
    again, _ = split_indices(labels, 0.2, seed=3)
    other, _ = split_indices(labels, 0.2, seed=4)
    assert np.array_equal(kept, again)
    assert not np.array_equal(kept, other)


# -- mnist1d -------------------------------------------------------------------------------------


def test_mnist1d_shapes_and_sizes(mnist1d, cache_dir):
    assert isinstance(mnist1d, Dataset)
    assert mnist1d.input_shape == (40, 1)
    assert mnist1d.num_classes == 10
    assert mnist1d.x_train.dtype == np.float32 and mnist1d.y_train.dtype == np.int32
    assert len(mnist1d.y_train) + len(mnist1d.y_val) == 4000
    assert len(mnist1d.y_test) == 1000
    assert 380 <= len(mnist1d.y_val) <= 420  # 10 %, rounded per class
    assert list(cache_dir.glob("mnist1d-*.npz"))  # cached for the next load
    assert not list(cache_dir.glob("*.tmp"))  # the atomic write left no temp file
    info = mnist1d.info()
    assert info["sizes"] == {
        "train": len(mnist1d.y_train),
        "val": len(mnist1d.y_val),
        "test": 1000,
    }
    assert info["input_shape"] == [40, 1]


def test_mnist1d_split_determinism(mnist1d):
    same = load_dataset("mnist1d", seed=0)
    other = load_dataset("mnist1d", seed=1)
    assert np.array_equal(same.x_val, mnist1d.x_val)
    assert np.array_equal(same.y_train, mnist1d.y_train)
    assert not np.array_equal(other.y_val, mnist1d.y_val)
    # Train and validation examples are disjoint; the test split never depends on the seed.
    assert not _rows(mnist1d.x_train) & _rows(mnist1d.x_val)
    raw = load_dataset("mnist1d", seed=1, normalize=False)
    raw0 = load_dataset("mnist1d", seed=0, normalize=False)
    assert np.array_equal(raw.x_test, raw0.x_test)


def test_mnist1d_normalised_on_train_only(mnist1d):
    x = mnist1d.x_train.astype(np.float64)
    np.testing.assert_allclose(x.mean(axis=(0, 1)), 0.0, atol=1e-5)
    np.testing.assert_allclose(x.std(axis=(0, 1)), 1.0, atol=1e-5)
    # Validation and test use the train statistics, so their mean is near, not exactly, 0.
    raw = load_dataset("mnist1d", seed=0, normalize=False)
    mean, std = mnist1d.mean[0], mnist1d.std[0]
    np.testing.assert_allclose(mean, raw.x_train.mean(dtype=np.float64), rtol=1e-6)
    np.testing.assert_allclose(mnist1d.x_val, (raw.x_val - mean) / std, rtol=1e-5, atol=1e-6)
    assert raw.mean is None and raw.info()["normalization"] is None


def test_limit_caps_train_and_keeps_validation(mnist1d):
    small = load_dataset("mnist1d", seed=0, limit=50)
    assert len(small.y_train) == 50
    assert np.array_equal(small.y_val, mnist1d.y_val)  # the val split ignores `limit`
    assert len(np.unique(small.y_train)) >= 8  # a shuffled cut spans the classes
    np.testing.assert_allclose(small.x_train.mean(), 0.0, atol=1e-5)  # stats of the 50 kept


def test_generation_keeps_global_random_state(first_load):
    # mnist1d's generator reseeds np.random; the loader must restore the caller's stream.
    np.random.seed(123)  # noqa: NPY002 (the global stream is under test)
    assert first_load[1] == np.random.rand()  # noqa: NPY002


def test_arrays_are_read_only(mnist1d):
    with pytest.raises(ValueError):
        mnist1d.x_train[0, 0, 0] = 1.0


# -- digits --------------------------------------------------------------------------------------


def test_digits():
    data = load_dataset("digits", val_fraction=0.25, seed=0)
    assert data.input_shape == (8, 8, 1)
    assert len(data.y_test) == 359  # 20 % of 1797, rounded per class
    assert len(data.y_train) + len(data.y_val) + len(data.y_test) == 1797
    assert 0.23 < len(data.y_val) / (len(data.y_train) + len(data.y_val)) < 0.27
    np.testing.assert_allclose(data.x_train.std(), 1.0, atol=1e-5)
    assert data.class_names == tuple(str(i) for i in range(10))
    assert "test carved" in data.info()["splits"]


def test_digits_are_read_as_scikit_learn_reads_them_without_importing_it():
    import subprocess
    import sys

    from sklearn.datasets import load_digits as sk_load_digits

    from evonas.data.digits import _read_digits

    x, y = _read_digits()
    bunch = sk_load_digits()
    assert x.dtype == np.float32 and y.dtype == np.int32
    np.testing.assert_array_equal(x, bunch.images)
    np.testing.assert_array_equal(y, bunch.target)
    code = ("import sys; from evonas.data.digits import load_digits; load_digits(); "
            "print('sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- tfds ----------------------------------------------------------------------------------------


def test_tfds_mnist_with_mock_data(tmp_path):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=40):
        data = load_dataset("tfds:mnist", data_dir=tmp_path, val_fraction=0.25, normalize=False)
    assert data.input_shape == (28, 28, 1)
    assert data.num_classes == 10 and data.class_names[3] == "3"
    assert len(data.y_train) + len(data.y_val) == 40
    assert len(data.y_test) == 40
    # not normalised: uint8 pixels in their own units, what an exported model takes
    assert 0.0 <= data.x_train.min() and data.x_train.max() <= 255.0
    assert data.x_train.max() > 200 and np.array_equal(data.x_train, np.rint(data.x_train))
    assert data.preprocessing() is None
    assert "official TFDS 'test'" in data.info()["splits"]


def test_tfds_not_on_disk(tmp_path):
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("tfds:mnist", data_dir=tmp_path)
    message = str(err.value)
    assert "tfds:mnist" in message
    assert str(tmp_path) in message
    assert "download_and_prepare" in message and "array_record" in message
    assert isinstance(err.value, ValueError)


def test_tfds_unknown_name(tmp_path):
    with pytest.raises(ValueError, match="no dataset named 'mnistt'.*tfds:mnist"):
        load_dataset("tfds:mnistt", data_dir=tmp_path)


# -- argument errors -----------------------------------------------------------------------------


def test_unknown_name_lists_and_suggests():
    with pytest.raises(ValueError) as err:
        load_dataset("mnist1")
    message = str(err.value)
    assert "'mnist1'" in message and "did you mean 'mnist1d'" in message
    for name in DATASETS:
        assert repr(name) in message
    assert "tfds:<name>" in message


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_bad_val_fraction(fraction):
    with pytest.raises(ValueError, match=r"val_fraction must be in \(0, 1\)"):
        load_dataset("digits", val_fraction=fraction)


def test_bad_limit():
    with pytest.raises(ValueError, match="limit must be a positive int"):
        load_dataset("digits", limit=0)


# -- batch indices -------------------------------------------------------------------------------


def test_batch_indices_epochs_are_permutations():
    idx = np.asarray(batch_indices(jax.random.key(0), 10, 3, 7))
    assert idx.shape == (7, 3) and idx.dtype == np.int32
    # 3 batches an epoch (one index dropped): each epoch's 9 indices are distinct.
    for epoch in (idx[0:3], idx[3:6]):
        assert len(np.unique(epoch)) == 9
    assert idx.min() >= 0 and idx.max() <= 9
    assert not np.array_equal(idx[0:3], idx[3:6])  # a fresh permutation each epoch
    again = np.asarray(batch_indices(jax.random.key(0), 10, 3, 7))
    assert np.array_equal(idx, again)


def test_batch_indices_vmap_over_keys():
    keys = jax.random.split(jax.random.key(1), 4)
    idx = np.asarray(jax.vmap(lambda k: batch_indices(k, 8, 4, 2))(keys))
    assert idx.shape == (4, 2, 4)
    for individual in idx:
        assert sorted(individual.ravel().tolist()) == list(range(8))
    assert not np.array_equal(idx[0], idx[1])


def test_batch_indices_rejects_large_batch():
    with pytest.raises(ValueError, match="batch_size must be in 1 .. n=5"):
        batch_indices(jax.random.key(0), 5, 6, 1)
