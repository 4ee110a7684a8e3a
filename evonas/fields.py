"""Config fields that say whether they can change a number: what a run's fingerprint hashes.

A dataclass field made with :func:`setting` carries ``numbers`` in its metadata; a field that
changes neither what is computed nor any number (where a run lives, how it is shown, where
compiled programs are cached) says ``numbers=False`` and is left out of the fingerprint, so a
run may resume with another value. Every other field is hashed.
"""

from __future__ import annotations

import dataclasses
from typing import Any

NUMBERS = "evonas.numbers"


def setting(default: Any = dataclasses.MISSING, *, numbers: bool = True,
            default_factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field with a default (or a ``default_factory``) and whether it can change
    the numbers a run computes."""
    return dataclasses.field(default=default, default_factory=default_factory,
                             metadata={NUMBERS: bool(numbers)})


def changes_numbers(field: dataclasses.Field) -> bool:
    """Whether ``field`` is part of a run's fingerprint (every field unless it says not)."""
    return bool(field.metadata.get(NUMBERS, True))
