"""A started child, as the test sees it: wait for it, stop it, and read its Outcome.

The result comes back as one record (``wire.result``) on a pipe that the handle drains
while it waits, so a large return value never blocks the child, or in a memory file read
once the child has ended. While it waits, the handle also watches this process's warden
(``warden``): one killed while a test waits is replaced at once, before the test process
too can end with its children unwatched.
"""

from __future__ import annotations

import math
import multiprocessing.connection
import os
import select
import threading
import time
from typing import Any, Optional

from ..child import fdguard
from ..outcome import Outcome
from ..settings import Settings, validate_timeout
from ..wire.result import decode as decode_result
from .capture import Capture, read_frame
from .launch import ChildProcess, Launched, NoChild
from .live import untrack
from .proctree import stop_child_tree
from .warden import pidfds_ended, watched_pidfds

STOP_GRACE = 2.0
WARDENS_AFTER = 0.05  # seconds of a wait before the warden pair is watched as well
# How much of a child's stdout and stderr the Outcome holds: the first and last halves.
OUTPUT_KEPT = 32 * 2**20


class ProcessHandle:
    """A child started by :meth:`ProcessRunner.start`."""

    def __init__(self, name: str, settings: Settings, captures: tuple[Capture, Capture]) -> None:
        self.name = name
        self.settings = settings
        self.start_method = settings.start_method
        self._captures = captures
        self._child: ChildProcess = NoChild()  # until attach()
        self.pid = 0
        self._result_conn: Any = None
        self._result_file: Optional[int] = None
        self._lifeline_conn: Any = None
        self._started = time.monotonic()
        self._result: Optional[bytes] = None
        self._outcome: Optional[Outcome] = None
        self._killed = False
        self._lock = threading.Lock()

    def attach(self, launched: Launched) -> None:
        """For the runner: the child this handle stands for, once started."""
        self._child = launched.child
        self._result_conn = launched.result_conn
        self._result_file = launched.result_file
        self._lifeline_conn = launched.lifeline_conn
        self.pid = launched.child.pid
        self._started = time.monotonic()

    def __repr__(self) -> str:
        state = "alive" if self.is_alive() else "finished"
        return f"<ProcessHandle {self.name!r} pid={self.pid} {self.start_method} {state}>"

    @property
    def output_paths(self) -> tuple[str, str]:
        """The files the child's fd 1 and fd 2 write to, valid until its outcome is built
        (open them before then to read on)."""
        return self._captures[0].path, self._captures[1].path

    @property
    def finished(self) -> bool:
        """Whether the outcome is built (the child has ended and been reaped)."""
        return self._outcome is not None

    @property
    def lost(self) -> str:
        """Why the child's exit status is unknown (the template that forked it died), or ""."""
        return self._child.lost

    def is_alive(self) -> bool:
        return self._outcome is None and self._child.is_alive()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Wait up to ``timeout`` seconds for the child to end; never kills. True if it ended."""
        seconds = self.settings.timeout if timeout is None else validate_timeout(timeout, "wait()")
        if self._outcome is not None:
            return True
        self._drain(time.monotonic() + seconds)
        return not self._child.is_alive()

    def kill(self) -> Outcome:
        """Kill the child and its whole tree now (no stack dump); return its outcome."""
        with self._lock:
            if self._outcome is None and self._child.is_alive():
                self._killed = True
                stop_child_tree(self.pid, self._wait_root, dump_first=False, grace=STOP_GRACE)
        return self.join(timeout=STOP_GRACE)

    def join(self, timeout: Optional[float] = None) -> Outcome:
        """Wait for the child, at most ``timeout`` seconds (default: the runner's timeout).

        On timeout the child's stacks are dumped into its stderr, then it and everything it
        started are terminated, then killed; the outcome says ``timed_out``.
        """
        with self._lock:
            if self._outcome is not None:
                return self._outcome
            seconds = (
                self.settings.timeout if timeout is None else validate_timeout(timeout, "join()")
            )
            self._drain(time.monotonic() + seconds)
            timed_out = False
            if self._child.is_alive():
                timed_out = True
                self._captures[1].append(
                    f"\nprocthread: no result after {seconds:g} s; dumping the stacks of "
                    f"every thread, then stopping the process tree\n"
                )
                stop_child_tree(self.pid, self._wait_root, dump_first=True, grace=STOP_GRACE)
            self._outcome = self._build_outcome(timed_out, seconds)
            self.release()
            return self._outcome

    def _wait_root(self, seconds: float) -> bool:
        self._drain(time.monotonic() + seconds)
        return not self._child.is_alive()

    def _drain(self, deadline: float) -> None:
        """Read the result as it comes and wait for the child to end, until ``deadline``."""
        child = self._child
        sentinel = child.sentinel
        done = child.done  # a direct fork child of --isolated says when it is done
        watch_wardens = False
        while True:
            remaining = deadline - time.monotonic()
            waitables: list[Any] = [sentinel]
            if self._result_conn is not None:
                waitables.append(self._result_conn)
            if done is not None:
                waitables.append(done)
            # The warden pair is watched once the child has run a while: a pidfd more in
            # the poll is paid by every short child (figures in benchmarks/README.md).
            wardens = watched_pidfds() if watch_wardens else []
            ready = _wait(waitables + wardens, max(0.0, remaining if watch_wardens
                                                   else min(remaining, WARDENS_AFTER)))
            watch_wardens = True
            if wardens and any(fd in ready for fd in wardens):
                pidfds_ended([fd for fd in wardens if fd in ready])
            if self._result_conn is not None and self._result_conn in ready:
                self._receive_result()
            if done is not None and done in ready:
                if child.note_done():
                    return
                done = None  # it ended without saying so: wait for the sentinel
                continue
            if sentinel in ready:
                if self._result_conn is not None and self._result_conn.poll(0):
                    self._receive_result()
                # The sentinel fires as the child closes its descriptors, a moment before
                # it can be reaped; a non-blocking join here would race with that.
                child.join(STOP_GRACE)
                return
            if remaining <= 0:
                return

    def _receive_result(self) -> None:
        try:
            self._result = self._result_conn.recv_bytes()
        except (EOFError, OSError):
            pass
        self._result_conn.close()
        self._result_conn = None

    def _build_outcome(self, timed_out: bool, timeout: float) -> Outcome:
        exitcode = self._child.exitcode
        if self._result_file is not None:
            self._result = read_frame(self._result_file)
        fields: dict[str, Any] = {}
        if self._result is not None:
            record = decode_result(self._result)
            if record["status"] == "returned":
                fields.update(returned=True, value=record["value"])
            else:
                fields.update(exception=record["exception"], traceback=record["traceback"])
        crashed = (
            not timed_out
            and not self._killed
            and "exception" not in fields
            and not fields.get("returned")
            and exitcode not in (0, None)
        )
        return Outcome(
            kind="process",
            name=self.name,
            exitcode=exitcode,
            crashed=crashed,
            timed_out=timed_out,
            killed=self._killed,
            stdout=self._captures[0].read_text(OUTPUT_KEPT),
            stderr=self._captures[1].read_text(OUTPUT_KEPT),
            duration=time.monotonic() - self._started,
            pid=self.pid,
            start_method=self.start_method,
            timeout=timeout if timed_out else None,
            **fields,
        )

    def release(self) -> None:
        """Close every channel to the child and discard its output files (the outcome
        holds what they said)."""
        if self._result_conn is not None:
            self._result_conn.close()
            self._result_conn = None
        if self._result_file is not None:
            os.close(self._result_file)
            self._result_file = None
        if self._lifeline_conn is not None:
            fdguard.release(self._lifeline_conn.fileno())
            self._lifeline_conn.close()
            self._lifeline_conn = None
        for capture in self._captures:
            capture.discard()
        self._child.close()
        untrack(self)


def _wait(waitables: list[Any], timeout: float) -> list[Any]:
    """``multiprocessing.connection.wait``, with one poll() call where there is poll():
    the test process waits on every child, and less work there is less time to the
    child's first step (right after a fork the child often waits for this CPU)."""
    if not hasattr(select, "poll"):
        return list(multiprocessing.connection.wait(waitables, timeout))
    poller = select.poll()
    by_fd = {}
    for waitable in waitables:
        fd = waitable if isinstance(waitable, int) else waitable.fileno()
        by_fd[fd] = waitable
        poller.register(fd, select.POLLIN)
    # poll() takes milliseconds; round up, so that a wait never ends before its time.
    events = poller.poll(max(0, math.ceil(timeout * 1000)))
    return [by_fd[fd] for fd, _ in events]
