"""What every source of data returns before it is split and standardised."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class RawData(NamedTuple):
    """What a source loader returns, before validation carving and normalisation.

    ``x_*`` are float32 with pixels scaled to [0, 1] (or the source's own scale), ``y_*``
    int32. ``test_note`` says where the test split came from, for ``Dataset.info()``.
    ``scale`` is what the source's own values were multiplied by (``1/255`` for ``uint8``
    pixels given by the user; 1 where the loader's values are the ones a user has).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    class_names: tuple[str, ...] | None
    test_note: str
    scale: float = 1.0
