"""The fan-out threads still running past their bound.

``fanout`` records one when it gives up waiting for it; ``plugin`` reads them: the next
test's setup waits a moment for them, then fails rather than run beside them, and the
run's summary names those still running. Its own module so that a session that fans
nothing out need not load ``fanout``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass
class Stray:
    """A thread of a fan-out still running after its bound."""

    label: str
    index: int
    threads: int
    thread: threading.Thread
    reported: bool = False


_strays: list[Stray] = []


def record(stray: Stray) -> None:
    _strays.append(stray)


def strays() -> list[Stray]:
    """The fan-out threads still running past their bound (ended ones are dropped)."""
    _strays[:] = [stray for stray in _strays if stray.thread.is_alive()]
    return list(_strays)
