"""The preprocessing a model was trained with, applied inside the model.

A run trains on scaled and standardised inputs (``(x * scale - mean) / std`` per channel: scale
``1/255`` for ``uint8`` pixels, statistics of the train split). An exported model records that
(``Dataset.preprocessing()``: ``{"scale": s, "standardize": {"mean": [...], "std": [...],
"axis": -1}}``) and, loaded with :func:`evonas.load_model` or served as StableHLO, takes the
data in its own units and prepares it itself: the user feeds what the data looks like, not what
the trainer saw.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax.numpy as jnp


class Standardized(nn.Module):
    """``inner`` applied to ``(x * scale - mean) / std`` (per channel, the last axis).

    The variables are ``inner``'s own, unchanged (its scope is shared): ``load_model``'s
    variables serve both the raw-input module and the standardised one.
    """

    inner: nn.Module
    mean: tuple[float, ...]
    std: tuple[float, ...]
    scale: float = 1.0

    def setup(self) -> None:
        nn.share_scope(self, self.inner)

    def __call__(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        mean = jnp.asarray(self.mean, jnp.float32)
        std = jnp.asarray(self.std, jnp.float32)
        x = (jnp.asarray(x, jnp.float32) * jnp.float32(self.scale) - mean) / std
        return self.inner(x, *args, **kwargs)


def check_preprocessing(record: Any, where: str
                        ) -> tuple[tuple[float, ...], tuple[float, ...], float]:
    """The ``(mean, std, scale)`` of a recorded preprocessing (``{"scale": s, "standardize":
    {...}}``; without ``standardize``: no standardisation, mean 0 and std 1).

    Raises:
        ValueError: one line naming ``where`` when the record is not one evonas writes (a model
            directory may come from someone else).
    """
    if not isinstance(record, Mapping):
        record = {"?": record}
    scale = record.get("scale", 1.0)
    standardize = record.get("standardize", {"mean": [0.0], "std": [1.0]})
    mean = standardize.get("mean") if isinstance(standardize, Mapping) else None
    std = standardize.get("std") if isinstance(standardize, Mapping) else None

    def numbers(values: Any) -> bool:
        return isinstance(values, list) and 0 < len(values) <= 4096 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            for v in values)

    if not (numbers(mean) and numbers(std) and len(mean) == len(std) and numbers([scale])
            and all(s > 0 for s in std) and scale > 0):
        raise ValueError(f"{where}: preprocessing {str(record)[:120]} is not one evonas writes; "
                         "expected {\"scale\": s, \"standardize\": {\"mean\": [...], "
                         "\"std\": [...]}} with one finite mean and positive std per channel")
    return tuple(float(m) for m in mean), tuple(float(s) for s in std), float(scale)


def with_preprocessing(module: nn.Module, record: Any, where: str = "preprocessing") -> nn.Module:
    """``module`` taking raw inputs: wrapped in :class:`Standardized` per ``record``
    (``Dataset.preprocessing()``), or unchanged when ``record`` is None (data not normalised).
    """
    if record is None:
        return module
    mean, std, scale = check_preprocessing(record, where)
    return Standardized(module, mean, std, scale)
