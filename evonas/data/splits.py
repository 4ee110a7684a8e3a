"""Deterministic stratified splits and train-only per-channel normalisation (host side, numpy)."""

from __future__ import annotations

import numpy as np


def split_indices(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Splits ``range(len(labels))`` into kept and held-out indices, stratified by label.

    Each class gives ``round(fraction * class_count)`` examples to the held-out part, so class
    proportions match in both parts. The result depends only on ``labels``, ``fraction`` and
    ``seed``.

    Args:
      labels: ``int[N]`` class labels.
      fraction: share of each class to hold out, in (0, 1).
      seed: seed of the permutation.

    Returns:
      ``(kept, held_out)``: disjoint sorted ``int64`` index arrays that together cover
      ``0 .. N - 1``.
    """
    labels = np.asarray(labels)
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"the split fraction must be in (0, 1); got {fraction}")
    rng = np.random.default_rng(seed)
    held = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        held.append(rng.permutation(members)[: int(round(fraction * len(members)))])
    held_out = np.sort(np.concatenate(held)) if held else np.zeros(0, np.int64)
    if len(held_out) == 0 or len(held_out) == len(labels):
        raise ValueError(
            f"a split fraction of {fraction} of {len(labels)} examples leaves one side empty; "
            "use more examples or a fraction further from 0 and 1"
        )
    kept = np.setdiff1d(np.arange(len(labels)), held_out, assume_unique=True)
    return kept, held_out


def channel_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (last axis) mean and standard deviation of ``x``, in float64.

    A constant channel gets std 1, so normalising it gives zeros rather than NaNs.
    """
    axes = tuple(range(x.ndim - 1))
    mean = x.mean(axis=axes, dtype=np.float64)
    std = x.std(axis=axes, dtype=np.float64)
    return mean, np.where(std > 1e-8, std, 1.0)


def normalize(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``(x - mean) / std`` per channel, as float32."""
    return ((x - mean) / std).astype(np.float32)
