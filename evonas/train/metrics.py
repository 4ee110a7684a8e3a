"""Classification metrics of a population from its confusion matrices (host side)."""

from __future__ import annotations

import numpy as np


def confusion_metrics(confusion: np.ndarray, loss_sum: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy, mean loss and macro precision, recall and F1 of each individual.

    Macro averages follow scikit-learn's ``average="macro"`` with ``zero_division=0``: they run
    over the classes present in the labels or the predictions, and a class never predicted has
    precision 0.

    Args:
        confusion: ``[P, C, C]`` counts, rows the true class, columns the predicted one.
        loss_sum: ``[P]`` summed cross-entropy.

    Returns:
        ``{"acc", "loss", "precision", "recall", "f1"}``, each ``float32[P]``.
    """
    confusion = np.asarray(confusion, np.float64)
    total = confusion.sum(axis=(1, 2))
    diag = np.diagonal(confusion, axis1=1, axis2=2)
    true, pred = confusion.sum(axis=2), confusion.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(pred > 0, diag / pred, 0.0)
        recall = np.where(true > 0, diag / true, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
        present = (true > 0) | (pred > 0)
        classes = np.maximum(present.sum(axis=1), 1)
        out = {
            "acc": diag.sum(axis=1) / np.maximum(total, 1),
            "loss": np.asarray(loss_sum, np.float64) / np.maximum(total, 1),
            "precision": (precision * present).sum(axis=1) / classes,
            "recall": (recall * present).sum(axis=1) / classes,
            "f1": (f1 * present).sum(axis=1) / classes,
        }
    return {k: v.astype(np.float32) for k, v in out.items()}
