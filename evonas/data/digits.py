"""scikit-learn's digits: 1797 bundled 8x8 images of handwritten digits (offline)."""

from __future__ import annotations

import numpy as np

from evonas.data.dataset import RawData
from evonas.data.splits import split_indices

TEST_FRACTION = 0.2
# The test split never depends on the user's seed: every run reports on the same examples.
TEST_SEED = 20240


def load_digits() -> RawData:
    """Digits as ``(N, 8, 8, 1)`` float32 images in [0, 1]; 20 % held out as a fixed test split."""
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError as err:
        raise ImportError(
            "the 'digits' dataset needs scikit-learn; install it with `pip install scikit-learn`"
        ) from err
    bunch = sk_load_digits()
    x = (np.asarray(bunch.images, np.float32) / 16.0)[..., None]  # pixel values are 0 .. 16
    y = np.asarray(bunch.target, np.int32)
    train, test = split_indices(y, TEST_FRACTION, TEST_SEED)
    return RawData(
        x_train=x[train],
        y_train=y[train],
        x_test=x[test],
        y_test=y[test],
        num_classes=10,
        class_names=tuple(str(n) for n in bunch.target_names),
        test_note=f"test carved from all data ({TEST_FRACTION:.0%}, stratified, fixed seed)",
    )
