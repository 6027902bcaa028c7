"""A forked child without ``multiprocessing.Process``: for runners that start many.

``multiprocessing`` spends about 0.7 ms per fork child on bookkeeping of its own (a
Process object, finalizers, a sentinel pipe, stdin reopened, the exit handlers), a third
of what the fork itself costs in a test process. ``warm=True`` runners (``--isolated``)
fork with :func:`os.fork` directly and do, in the child, only the part of
multiprocessing's start-up that code in the child may rely on: the after-fork hooks of
multiprocessing objects (queues, locks), a fresh list of children and of finalizers, and
the exit handlers at the end (which stop the children the child started).

With ``signal_done=True`` (``--isolated``) the child also says when it is done, on a pipe,
just before it exits: the test process goes on from there, without waiting for the exit.
A child's exit takes down its page tables, a copy of the test process's, and frees the
pages it copied: about 0.7 ms in a pytest process, as long as the fork itself. Done while
the test process writes its report, it is off the test's path. The child is reaped before the test's
fixtures are torn down (``reap_exiting``), so no fixture or later test sees it.

:class:`ForkedChild` offers what :class:`~pytest_procthread.process.ProcessHandle` uses of
a ``multiprocessing.Process``: ``pid``, ``sentinel``, ``is_alive()``, ``join()``,
``exitcode``, ``close()``.
"""

from __future__ import annotations

import gc
import itertools
import multiprocessing.connection
import os
import select
import signal
import sys
import threading
import time
import traceback
from multiprocessing import context as _mp_context_module
from multiprocessing import get_context
from multiprocessing import process as _mp_process_module
from multiprocessing import util as _mp_util_module
from typing import Any, Callable, Optional

from . import _forkhooks

# multiprocessing's own (private) state, which a child made without it must reset. Imported
# here, in the test process: an import statement run in the child walks the import system
# and copies every memory page that walk writes to.
mp_context: Any = _mp_context_module
mp_process: Any = _mp_process_module
mp_util: Any = _mp_util_module


def available() -> bool:
    return hasattr(os, "fork") and hasattr(os, "waitstatus_to_exitcode")


def _pidfd_works() -> bool:
    if not hasattr(os, "pidfd_open"):
        return False
    try:  # the kernel may be older than the Python build (pidfd_open: Linux 5.3)
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return False
    return True


_PIDFD = _pidfd_works()


class ForkedChild:
    """``target(*args)`` in a child made by :func:`os.fork`.

    With ``identity`` (see :class:`MpIdentity`), code in the child sees what it would see
    in a child of ``multiprocessing``: ``current_process()``, ``parent_process()``, the
    start method, stdin on /dev/null, its non-daemon threads joined at the end. The
    parent's side is lighter than multiprocessing's: no bookkeeping of the child in
    multiprocessing's lists, and on Linux a pidfd instead of a sentinel pipe.
    """

    def __init__(
        self,
        target: Callable[..., Any],
        args: tuple[Any, ...],
        identity: Optional[MpIdentity] = None,
        signal_done: bool = False,
    ) -> None:
        if _exiting:  # every child of an earlier runner is gone before this one starts
            reap_exiting()
        for stream in (sys.stdout, sys.stderr):  # or the child would print it once more
            try:
                stream.flush()
            except Exception:
                pass
        use_pidfd = _PIDFD
        if not use_pidfd:
            sentinel_r, sentinel_w = os.pipe()  # EOF for the parent once the child has ended
        done_r, done_w = os.pipe() if signal_done else (-1, -1)
        core_limit = _cores_off()
        try:
            pid = _forkhooks.fork()
            if pid == 0:  # the child
                me = os.getpid()
                global started_without_cores
                started_without_cores = core_limit is not None
                code = 1
                try:
                    if not use_pidfd:
                        os.close(sentinel_r)
                    if done_r >= 0:
                        os.close(done_r)
                    code = _run(target, args, identity)
                finally:
                    # Not from a process the target forked that came back to this frame:
                    # its exit would not be this child's.
                    if done_w >= 0 and os.getpid() == me:
                        _say_done(done_w, code)
                    os._exit(code)
        except BaseException:  # no child: nothing will close these
            for fd in (done_r, done_w) if signal_done else ():
                os.close(fd)
            if not use_pidfd:
                os.close(sentinel_r)
                os.close(sentinel_w)
            raise
        finally:
            if core_limit is not None and core_limit[0] != 0:
                _set_core_limit(core_limit)
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
            self.sentinel: Optional[int] = os.pidfd_open(pid)
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
            self._wait_exit(deadline)

    def _wait_exit(self, deadline: Optional[float]) -> None:
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
        exit code is known, and it is reaped by :func:`reap_exiting`. False if it ended or
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
        _exiting.append(self)
        return True

    def _reap_done(self) -> None:
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


def _say_done(fd: int, code: int) -> None:
    try:
        os.write(fd, str(code).encode())
    except BaseException:  # the target closed it: the parent sees EOF and waits for the end
        pass


# Children that said they were done and are exiting, not reaped yet.
_exiting: list[ForkedChild] = []

# Exiting takes about a millisecond; a child still there after this is stuck in the kernel.
REAP_GRACE = 5.0
STUCK_GRACE = 1.0


def reap_exiting() -> None:
    """Wait for the children that said they were done to end, and reap them."""
    while _exiting:
        _exiting.pop()._reap_done()


# A child must not dump core (a deliberate crash would leave a file, or wait for a crash
# reporter). Setting the limit in the child costs it ~30 us of copied pages; lowered for
# the moment of the fork (the soft limit only, which this process can raise again), the
# child starts with it. True in a child that did.
started_without_cores = False


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


class _SpareParts:
    """The objects a child's multiprocessing identity is made of, made once per parent
    process and never used there: each forked child gets its own copy with the rest of the
    memory. Made anew for every child they cost the parent ~60 written pages a child (a
    Process, its config, a text stream on stdin), each a page fault right after a fork."""

    __slots__ = ("counter", "parent", "pid", "process", "stdin")

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.process: Any = get_context("fork").Process(name="procthread")
        self.parent = mp_process._ParentProcess(mp_process.current_process().name, self.pid, None)
        self.counter = itertools.count(1)
        try:  # the child's sys.stdin, on fd 0, which the child points at /dev/null
            self.stdin: Any = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115
        except (OSError, ValueError):
            self.stdin = None


_spares: Optional[_SpareParts] = None


def _spare_parts() -> _SpareParts:
    global _spares
    if _spares is None or _spares.pid != os.getpid():
        _spares = _SpareParts()
    return _spares


class MpIdentity:
    """What multiprocessing's fork bootstrap would set up in the child, prepared in the
    parent before the fork.

    In a forked child the first write to each memory page copies it, at several
    microseconds a page in a VM: building these objects there, as multiprocessing's own
    bootstrap does, costs a noticeable part of the whole child. Their parts are made once
    in the parent (see :class:`_SpareParts`); the child only names them and installs them.
    """

    __slots__ = ("name", "number", "parent_sentinel", "spares")

    def __init__(self, name: str, parent_sentinel: Optional[int]) -> None:
        self.spares = _spare_parts()
        self.name = name
        self.parent_sentinel = parent_sentinel
        # The number multiprocessing would give this child (its _identity), from the
        # same counter.
        self.number: int = next(mp_process._process_counter)

    def install(self) -> None:
        """In the child: what ``BaseProcess._bootstrap`` does before it runs the target."""
        spares = self.spares
        parent_process: Any = mp_process._current_process
        child = spares.process
        child._name = self.name
        child._identity = (*parent_process._identity, self.number)
        child._config = parent_process._config  # the child's own copy already
        parent = spares.parent
        parent._name = parent_process.name
        parent._sentinel = self.parent_sentinel
        mp_context._force_start_method("fork")
        mp_process._process_counter = spares.counter
        mp_process._children = set()
        mp_process._current_process = child
        mp_process._parent_process = parent
        # stdin reads /dev/null, as under multiprocessing (a test must not wait on a tty)
        if spares.stdin is None:
            mp_util._close_stdin()
        else:
            devnull = os.open(os.devnull, os.O_RDONLY)
            if devnull != 0:
                os.dup2(devnull, 0)
                os.close(devnull)
            sys.stdin = spares.stdin
        main: Any = threading.main_thread()
        if hasattr(main, "_set_native_id"):
            main._set_native_id()


def _run(
    target: Callable[..., Any], args: tuple[Any, ...], identity: Optional[MpIdentity] = None
) -> int:
    """In the child: the part of multiprocessing's bootstrap that code here may rely on."""
    # The cyclic collector walks every object it tracks, writing to each: in a forked
    # child that copies every page those objects sit on. Objects from before the fork
    # belong to the parent's state; the child's own garbage is still collected.
    freeze = getattr(gc, "freeze", None)
    if freeze is not None:
        freeze()
    try:
        if identity is not None:
            identity.install()
        else:
            # The parent's children are not this child's. An empty set stays: replaced,
            # it would be freed here, which writes to the pages of its neighbours too.
            if mp_process._children:
                mp_process._children = set()
        if mp_util._finalizer_registry:
            mp_util._finalizer_registry.clear()
        # Queues, locks and managers made before the fork; the check spares a child that
        # has none a sorted copy of an empty registry (pages copied, nothing done).
        if mp_util._afterfork_registry:
            mp_util._run_after_forkers()
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
            # Stops the children the target started and runs its finalizers, as mp does;
            # with neither, it would do nothing.
            if mp_util._finalizer_registry or mp_process._children:
                mp_util._exit_function()
        except BaseException:
            pass
        if identity is not None:
            try:  # waits for the target's non-daemon threads, as multiprocessing does
                threading._shutdown()  # type: ignore[attr-defined]
            except BaseException:
                pass
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
    return code
