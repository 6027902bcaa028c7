"""Deterministic faults to provoke in a child process or a sibling thread.

Each one ends the process the same way every time, on CPython and on PyPy, and keeps the
machine quiet (no core file, no crash dialog). Call them inside an isolated child: in the
test process itself they end the test run.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import NoReturn

from .child.stdio import suppress_crash_reports

__all__ = [
    "abort",
    "fatal_error",
    "hang",
    "hard_exit",
    "kill_self",
    "segfault",
    "suppress_crash_reports",
    "unhandled_exception_in_thread",
]


def segfault() -> NoReturn:
    """Die of a real SIGSEGV (a write through a NULL pointer), not of a sent signal.

    ``ctypes.memset(0, 0, 1)`` faults on CPython and PyPy alike; ``ctypes.string_at(0)``
    does not fault on PyPy, which checks for NULL first. On Windows this is an access
    violation (0xC0000005).
    """
    import ctypes

    suppress_crash_reports()
    ctypes.memset(0, 0, 1)
    # Not reached where the write faults; a sent signal is the next best thing.
    kill_self(getattr(signal, "SIGSEGV", signal.SIGTERM))


def abort() -> NoReturn:
    """Die of SIGABRT through the C library's ``abort()`` (on Windows: exit status 3)."""
    suppress_crash_reports()
    os.abort()


def fatal_error(message: str = "procthread: deliberate fatal error") -> NoReturn:
    """Stop the interpreter as its own consistency checks do: ``Py_FatalError``.

    On CPython this calls ``Py_FatalError`` (message, Python stacks, then abort). PyPy has
    no such entry point; there the same report is written and the process aborts.
    """
    suppress_crash_reports()
    if sys.implementation.name == "cpython":
        import ctypes

        fatal = ctypes.pythonapi.Py_FatalError
        fatal.argtypes = [ctypes.c_char_p]
        fatal.restype = None
        fatal(message.encode("utf-8", "backslashreplace"))
    import faulthandler

    sys.stderr.write(f"Fatal Python error: {message}\n\n")
    sys.stderr.flush()
    faulthandler.dump_traceback(all_threads=True)
    os.abort()


def hard_exit(code: int = 1) -> NoReturn:
    """End the process at once with ``code``: no cleanup, no atexit, no flushing."""
    os._exit(code)


def kill_self(sig: int = getattr(signal, "SIGKILL", signal.SIGTERM)) -> NoReturn:
    """Send ``sig`` to this process (a signal from outside, as ``kill`` would send it)."""
    suppress_crash_reports()
    os.kill(os.getpid(), sig)
    # Delivery to ourselves is synchronous for an unblocked signal; wait in case it is not.
    for _ in range(1000):
        time.sleep(0.01)
    os._exit(128 + int(sig))


def hang() -> NoReturn:
    """Block forever in a plain wait, until the process is stopped from outside."""
    forever = threading.Event()
    while True:
        forever.wait(3600)


def unhandled_exception_in_thread(exc: BaseException | None = None) -> threading.Thread:
    """Start a thread that raises ``exc`` and let it die unhandled; returns it, ended."""

    def raise_it() -> None:
        raise exc if exc is not None else RuntimeError("procthread: deliberate error in a thread")

    worker = threading.Thread(target=raise_it, name="procthread-faulty")
    worker.start()
    worker.join(10)
    return worker
