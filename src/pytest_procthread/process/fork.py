"""The ``fork`` start path: a child made by ``os.fork()`` directly, not by multiprocessing.

Everything the child needs is made before the fork (its spec, its output and result
files, its multiprocessing identity's parts): right after a fork the child often waits
for this process to block, and every page this process writes meanwhile is copied. The
child runs ``child.main.child_main`` inside ``child.mpstate.run_target`` and ends with
``os._exit``; it runs no import statement (``tests/test_fork_imports.py`` guards that).

The parent watches it through a pidfd where there is one (one wake-up, at the exit), a
sentinel pipe elsewhere. Under ``--isolated`` (``signal_done``) the child also says when
it is done, on a pipe, just before it exits: the test process goes on from there while
the child's exit returns its copy of the memory, and reaps it before the test's fixtures
are torn down (``launch.reap_exiting``), so no fixture or later test sees it.
"""

from __future__ import annotations

import multiprocessing.connection
import os
import select
import signal
import sys
import time
from typing import Any, Callable, Optional

from ..child import fdguard
from ..child.forkhooks import fork_without_lock_hooks
from ..child.main import child_main
from ..child.mpstate import MpIdentity, live_and_exit
from ..child.spec import ChildSpec, FdRef
from ..child.stdio import prepare_parent_for_fork
from .capture import new_memory_file
from .launch import Launched, LaunchRequest, note_exiting, reap_exiting
from .proctree import pidfd_works
from .warden import pipe_for_child

# Exiting takes about a millisecond; a child still there after this is stuck in the kernel.
REAP_GRACE = 5.0
STUCK_GRACE = 1.0


def available() -> bool:
    return hasattr(os, "fork")


def start_forked(request: LaunchRequest) -> Launched:
    """Fork the child of ``request``. Where there are memory files (Linux) it inherits its
    output files and its result file, and the test process reads them once it has ended:
    one wake-up per child, not one for the result and one more for the end."""
    prepare_parent_for_fork()
    out, err = request.captures
    result_file = new_memory_file("result")
    result_r = result_w = None
    if result_file is None:
        result_r, result_w = multiprocessing.connection.Pipe(duplex=False)
        result_fd = result_w.fileno()
    else:
        result_fd = result_file
    warden_pipe = pipe_for_child()
    # The lifeline pipe: for the child to watch, where there is no warden; and as the
    # sentinel of multiprocessing.parent_process() in a child that is not a test body.
    lifeline_r = lifeline_w = None
    if warden_pipe is None or not request.warm:
        lifeline_r, lifeline_w = multiprocessing.connection.Pipe(duplex=False)
        fdguard.keep_in_parent(lifeline_w.fileno())
    spec = ChildSpec(
        name=request.name, start_method="fork",
        result_conn=FdRef(result_fd),
        lifeline_conn=None if lifeline_r is None else FdRef(lifeline_r.fileno()),
        stdout_path=out.path, stderr_path=err.path, timeout=request.timeout,
        direct_call=(request.fn, request.args, request.kwargs),
        capture_fds=None if out.fd is None or err.fd is None else (out.fd, err.fd),
        warden=None if warden_pipe is None else (warden_pipe, os.getpid()),
        coverage=request.coverage,
    )
    # Under --isolated (warm) the child is a test body, not a multiprocessing child.
    identity = (None if request.warm or lifeline_r is None
                else MpIdentity(f"procthread:{request.name}", lifeline_r.fileno()))
    core_limit = _cores_off()
    spec.cores_off = core_limit is not None
    try:
        child = ForkedChild(child_main, (spec,), identity, signal_done=request.warm)
    except BaseException:
        for conn in (result_r, lifeline_w):
            if conn is not None:
                fdguard.release(conn.fileno())
                conn.close()
        if result_file is not None:
            os.close(result_file)
        raise
    finally:
        if core_limit is not None and core_limit[0] != 0:
            _set_core_limit(core_limit)
        for conn in (result_w, lifeline_r):
            if conn is not None:
                conn.close()
    return Launched(child, result_r, result_file, lifeline_w)


def _flush_std_streams() -> None:
    for stream in (sys.stdout, sys.stderr):  # or the child would print it once more
        try:
            stream.flush()
        except Exception:
            pass


class ForkedChild:
    """``target(*args)`` in a child made by :func:`os.fork` (see ``child.mpstate`` for
    what the child sets up with an ``identity``); a ``launch.ChildProcess``."""

    lost = ""

    def __init__(
        self,
        target: Callable[..., Any],
        args: tuple[Any, ...],
        identity: Optional[MpIdentity] = None,
        signal_done: bool = False,
    ) -> None:
        reap_exiting()  # every child of an earlier runner is gone before this one starts
        _flush_std_streams()
        use_pidfd = pidfd_works()
        sentinel_r, sentinel_w = (-1, -1) if use_pidfd else os.pipe()
        done_r, done_w = os.pipe() if signal_done else (-1, -1)
        try:
            pid = fork_without_lock_hooks()
            if pid == 0:
                live_and_exit(target, args, identity, (sentinel_r, done_r), done_w)
        except BaseException:  # no child: nothing will close these
            for fd in (done_r, done_w, sentinel_r, sentinel_w):
                if fd >= 0:
                    os.close(fd)
            raise
        self.pid = pid
        self.exitcode: Optional[int] = None
        # Readable once the child is done (its exit code) or gone (EOF); None without.
        self.done: Optional[int] = None
        self._exiting = False  # said it was done and is exiting: reaped later
        if signal_done:
            os.close(done_w)
            self.done = done_r
        if use_pidfd:
            # Readable once the child has exited and can be reaped: one wake-up, no race
            # between the end of a pipe and the exit status.
            self.sentinel: Optional[int] = os.pidfd_open(self.pid)
        else:
            os.close(sentinel_w)
            self.sentinel = sentinel_r

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
        if not self.is_alive():  # usually called once the sentinel has fired: done already
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        if not multiprocessing.connection.wait([self.sentinel], timeout):
            self._reap(block=False)
            return
        # Every copy of the sentinel is closed: the child has ended, or is ending now (or
        # closed the descriptor itself). Reap it, waiting no longer than the deadline.
        self._reap(block=False)
        if self.exitcode is None:
            code = self._reaped_by(deadline)
            if code is not None:
                self.exitcode = code

    def _reaped_by(self, deadline: Optional[float]) -> Optional[int]:
        """Reap the child once it has ended, waiting no longer than ``deadline``: its exit
        code (255 if someone else reaped it and its status is lost), or None if it has
        not ended by then. Leaves ``exitcode`` as it is."""
        pidfd = -1
        if hasattr(os, "pidfd_open"):
            try:
                pidfd = os.pidfd_open(self.pid)
            except OSError:
                pidfd = -1
        try:
            while True:
                try:
                    pid, status = os.waitpid(self.pid, os.WNOHANG)
                except ChildProcessError:
                    return 255
                if pid:
                    return os.waitstatus_to_exitcode(status)
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                if pidfd >= 0:
                    select.select([pidfd], [], [], remaining)
                else:  # no pidfd here: check again shortly, never past the deadline
                    time.sleep(min(0.001, remaining) if remaining is not None else 0.001)
        finally:
            if pidfd >= 0:
                os.close(pidfd)

    def note_done(self) -> bool:
        """Read the done pipe once it is readable. True if the child said it is done: its
        exit code is known, and it is reaped by ``launch.reap_exiting``. False if it ended or
        closed the pipe without saying so (a crash, say): wait for its end as usual."""
        if self.done is None:
            return False
        try:
            code: Optional[int] = int(os.read(self.done, 32))
        except (OSError, ValueError):  # EOF (b"" is no int), or the target wrote there
            code = None
        os.close(self.done)
        self.done = None
        if code is None or self.exitcode is not None:
            return False
        self.exitcode = code
        self._exiting = True
        note_exiting(self)
        return True

    def reap_done(self) -> None:
        """Wait for a child that said it was done to end, and reap it; the exit code it
        said stays. Bounded: one still there after ``REAP_GRACE`` seconds is stuck in the
        kernel; it is killed, waited for a moment more, then left to the system."""
        try:
            if self._reaped_by(time.monotonic() + REAP_GRACE) is None:
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except OSError:
                    pass
                self._reaped_by(time.monotonic() + STUCK_GRACE)
        finally:
            self._exiting = False
            self.close()

    def close(self) -> None:
        if self.done is not None:
            os.close(self.done)
            self.done = None
        if self._exiting:  # the sentinel waits for the reaping
            return
        if self.sentinel is not None:
            os.close(self.sentinel)
            self.sentinel = None


# A child must not dump core (a deliberate crash would leave a file, or wait for a crash
# reporter). Set in the child, the limit would cost it copied pages; lowered here for the
# moment of the fork (the soft limit only, which this process can raise again), the child
# starts with it.
def _set_core_limit(limit: tuple[int, int]) -> None:
    import resource

    try:
        resource.setrlimit(resource.RLIMIT_CORE, limit)
    except (ValueError, OSError):
        pass


def _cores_off() -> Optional[tuple[int, int]]:
    """Soft core limit 0 for now; the limit to restore, or None if it could not be set."""
    try:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_CORE)
        if limit[0] != 0:
            resource.setrlimit(resource.RLIMIT_CORE, (0, limit[1]))
    except (ImportError, ValueError, OSError):
        return None
    return limit
