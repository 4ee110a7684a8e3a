"""The ``Dataset`` record: train / validation / test splits as in-memory numpy arrays.

Conventions for ``input_shape`` (per example, channels last):

* a 1-D sequence is ``(length, channels)``: MNIST-1D is ``(40, 1)``;
* an image is ``(height, width, channels)``: digits ``(8, 8, 1)``, mnist ``(28, 28, 1)``,
  cifar10 ``(32, 32, 3)``. An MLP flattens it.

Fitness is measured on the validation split; the test split is for final reports only.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import numpy as np


class RawData(NamedTuple):
    """What a source loader returns, before validation carving and normalisation.

    ``x_*`` are float32 with pixels scaled to [0, 1] (or the source's own scale), ``y_*``
    int32. ``test_note`` says where the test split came from, for ``Dataset.info()``.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    class_names: tuple[str, ...] | None
    test_note: str


_SPLITS = ("train", "val", "test")


@dataclasses.dataclass(frozen=True, eq=False)  # eq on arrays is ambiguous: compare by identity
class Dataset:
    """A classification dataset split into train, validation and test arrays.

    ``x_*`` are ``float32[N, *input_shape]``, ``y_*`` are ``int32[N]`` in
    ``0 .. num_classes - 1``. The arrays are made read-only so a dataset can be shared safely.
    ``mean`` / ``std`` are the per-channel statistics of the (raw) train split that were used
    to normalise all three splits, or ``None`` when the data was not normalised.
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
        """What a model trained on this dataset expects done to raw inputs (the values
        ``load_dataset(..., normalize=False)`` gives): ``{"standardize": {"mean": [...],
        "std": [...]}}``, per channel (the last axis), or None when the data was not
        normalised. Exported models record it, and apply it themselves
        (``evonas.load_model``, the StableHLO program)."""
        if self.mean is None:
            return None
        return {"standardize": {"mean": list(self.mean), "std": list(self.std or ()),
                                "axis": -1, "computed_on": "train"}}

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
        }
