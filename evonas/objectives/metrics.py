"""The one table of metric names: which exist, which way is better, in which unit.

A metric is anything measured or counted of an evaluated architecture: a trained score
(``val_acc``), an analytic cost (``params``), a measurement (``latency``), or a column of a
tabular benchmark (``edgegpu_latency``). Its direction comes from this table, by exact name
first, then by the name's last ``_``-separated word (``edgegpu_latency`` is a latency), so a
benchmark's device-specific columns need no entry of their own. A metric the table does not know
has no direction: whoever names it must say which way is better.
"""

from __future__ import annotations

TRAINED_METRICS: tuple[str, ...] = (
    "val_acc", "val_loss", "val_precision", "val_recall", "val_f1", "train_loss",
)
"""What training an architecture measures on the validation split (and the last training loss);
any of them may be a fitness or an objective."""

TEST_METRICS: tuple[str, ...] = tuple(
    m.replace("val_", "test_") for m in TRAINED_METRICS if m.startswith("val_"))
"""The same scores on the test split: for final reports, never for selection."""

MEASURED_METRICS: tuple[str, ...] = ("latency",)
"""Measured on this machine when an objective or a constraint names them (milliseconds)."""

PROXY_METRICS: tuple[str, ...] = ("naswot", "synflow", "grad_norm", "snip")
"""Zero-cost proxies of untrained networks (``evonas.train.proxies``); higher is better."""

COST_METRICS: tuple[str, ...] = ("params", "flops")
"""Analytic costs every encoding reports (``encoding.cost``); an encoding may add more
(``depth``), and a trainable one adds ``executed_params`` / ``executed_flops``."""

HISTORY_COLUMNS: tuple[str, ...] = ("params", "flops", "val_acc", "val_loss")
"""Metrics a run's history stores as columns of their own; every other metric is in its
``metrics`` JSON."""

# Exact names, then last words: True where higher is better.
_DIRECTIONS: dict[str, bool] = {
    "acc": True, "accuracy": True, "precision": True, "recall": True, "f1": True,
    "naswot": True, "synflow": True, "grad_norm": True, "snip": True,
    "loss": False, "error": False, "params": False, "flops": False, "macs": False,
    "depth": False, "latency": False, "energy": False, "memory": False, "size": False,
}
_UNITS: dict[str, str] = {"latency": "ms", "energy": "mJ"}


def _word(name: str) -> str:
    return name.rsplit("_", 1)[-1]


def maximize(name: str) -> bool | None:
    """Whether higher ``name`` is better: ``True``, ``False``, or ``None`` for a metric this
    table does not know (``val_acc``: True; ``params``, ``edgegpu_latency``: False)."""
    if name in _DIRECTIONS:
        return _DIRECTIONS[name]
    return _DIRECTIONS.get(_word(name))


def unit(name: str) -> str | None:
    """The unit a bound on ``name`` may be written in (``ms`` for a latency, ``mJ`` for an
    energy), or ``None``."""
    return _UNITS.get(name, _UNITS.get(_word(name)))


def direction(name: str, default: str = "max") -> str:
    """``"max"`` or ``"min"`` for ``name``; ``default`` when the table does not know it."""
    better = maximize(name)
    return default if better is None else ("max" if better else "min")
