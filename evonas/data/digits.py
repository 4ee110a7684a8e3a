"""scikit-learn's digits: 1797 bundled 8x8 images of handwritten digits (offline)."""

from __future__ import annotations

import importlib.util
import pathlib

import numpy as np

from evonas.data.raw import RawData
from evonas.data.splits import split_indices

TEST_FRACTION = 0.2
# The test split never depends on the user's seed: every run reports on the same examples.
TEST_SEED = 20240


def load_digits() -> RawData:
    """Digits as ``(N, 8, 8, 1)`` float32 images in [0, 1]; 20 % held out as a fixed test split."""
    x, y = _read_digits()
    x = (x / 16.0)[..., None]  # pixel values are 0 .. 16
    train, test = split_indices(y, TEST_FRACTION, TEST_SEED)
    return RawData(
        x_train=x[train],
        y_train=y[train],
        x_test=x[test],
        y_test=y[test],
        num_classes=10,
        class_names=tuple(str(n) for n in range(10)),
        test_note=f"test carved from all data ({TEST_FRACTION:.0%}, stratified, fixed seed)",
    )


def _read_digits() -> tuple[np.ndarray, np.ndarray]:
    """The images ``float32[N, 8, 8]`` and labels ``int32[N]`` of scikit-learn's bundled file.

    The file is read where scikit-learn keeps it, without importing scikit-learn (whose import
    takes seconds: every run on digits would pay it); ``sklearn.datasets.load_digits`` reads the
    same file the same way, where the file can't be found.
    """
    spec = importlib.util.find_spec("sklearn")
    if spec is None:
        raise ImportError(
            "the 'digits' dataset needs scikit-learn; install it with `pip install scikit-learn`")
    path = next((pathlib.Path(p) / "datasets" / "data" / "digits.csv.gz"
                 for p in spec.submodule_search_locations or ()), None)
    if path is not None and path.is_file():
        table = np.loadtxt(path, delimiter=",")
        return (table[:, :-1].reshape(-1, 8, 8).astype(np.float32),
                table[:, -1].astype(np.int32))
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    return np.asarray(bunch.images, np.float32), np.asarray(bunch.target, np.int32)
