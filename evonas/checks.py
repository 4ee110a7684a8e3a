"""Input checks shared by every layer: one line naming the thing, the value and what is allowed.

Every function takes ``what``, the name the user knows the value by (``"TrainConfig.steps"``,
``"search.population_size"``, ``"RegularizedEvolution.sample_size"``), and raises
``ValueError("<what> must be <what is allowed>; got <value>")`` or returns the value normalised
(an ``int``, a ``float``, a tuple). Nothing here imports the rest of evonas, so any module may use
it.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Iterable, Sequence
from typing import Any


def did_you_mean(value: Any, known: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` for the closest of ``known``, or ``""``."""
    close = difflib.get_close_matches(str(value), [str(k) for k in known], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def integer(what: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """An integer (not a bool) in ``low .. high`` (either bound optional), as ``int``."""
    ok = _is_int(value) and (low is None or value >= low) and (high is None or value <= high)
    if not ok:
        if low is not None and high is not None:
            allowed = f"an integer in {low}..{high}"
        elif low is not None:
            allowed = f"an integer >= {low}"
        elif high is not None:
            allowed = f"an integer <= {high}"
        else:
            allowed = "an integer"
        raise ValueError(f"{what} must be {allowed}; got {value!r}")
    return int(value)


def positive_int(what: str, value: Any) -> int:
    """An integer ``>= 1``."""
    return integer(what, value, low=1)


def optional_positive_int(what: str, value: Any) -> int | None:
    """``None`` or an integer ``>= 1``."""
    return None if value is None else positive_int(what, value)


def number(what: str, value: Any, low: float = -math.inf, high: float = math.inf, *,
           open_low: bool = False, open_high: bool = False) -> float:
    """A real number (not a bool) in ``[low, high]``; ``open_low``/``open_high`` exclude the
    ends (an infinite end is always open). NaN is never allowed."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and not math.isnan(value)
    if ok:
        above = value > low if open_low or low == -math.inf else value >= low
        below = value < high if open_high or high == math.inf else value <= high
        ok = above and below
    if not ok:
        left = "(" if open_low or low == -math.inf else "["
        right = ")" if open_high or high == math.inf else "]"
        raise ValueError(f"{what} must be a number in {left}{low:g}, {high:g}{right}; "
                         f"got {value!r}")
    return float(value)


def positive(what: str, value: Any, *, allow_zero: bool = False) -> float:
    """A finite number ``> 0`` (``>= 0`` with ``allow_zero``)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{what} must be {'>= 0' if allow_zero else '> 0'}; got {value!r}")
    return value


def rate(what: str, value: Any) -> float:
    """A probability in ``[0, 1]``, as ``float``."""
    try:
        as_float = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number in [0, 1]; got {value!r}") from None
    if isinstance(value, bool) or not 0.0 <= as_float <= 1.0:
        raise ValueError(f"{what} must be in [0, 1]; got {value!r}")
    return as_float


def boolean(what: str, value: Any) -> bool:
    """``True`` or ``False`` (not 0 or 1)."""
    if not isinstance(value, bool):
        raise ValueError(f"{what} must be True or False; got {value!r}")
    return value


def choice(what: str, value: Any, allowed: Sequence[Any]) -> Any:
    """One of ``allowed``."""
    if value not in allowed:
        raise ValueError(f"{what} must be one of {list(allowed)}; got {value!r}"
                         f"{did_you_mean(value, allowed) if isinstance(value, str) else ''}")
    return value


def name(what: str, value: Any, known: Sequence[str], extra: str = "") -> str:
    """A registered name: ``"<what>: unknown name 'x' (did you mean 'y'?); available: ..."``."""
    if value in known:
        return value
    raise ValueError(f"{what}: unknown name {value!r}{did_you_mean(value, known)}; "
                     f"available: {', '.join(known)}{extra}")


def choices(what: str, values: Any, allowed: Sequence[Any] | None = None) -> tuple:
    """A non-empty, duplicate-free tuple of options (each from ``allowed`` if given)."""
    if isinstance(values, (str, bytes)):
        raise ValueError(f"{what} must be a list of choices; got the string {values!r}")
    try:
        values = tuple(values)
    except TypeError:
        raise ValueError(f"{what} must be a list of choices; got {values!r}") from None
    if not values:
        raise ValueError(f"{what} must list at least one choice; got {values}")
    if len(set(values)) != len(values):
        raise ValueError(f"{what} must not repeat a choice; got {values}")
    if allowed is not None:
        for v in values:
            if v not in allowed:
                raise ValueError(f"{what} contains {v!r}; allowed: {sorted(allowed)}")
    return values


def positive_ints(what: str, values: Any) -> tuple[int, ...]:
    """A non-empty, duplicate-free tuple of positive integers (layer widths)."""
    values = choices(what, values)
    if not all(_is_int(v) and v >= 1 for v in values):
        raise ValueError(f"{what} must be positive integers; got {values}")
    return tuple(int(v) for v in values)


def input_shape(value: Any, ranks: Sequence[int], where: str) -> tuple[int, ...]:
    """One example's shape (no batch axis): positive integers, of one of the allowed ranks."""
    try:
        shape = tuple(int(s) for s in value)
    except (TypeError, ValueError):
        raise ValueError(
            f"input_shape must be a tuple of positive ints (one example, no batch axis); "
            f"got {value!r}"
        ) from None
    if len(shape) not in ranks or any(s < 1 for s in shape):
        raise ValueError(
            f"input_shape {shape} is not allowed for {where}: expected one example's shape "
            f"(no batch axis) with {' or '.join(map(str, ranks))} positive dimensions"
        )
    return shape
