"""The preprocessing a model was trained with, applied inside the model.

A run trains on standardised inputs (``(x - mean) / std`` per channel, statistics of the train
split). An exported model records that (``Dataset.preprocessing()``: ``{"standardize": {"mean":
[...], "std": [...], "axis": -1}}``) and, loaded with :func:`evonas.load_model` or served as
StableHLO, takes the raw inputs and standardises them itself: the user feeds what the data
looks like, not what the trainer saw.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax.numpy as jnp


class Standardized(nn.Module):
    """``inner`` applied to ``(x - mean) / std`` (per channel, the last axis).

    The variables are ``inner``'s own, unchanged (its scope is shared): ``load_model``'s
    variables serve both the raw-input module and the standardised one.
    """

    inner: nn.Module
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def setup(self) -> None:
        nn.share_scope(self, self.inner)

    def __call__(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        mean = jnp.asarray(self.mean, jnp.float32)
        std = jnp.asarray(self.std, jnp.float32)
        x = (jnp.asarray(x, jnp.float32) - mean) / std
        return self.inner(x, *args, **kwargs)


def check_preprocessing(record: Any, where: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The ``(mean, std)`` of a recorded preprocessing (``{"standardize": {...}}``).

    Raises:
        ValueError: one line naming ``where`` when the record is not one evonas writes (a model
            directory may come from someone else).
    """
    standardize = record.get("standardize") if isinstance(record, Mapping) else None
    mean = standardize.get("mean") if isinstance(standardize, Mapping) else None
    std = standardize.get("std") if isinstance(standardize, Mapping) else None

    def numbers(values: Any) -> bool:
        return isinstance(values, list) and 0 < len(values) <= 4096 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            for v in values)

    if not (numbers(mean) and numbers(std) and len(mean) == len(std)
            and all(s > 0 for s in std)):
        raise ValueError(f"{where}: preprocessing {str(record)[:120]} is not one evonas writes; "
                         "expected {\"standardize\": {\"mean\": [...], \"std\": [...]}} with one "
                         "finite mean and positive std per channel")
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)


def with_preprocessing(module: nn.Module, record: Any, where: str = "preprocessing") -> nn.Module:
    """``module`` taking raw inputs: wrapped in :class:`Standardized` per ``record``
    (``Dataset.preprocessing()``), or unchanged when ``record`` is None (data not normalised).
    """
    if record is None:
        return module
    mean, std = check_preprocessing(record, where)
    return Standardized(module, mean, std)
