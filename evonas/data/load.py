"""``load_dataset``: a dataset by name, with a seeded validation split and train-only statistics."""

from __future__ import annotations

import difflib
import os
from typing import Any

from evonas.data import doors
from evonas.data.dataset import Dataset, RawData, check_split, prepare
from evonas.data.digits import load_digits
from evonas.data.mnist1d import load_mnist1d
from evonas.data.tfds import load_tfds

DATASETS: tuple[str, ...] = ("mnist1d", "digits", "fashion_mnist")
"""The built-in dataset names; any TFDS image classification set is ``"tfds:<name>"``."""

DOORS: tuple[str, ...] = ("npz", "csv", "folder", "idx")
"""The doors for your own files: ``dataset: {name: npz, path: FILE}`` and the like."""

TFDS_PREFIX = "tfds:"
# Only for suggestions in error messages: the TFDS sets people mean most often.
_SUGGESTIONS = (*DATASETS, *DOORS, "tfds:mnist", "tfds:fashion_mnist", "tfds:cifar10")


def _load_raw(name: str, data_dir: str | os.PathLike | None, path: Any = None,
              label: str | None = None, image_size: Any = None,
              download: bool = False) -> RawData:
    if name == "mnist1d":
        return load_mnist1d()
    if name == "digits":
        return load_digits()
    if name == "fashion_mnist":
        return doors.load_fashion_mnist(data_dir)
    if name == "npz":
        return doors.load_npz(path)
    if name == "csv":
        return doors.load_csv(path, label)
    if name == "folder":
        return doors.load_folder(path, image_size)
    if name == "idx":
        return doors.load_idx(path)
    if name.startswith(TFDS_PREFIX) and name[len(TFDS_PREFIX) :].strip():
        tfds_name = name[len(TFDS_PREFIX) :].strip()
        return load_tfds(tfds_name, None if data_dir is None else os.fspath(data_dir),
                         download=download)
    if name == "arrays":
        raise ValueError("dataset 'arrays' is data given in Python: pass it as "
                         "Experiment(config, dataset=evonas.Dataset.from_arrays(x, y)) (or "
                         "save it with np.savez and use dataset: {name: npz, path: FILE})")
    close = difflib.get_close_matches(name.lower(), _SUGGESTIONS, n=2, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(
        f"unknown dataset {name!r}; available: "
        f"{', '.join(repr(d) for d in DATASETS)}, 'tfds:<name>' (e.g. 'tfds:mnist'), or your "
        f"own files: {', '.join(repr(d) for d in DOORS)} with dataset.path{hint}"
    )


def load_dataset(
    name: str,
    *,
    val_fraction: float = 0.1,
    seed: int = 0,
    data_dir: str | os.PathLike | None = None,
    normalize: bool = True,
    limit: int | None = None,
    path: str | os.PathLike | None = None,
    label: str | None = None,
    image_size: Any = None,
    download: bool = False,
) -> Dataset:
    """Loads a dataset as numpy arrays with train / validation / test splits.

    The validation split is carved from the source's train split, stratified by class, with
    ``seed``; it does not depend on ``limit``. The test split is the source's own (or one carved
    with a fixed seed, see ``Dataset.info()["splits"]``) and never depends on ``seed``.

    Args:
      name: ``"mnist1d"`` (generated offline, cached), ``"digits"`` (scikit-learn),
        ``"fashion_mnist"`` (the IDX files of Debian's ``dataset-fashion-mnist``, or
        ``data_dir``), ``"tfds:<name>"`` (a TFDS image classification set prepared in
        ``data_dir``), or a door to your own files at ``path``: ``"npz"``, ``"csv"``
        (``label`` names the label column), ``"folder"`` (one subfolder of images per class, or
        ``train/`` and ``test/`` holding them; ``image_size`` ``[H, W]`` resizes) or ``"idx"``
        (MNIST-format files).
      val_fraction: share of the train split held out for validation, in (0, 1).
      seed: seed of the validation split.
      data_dir: TFDS data directory (``None``: TFDS's default), or Fashion-MNIST's folder.
      normalize: scale integer pixels to [0, 1] and standardise each channel with the mean
        and std of the train split (after ``limit``), applied to all three splits, as a run
        trains; otherwise the data in its own units (``uint8`` pixels as 0..255): the raw
        inputs an exported model takes (``evonas.load_model``, the StableHLO program).
      limit: keep at most this many train examples (the first of a seeded shuffle), for tiny
        tests; ``None`` keeps all.
      path, label, image_size: the file doors' settings.
      download: ``tfds:`` sets: download and prepare the set (in ``array_record``) if it is
        not in ``data_dir`` yet (needs internet, once).

    Returns:
      A :class:`Dataset` with the ``digest`` of its content.

    Raises:
      ValueError: unknown name, bad data (one line naming the file, field or value), or
        ``val_fraction`` / ``limit`` out of range.
      DatasetNotFoundError: a TFDS set is not prepared in ``data_dir``.
    """
    if not isinstance(name, str):
        raise ValueError(f"dataset name must be a string such as 'mnist1d'; got {name!r}")
    check_split(val_fraction, limit)
    raw = _load_raw(name, data_dir, path, label, image_size, download)
    return prepare(raw, name, val_fraction=val_fraction, seed=seed, normalize=normalize,
                   limit=limit, digest=True)


