"""Under pytest-xdist, a measured check gets the machine to itself.

A measurement compares two sides on the same machine; with ``-n 2`` on two cores the other
worker's checks would weigh on one side and turn clear verdicts into inconclusive ones.
So every check of a pack holds a machine-wide lock while it runs: shared for semantic
checks, exclusive for measured ones. A turnstile keeps a stream of shared holders from
starving a measured check. Without xdist, or without ``fcntl`` (Windows), nothing is
locked: a serial run has the machine to itself already.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

_POLL = 0.002


def _take(fd: int, mode: int, deadline: float) -> bool:
    # flock has no timeout; poll it non-blocking so that the wait stays bounded.
    pause = threading.Event()
    while True:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            pause.wait(_POLL)


def _paths(config: Any) -> tuple[str, str]:
    uid = config.workerinput["testrunuid"]
    base = os.path.join(tempfile.gettempdir(), f"procthread-machine-{uid}")
    return base + ".lock", base + ".turnstile"


@contextmanager
def machine_share(config: Any, *, exclusive: bool, timeout: float) -> Iterator[bool]:
    """Hold the machine (exclusively or shared) while the block runs; yields whether the
    lock was had in time (a check that waited too long runs anyway, and says so)."""
    if fcntl is None or getattr(config, "workerinput", None) is None:
        yield True
        return
    lock_path, turnstile_path = _paths(config)
    deadline = time.monotonic() + timeout
    lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    gate_fd = os.open(turnstile_path, os.O_RDWR | os.O_CREAT, 0o600)
    got = False
    try:
        if _take(gate_fd, fcntl.LOCK_EX, deadline):
            try:
                got = _take(lock_fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH, deadline)
            finally:
                fcntl.flock(gate_fd, fcntl.LOCK_UN)
        yield got
    finally:
        if got:
            fcntl.flock(lock_fd, fcntl.LOCK_UN)
        os.close(lock_fd)
        os.close(gate_fd)


def remove_lock_files(config: Any) -> None:
    if fcntl is None or getattr(config, "workerinput", None) is None:
        return
    for path in _paths(config):
        try:
            os.unlink(path)
        except OSError:
            pass
