"""``load_dataset``: a dataset by name, with a seeded validation split and train-only statistics."""

from __future__ import annotations

import difflib
import os

import numpy as np

from evonas.data.dataset import Dataset, RawData
from evonas.data.digits import load_digits
from evonas.data.mnist1d import load_mnist1d
from evonas.data.splits import channel_stats, split_indices
from evonas.data.splits import normalize as standardize
from evonas.data.tfds import load_tfds

DATASETS: tuple[str, ...] = ("mnist1d", "digits")
"""The built-in dataset names; any TFDS image classification set is ``"tfds:<name>"``."""

TFDS_PREFIX = "tfds:"
# Only for suggestions in error messages: the TFDS sets people mean most often.
_SUGGESTIONS = (*DATASETS, "tfds:mnist", "tfds:fashion_mnist", "tfds:cifar10")


def _load_raw(name: str, data_dir: str | os.PathLike | None) -> RawData:
    if name == "mnist1d":
        return load_mnist1d()
    if name == "digits":
        return load_digits()
    if name.startswith(TFDS_PREFIX) and name[len(TFDS_PREFIX) :].strip():
        tfds_name = name[len(TFDS_PREFIX) :].strip()
        return load_tfds(tfds_name, None if data_dir is None else os.fspath(data_dir))
    close = difflib.get_close_matches(name.lower(), _SUGGESTIONS, n=2, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(
        f"unknown dataset {name!r}; available: "
        f"{', '.join(repr(d) for d in DATASETS)}, 'tfds:<name>' (e.g. 'tfds:mnist'){hint}"
    )


def load_dataset(
    name: str,
    *,
    val_fraction: float = 0.1,
    seed: int = 0,
    data_dir: str | os.PathLike | None = None,
    normalize: bool = True,
    limit: int | None = None,
) -> Dataset:
    """Loads a dataset as numpy arrays with train / validation / test splits.

    The validation split is carved from the source's train split, stratified by class, with
    ``seed``; it does not depend on ``limit``. The test split is the source's own (or one carved
    with a fixed seed, see ``Dataset.info()["splits"]``) and never depends on ``seed``.

    Args:
      name: ``"mnist1d"`` (generated offline, cached), ``"digits"`` (scikit-learn) or
        ``"tfds:<name>"`` (a TFDS image classification set prepared in ``data_dir``).
      val_fraction: share of the train split held out for validation, in (0, 1).
      seed: seed of the validation split.
      data_dir: TFDS data directory (``None``: TFDS's default); ignored by the other sets.
      normalize: standardise each channel with the mean and std of the train split (after
        ``limit``), applied to all three splits; otherwise images are only scaled to [0, 1].
      limit: keep at most this many train examples (the first of a seeded shuffle), for tiny
        tests; ``None`` keeps all.

    Returns:
      A :class:`Dataset`.

    Raises:
      ValueError: unknown name, or ``val_fraction`` / ``limit`` out of range.
      DatasetNotFoundError: a TFDS set is not prepared in ``data_dir``.
    """
    if not isinstance(name, str):
        raise ValueError(f"dataset name must be a string such as 'mnist1d'; got {name!r}")
    if not isinstance(val_fraction, (int, float)) or not 0.0 < val_fraction < 1.0:
        raise ValueError(
            f"val_fraction must be in (0, 1) (the share of train held out); got {val_fraction!r}"
        )
    if limit is not None and (
        isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1
    ):
        raise ValueError(f"limit must be a positive int or None (no limit); got {limit!r}")
    raw = _load_raw(name, data_dir)
    train, val = split_indices(raw.y_train, float(val_fraction), seed)
    if limit is not None and limit < len(train):
        # A seeded shuffle (its own stream, not the split's) so the kept examples span classes.
        train = np.sort(np.random.default_rng([seed, 1]).permutation(train)[:limit])
    x_train, y_train = raw.x_train[train], raw.y_train[train]
    x_val, y_val = raw.x_train[val], raw.y_train[val]
    x_test, y_test = raw.x_test, raw.y_test
    mean = std = None
    if normalize:
        mean, std = channel_stats(x_train)
        x_train, x_val, x_test = (standardize(x, mean, std) for x in (x_train, x_val, x_test))
    note = f"val carved from train ({val_fraction:.0%}, stratified, seed {seed}); {raw.test_note}"
    if limit is not None:
        note += f"; train limited to {limit}"
    return Dataset(
        name=name,
        x_train=x_train,
        y_train=y_train,
        x_val=x_val,
        y_val=y_val,
        x_test=x_test,
        y_test=y_test,
        num_classes=raw.num_classes,
        input_shape=raw.x_train.shape[1:],
        class_names=raw.class_names,
        mean=None if mean is None else tuple(float(m) for m in mean),
        std=None if std is None else tuple(float(s) for s in std),
        split_note=note,
    )
