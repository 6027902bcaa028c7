"""A forked child without ``multiprocessing.Process``: for runners that start many.

``multiprocessing`` spends about 0.7 ms per fork child on bookkeeping of its own (a
Process object, finalizers, a sentinel pipe, stdin reopened, the exit handlers), a third
of what the fork itself costs in a test process. ``warm=True`` runners (``--isolated``)
fork with :func:`os.fork` directly and do, in the child, only the part of
multiprocessing's start-up that code in the child may rely on: the after-fork hooks of
multiprocessing objects (queues, locks), a fresh list of children and of finalizers, and
the exit handlers at the end (which stop the children the child started).

:class:`ForkedChild` offers what :class:`~pytest_procthread.process.ProcessHandle` uses of
a ``multiprocessing.Process``: ``pid``, ``sentinel``, ``is_alive()``, ``join()``,
``exitcode``, ``close()``.
"""

from __future__ import annotations

import multiprocessing.connection
import os
import select
import sys
import time
import traceback
from typing import Any, Callable, Optional


def available() -> bool:
    return hasattr(os, "fork") and hasattr(os, "waitstatus_to_exitcode")


class ForkedChild:
    """``target(*args)`` in a child made by :func:`os.fork`."""

    def __init__(self, target: Callable[..., Any], args: tuple[Any, ...]) -> None:
        sentinel_r, sentinel_w = os.pipe()  # EOF for the parent once the child has ended
        pid = os.fork()
        if pid == 0:  # the child
            code = 1
            try:
                os.close(sentinel_r)
                code = _run(target, args)
            finally:
                os._exit(code)
        os.close(sentinel_w)
        self.pid = pid
        self.sentinel: Optional[int] = sentinel_r
        self.exitcode: Optional[int] = None

    def _reap(self, block: bool) -> None:
        if self.exitcode is not None:
            return
        try:
            pid, status = os.waitpid(self.pid, 0 if block else os.WNOHANG)
        except ChildProcessError:  # reaped by someone else: its status is lost
            self.exitcode = 255
            return
        if pid:
            self.exitcode = os.waitstatus_to_exitcode(status)

    def is_alive(self) -> bool:
        self._reap(block=False)
        return self.exitcode is None

    def join(self, timeout: Optional[float] = None) -> None:
        """Wait up to ``timeout`` seconds for the child to end and reap it."""
        if self.exitcode is not None or self.sentinel is None:
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        if not multiprocessing.connection.wait([self.sentinel], timeout):
            self._reap(block=False)
            return
        # Every copy of the sentinel is closed: the child has ended, or is ending now (or
        # closed the descriptor itself). Reap it, waiting no longer than the deadline.
        self._reap(block=False)
        if self.exitcode is None:
            self._wait_exit(deadline)

    def _wait_exit(self, deadline: Optional[float]) -> None:
        pidfd = -1
        if hasattr(os, "pidfd_open"):
            try:
                pidfd = os.pidfd_open(self.pid)
            except OSError:
                pidfd = -1
        try:
            while self.exitcode is None:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return
                if pidfd >= 0:
                    select.select([pidfd], [], [], remaining)
                else:  # no pidfd here: check again shortly, never past the deadline
                    time.sleep(min(0.001, remaining) if remaining is not None else 0.001)
                self._reap(block=False)
        finally:
            if pidfd >= 0:
                os.close(pidfd)

    def close(self) -> None:
        if self.sentinel is not None:
            os.close(self.sentinel)
            self.sentinel = None


def _run(target: Callable[..., Any], args: tuple[Any, ...]) -> int:
    """In the child: what multiprocessing's bootstrap does that code here may rely on."""
    # multiprocessing's own (private) state, reset as its bootstrap resets it.
    from multiprocessing import process, util

    mp_process: Any = process
    mp_util: Any = util
    try:
        mp_process._children = set()  # the parent's children are not this child's
        mp_util._finalizer_registry.clear()
        mp_util._run_after_forkers()  # queues, locks and managers made before the fork
    except Exception:
        pass
    code = 1
    try:
        target(*args)
        code = 0
    except SystemExit as exc:
        if exc.code is None:
            code = 0
        elif isinstance(exc.code, int):
            code = exc.code
        else:
            sys.stderr.write(f"{exc.code}\n")
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            mp_util._exit_function()  # stops the children the target started, as mp does
        except BaseException:
            pass
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
    return code
