"""The ``Dataset`` record: train / validation / test splits as in-memory numpy arrays.

Conventions for ``input_shape`` (per example, channels last):

* a 1-D sequence is ``(length, channels)``: MNIST-1D is ``(40, 1)``;
* an image is ``(height, width, channels)``: digits ``(8, 8, 1)``, mnist ``(28, 28, 1)``,
  cifar10 ``(32, 32, 3)``. An MLP flattens it.

Fitness is measured on the validation split; the test split is for final reports only.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from evonas.data import doors
from evonas.data.raw import RawData
from evonas.data.splits import channel_stats, split_indices
from evonas.data.splits import normalize as standardize

__all__ = ["Dataset", "RawData", "prepare"]


_SPLITS = ("train", "val", "test")


@dataclasses.dataclass(frozen=True, eq=False)  # eq on arrays is ambiguous: compare by identity
class Dataset:
    """A classification dataset split into train, validation and test arrays.

    ``x_*`` are ``float32[N, *input_shape]``, ``y_*`` are ``int32[N]`` in
    ``0 .. num_classes - 1``. The arrays are made read-only so a dataset can be shared safely.
    ``mean`` / ``std`` are the per-channel statistics of the (raw) train split that were used
    to normalise all three splits, or ``None`` when the data was not normalised.
    ``input_scale`` is what the data's own values were multiplied by before that (``1/255`` for
    ``uint8`` pixels; see :meth:`preprocessing`), and ``digest`` a hash of the data's content
    (None for the built-in sets, which their packages fix): part of an experiment's
    fingerprint, so a run is never resumed on other data.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    input_shape: tuple[int, ...]
    class_names: tuple[str, ...] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    split_note: str = ""
    input_scale: float = 1.0
    digest: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "input_shape", tuple(int(d) for d in self.input_shape))
        if self.class_names is not None:
            object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))
            if len(self.class_names) != self.num_classes:
                raise ValueError(
                    f"dataset {self.name!r} has num_classes={self.num_classes} but "
                    f"{len(self.class_names)} class_names; give one name per class or None"
                )
        for split in _SPLITS:
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if not isinstance(x, np.ndarray) or x.dtype != np.float32:
                raise ValueError(
                    f"dataset {self.name!r}: x_{split} must be a float32 numpy array; "
                    f"got {type(x).__name__} of dtype {getattr(x, 'dtype', None)}"
                )
            if not isinstance(y, np.ndarray) or y.dtype != np.int32 or y.ndim != 1:
                raise ValueError(
                    f"dataset {self.name!r}: y_{split} must be a 1-D int32 numpy array; "
                    f"got {type(y).__name__} of dtype {getattr(y, 'dtype', None)}"
                )
            if x.shape[1:] != self.input_shape or len(x) != len(y):
                raise ValueError(
                    f"dataset {self.name!r}: x_{split} has shape {x.shape} and y_{split} "
                    f"{y.shape}; expected (N, *{self.input_shape}) and (N,)"
                )
            if len(y) and (y.min() < 0 or y.max() >= self.num_classes):
                raise ValueError(
                    f"dataset {self.name!r}: y_{split} has labels in [{y.min()}, {y.max()}]; "
                    f"expected 0 .. {self.num_classes - 1}"
                )
            x.setflags(write=False)
            y.setflags(write=False)

    def preprocessing(self) -> dict[str, Any] | None:
        """What a model trained on this dataset expects done to raw inputs (the data in its own
        units: your arrays as you gave them, ``uint8`` pixels as decoded from image files, or
        what ``load_dataset(name, normalize=False)`` gives for a named set): ``{"scale": s,
        "standardize": {"mean": [...], "std": [...]}}``, ``(x * s - mean) / std`` per channel
        (the last axis), or None when the data was not normalised (nor scaled). Exported
        models record it and apply it themselves (``evonas.load_model``, the StableHLO
        program)."""
        if self.mean is None and self.input_scale == 1.0:
            return None
        out: dict[str, Any] = {"scale": float(self.input_scale)}
        if self.mean is not None:
            out["standardize"] = {"mean": list(self.mean), "std": list(self.std or ()),
                                  "axis": -1, "computed_on": "train"}
        return out

    def info(self) -> dict[str, Any]:
        """A JSON-serialisable summary (sizes, shapes, normalisation) for logs and run configs."""
        normalization: dict[str, Any] | None = None
        if self.mean is not None:
            normalization = {
                "per_channel": True,
                "computed_on": "train",
                "mean": list(self.mean),
                "std": list(self.std or ()),
            }
        return {
            "name": self.name,
            "num_classes": self.num_classes,
            "input_shape": list(self.input_shape),
            "sizes": {s: len(getattr(self, f"y_{s}")) for s in _SPLITS},
            "class_names": list(self.class_names) if self.class_names is not None else None,
            "normalization": normalization,
            "splits": self.split_note,
            "input_scale": self.input_scale,
            "digest": self.digest,
        }

    @classmethod
    def from_arrays(cls, x_train: Any, y_train: Any, x_test: Any = None, y_test: Any = None,
                    *, name: str = "arrays", class_names: Any = None, val_fraction: float = 0.1,
                    seed: int = 0, normalize: bool = True, limit: int | None = None) -> Dataset:
        """Your arrays as a dataset: ``x`` features ``[N, F]``, sequences ``[N, L, C]``
        (``C <= 4``; a third axis longer than 4 is an image's width) or images ``[N, H, W]`` /
        ``[N, H, W, C]`` (``uint8`` pixels are scaled to [0, 1], then standardised; with
        ``normalize=False`` they stay in their own units, 0..255),
        ``y`` labels of any type (mapped to ``0 .. K-1`` in sorted order; their names kept).
        Without ``x_test`` a test split is carved (20 %, stratified, a fixed seed); the
        validation split is carved from the train split with ``seed``, as for every set.
        ``Experiment(config, dataset=...)`` searches it.

        Raises:
            ValueError: one line naming what is wrong: lengths, NaN or infinity, one class,
                test classes the train split lacks, shapes.
        """
        raw = doors.from_arrays(x_train, y_train, x_test, y_test, class_names=class_names)
        return prepare(raw, name, val_fraction=val_fraction, seed=seed, normalize=normalize,
                       limit=limit, digest=True)


def check_split(val_fraction: Any, limit: Any) -> None:
    if not isinstance(val_fraction, (int, float)) or not 0.0 < val_fraction < 1.0:
        raise ValueError(
            f"val_fraction must be in (0, 1) (the share of train held out); got {val_fraction!r}"
        )
    if limit is not None and (
        isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1
    ):
        raise ValueError(f"limit must be a positive int or None (no limit); got {limit!r}")


def prepare(raw: RawData, name: str, *, val_fraction: float = 0.1, seed: int = 0,
            normalize: bool = True, limit: int | None = None, digest: bool = False) -> Dataset:
    """``raw`` split (validation carved from train with ``seed``), limited and standardised
    with the train split's statistics: what every source becomes.

    Raises:
        ValueError: ``val_fraction`` or ``limit`` out of range.
    """
    check_split(val_fraction, limit)
    content = doors.digest(raw) if digest else None
    train, val = split_indices(raw.y_train, float(val_fraction), seed)
    if limit is not None and limit < len(train):
        # A seeded shuffle (its own stream, not the split's) so the kept examples span classes.
        train = np.sort(np.random.default_rng([seed, 1]).permutation(train)[:limit])
    x_train, y_train = raw.x_train[train], raw.y_train[train]
    x_val, y_val = raw.x_train[val], raw.y_train[val]
    x_test, y_test = raw.x_test, raw.y_test
    mean = std = None
    scale = float(raw.scale)
    if normalize:
        mean, std = channel_stats(x_train)
        x_train, x_val, x_test = (standardize(x, mean, std) for x in (x_train, x_val, x_test))
    elif scale != 1.0:
        # Not normalised: the data in its own units (uint8 pixels as 0..255), which is what an
        # exported model takes; the source's values were integers, so rounding is exact.
        x_train, x_val, x_test = (np.rint(x / np.float32(scale)).astype(np.float32)
                                  for x in (x_train, x_val, x_test))
        scale = 1.0
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
        input_scale=scale,
        digest=content,
    )
