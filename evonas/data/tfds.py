"""Image classification sets from TensorFlow Datasets, read without TensorFlow.

``tfds.data_source`` reads ``array_record`` files with random access and decodes examples with
numpy, so neither TensorFlow nor a download is needed, only a dataset prepared in the
``array_record`` format (``download_and_prepare`` writes ``tfrecord`` by default, which cannot
be read without TensorFlow). Any set with an ``image`` and a ``label`` feature of fixed shape
works (mnist, fashion_mnist, cifar10, ...).
"""

from __future__ import annotations

import difflib
from typing import Any

import numpy as np

from evonas.data.raw import RawData
from evonas.data.splits import split_indices

TEST_FRACTION = 0.2
TEST_SEED = 20240  # a carved test split never depends on the user's seed


class DatasetNotFoundError(ValueError):
    """A dataset that exists in a catalogue is not prepared in the directory searched."""


def _prepare_hint(name: str) -> str:
    return (
        "prepare it on a machine with internet (TensorFlow is needed only there):\n"
        '    python -c "import tensorflow_datasets as tfds; '
        f"tfds.builder('{name}', file_format='array_record').download_and_prepare()\"\n"
        "then copy its data directory (default ~/tensorflow_datasets) here and pass "
        "data_dir=... (or set TFDS_DATA_DIR)"
    )


def _import_tfds():
    try:
        import tensorflow_datasets as tfds
    except ImportError as err:
        raise ImportError(
            "'tfds:' datasets need tensorflow-datasets; install it with "
            "`pip install 'evonas[tfds]'` (TensorFlow itself is not needed)"
        ) from err
    return tfds


def _diagnose(tfds, name: str, data_dir: str | None) -> Exception | None:
    """Turns a failed ``data_source`` call into an error that says what to do, if it can."""
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.DatasetNotFoundError:
        known = tfds.list_builders(with_community_datasets=False)
        close = difflib.get_close_matches(name, known, n=3)
        hint = f"; did you mean {', '.join(f'tfds:{c}' for c in close)}?" if close else ""
        return ValueError(f"TFDS has no dataset named {name!r} (from 'tfds:{name}'){hint}")
    if not builder.is_prepared():
        return DatasetNotFoundError(
            f"dataset 'tfds:{name}' is not on disk: searched {builder.data_dir} "
            f"(data_dir={data_dir!r}; None means TFDS's default). To use it, " + _prepare_hint(name)
        )
    file_format = builder.info.file_format
    if file_format != tfds.core.file_adapters.FileFormat.ARRAY_RECORD:
        return DatasetNotFoundError(
            f"dataset 'tfds:{name}' in {builder.data_dir} is stored as "
            f"{getattr(file_format, 'value', file_format)!r}, which needs TensorFlow to read; "
            "evonas reads the 'array_record' format. Re-" + _prepare_hint(name)
        )
    return None


def _source(tfds, name: str, split: str, data_dir: str | None):
    try:
        return tfds.data_source(name, split=split, data_dir=data_dir, download=False)
    except Exception as err:  # tfds raises many types here; diagnose the cause ourselves
        better = _diagnose(tfds, name, data_dir)
        if better is None:
            raise
        raise better from err


def _check_features(name: str, features: Any) -> None:
    keys = list(features.keys()) if hasattr(features, "keys") else []
    if "image" not in keys or "label" not in keys:
        raise ValueError(
            f"'tfds:{name}' has features {keys}; evonas needs an image classification set "
            "with an 'image' and a 'label' feature"
        )
    shape = tuple(features["image"].shape)
    if any(d is None for d in shape):
        raise ValueError(
            f"'tfds:{name}' has images of variable shape {shape}; evonas needs fixed-shape "
            "images (pick a resized variant of the dataset, if TFDS has one)"
        )


def _to_arrays(source) -> tuple[np.ndarray, np.ndarray, float]:
    # One example at a time: `__getitems__` would batch reads but is broken under
    # `tfds.testing.mock_data`, and decoding, not reading, dominates the cost anyway.
    examples = [source[i] for i in range(len(source))]
    images = np.stack([np.asarray(e["image"]) for e in examples])
    labels = np.asarray([e["label"] for e in examples], np.int32)
    scale = 1.0
    if np.issubdtype(images.dtype, np.integer):
        scale = 1.0 / float(np.iinfo(images.dtype).max)
        images = images.astype(np.float32) * np.float32(scale)
    else:
        images = images.astype(np.float32)
    return images, labels, scale


def _download(tfds, name: str, data_dir: str | None) -> None:
    """Downloads and prepares ``name`` in ``array_record`` (what evonas reads) once.

    Raises:
        DatasetNotFoundError: the download or preparation failed (one line, with the cause).
    """
    try:
        builder = tfds.builder(name, data_dir=data_dir, file_format="array_record")
        if not builder.is_prepared():
            builder.download_and_prepare()
    except Exception as err:  # network, disk, a missing TensorFlow for some sets
        text = str(err).strip().splitlines()
        raise DatasetNotFoundError(
            f"'tfds:{name}' could not be downloaded and prepared in {data_dir or 'TFDS default'}"
            f" ({type(err).__name__}: {text[0][:160] if text else ''}); prepare it where there is"
            " internet and copy its directory here, or pass data_dir") from None


def load_tfds(name: str, data_dir: str | None = None, download: bool = False) -> RawData:
    """Loads the ``train`` (and ``test``) split of TFDS dataset ``name`` into numpy arrays.

    Integer images are scaled to [0, 1]. A set without a ``test`` split gets one carved from
    ``train`` (20 %, stratified, fixed seed), and ``test_note`` says so.

    Raises:
      DatasetNotFoundError: the set is not prepared (in ``array_record`` format) in ``data_dir``.
      ValueError: TFDS has no such set, or it is not a fixed-shape image classification set.
    """
    tfds = _import_tfds()
    if download:
        _download(tfds, name, data_dir)
    train_source = _source(tfds, name, "train", data_dir)
    info = train_source.dataset_info
    _check_features(name, info.features)
    label = info.features["label"]
    x_train, y_train, scale = _to_arrays(train_source)
    # `splits` is empty when TFDS has no split metadata (as under mock_data): then try "test".
    known_splits = set(info.splits.keys())
    if known_splits and "test" not in known_splits:
        train, test = split_indices(y_train, TEST_FRACTION, TEST_SEED)
        x_all, y_all = x_train, y_train
        x_train, y_train = x_all[train], y_all[train]
        x_test, y_test = x_all[test], y_all[test]
        note = (
            f"'tfds:{name}' has no test split (splits: {sorted(known_splits)}): test carved "
            f"from train ({TEST_FRACTION:.0%}, stratified, fixed seed)"
        )
    else:
        x_test, y_test, _ = _to_arrays(_source(tfds, name, "test", data_dir))
        note = f"official TFDS 'test' split of {name}"
    names = getattr(label, "names", None)
    return RawData(
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        num_classes=int(label.num_classes),
        class_names=tuple(names) if names else None,
        test_note=note,
        scale=scale,
    )
