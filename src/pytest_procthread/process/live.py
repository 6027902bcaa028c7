"""This process's children that are still running: the handles not released yet.

Kept here, apart from the handle, because two owners read it: the exit hook, which kills
what is left before multiprocessing joins it without a time limit, and the warden, whose
replacement puts every live child on its roll.
"""

from __future__ import annotations

import atexit
import weakref
from typing import Protocol


class LiveChild(Protocol):
    pid: int

    @property
    def finished(self) -> bool: ...

    def is_alive(self) -> bool: ...

    def kill(self) -> object: ...


_live: weakref.WeakSet[LiveChild] = weakref.WeakSet()
_atexit_registered = False


def track(handle: LiveChild) -> None:
    """Keep ``handle`` among the live ones, which are killed at interpreter exit."""
    global _atexit_registered
    _live.add(handle)
    if not _atexit_registered:
        atexit.register(_stop_leftovers_at_exit)
        _atexit_registered = True


def untrack(handle: LiveChild) -> None:
    _live.discard(handle)


def live_pids() -> list[int]:
    """The pids of this process's children that have not ended yet."""
    return [handle.pid for handle in list(_live)
            if handle.pid and not handle.finished and handle.is_alive()]


def _stop_leftovers_at_exit() -> None:
    # multiprocessing joins live non-daemon children at exit, without a time limit;
    # this runs first (registered later) and makes sure there are none.
    for handle in list(_live):
        try:
            handle.kill()
        except Exception:
            pass
