"""Ctrl-C that is never lost.

Python turns SIGINT into a ``KeyboardInterrupt`` raised wherever the main thread is. When that is
inside a callback the interpreter calls on its own (JAX's garbage-collection callback, a
finaliser), the exception is printed as "Exception ignored in ..." and dropped, and the run goes
on as if nothing happened. While :class:`Interrupts` is active a Ctrl-C is also remembered, and
the run checks at its safe points (every generation, every write of the final stage): a dropped
interrupt stops the run there, with the same one line and the same resumable directory.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any


class Interrupts:
    """Remembers Ctrl-C while active (a context manager, on the main thread; elsewhere it
    does nothing)."""

    def __init__(self):
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            previous = signal.getsignal(signal.SIGINT)
            if previous is not signal.SIG_IGN:  # a run started to ignore Ctrl-C keeps doing so
                self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        raise KeyboardInterrupt

    def check(self) -> None:
        """Raises the ``KeyboardInterrupt`` of a Ctrl-C that was dropped where it landed."""
        if self.requested:
            raise KeyboardInterrupt
