"""Run a callable in another OS process and bring back an Outcome.

The child's fd 1 and 2 go to files, not pipes, so a child that prints 100 MB never blocks
on a reader; its result comes back on a pipe that the parent drains while it waits, so a
large return value never blocks either.
"""

from __future__ import annotations

import atexit
import math
import multiprocessing
import multiprocessing.connection
import os
import pickle
import select
import shutil
import sys
import tempfile
import threading
import time
import weakref
from typing import Any, Callable, Optional

from . import _fdguard, _fork, _template, _warden, _wire
from ._capture import Capture, new_capture, new_memory_file, read_message
from ._child import (  # noqa: F401  (helper_threads_here: public, for code in children)
    RESULT_VERSION,
    RETURNED_NONE,
    ChildSpec,
    FdRef,
    child_main,
    helper_threads_here,
    prepare_parent_for_fork,
)
from .errors import NotPicklableError, ProcThreadError
from .outcome import Outcome
from .settings import Settings, resolve, validate_start_method, validate_timeout
from .tree import stop_child_tree

STOP_GRACE = 2.0
_counter = iter(range(1, sys.maxsize))
_live_handles: weakref.WeakSet[ProcessHandle] = weakref.WeakSet()
_atexit_registered = False


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


def _stop_leftovers_at_exit() -> None:
    # multiprocessing joins live non-daemon children at exit, without a time limit;
    # this runs first (registered later) and makes sure there are none.
    for handle in list(_live_handles):
        try:
            handle.kill()
        except Exception:
            pass


def _register_atexit() -> None:
    global _atexit_registered
    if not _atexit_registered:
        atexit.register(_stop_leftovers_at_exit)
        _atexit_registered = True


# Modules a forkserver server should import once, so that its children do not each import
# them again: our child entry point, and ctypes (which the child uses to unbuffer C stdio).
_FORKSERVER_PRELOAD = ("ctypes", "pytest_procthread._child")
_forkserver_preload_checked = False


def _preload_in_forkserver(ctx: Any) -> None:
    """Add our child's modules to the forkserver preload list, if no server runs yet.

    Uses the public ``set_forkserver_preload()``, which replaces the whole list; to keep
    the modules someone else asked for (default ``["__main__"]``) the current list, and
    whether a server already runs, can only be read from multiprocessing's private
    ``forkserver._forkserver`` state. That read is guarded: if the private names ever
    change, nothing is altered, and children import the modules themselves as before.
    Once a server runs its preloads are fixed, so a running server is left alone too.
    """
    global _forkserver_preload_checked
    if _forkserver_preload_checked:
        return
    _forkserver_preload_checked = True
    try:
        from multiprocessing import forkserver

        server = getattr(forkserver, "_forkserver", None)
        modules = getattr(server, "_preload_modules", None)
        if (
            not isinstance(modules, list)
            or not hasattr(server, "_forkserver_pid")
            or getattr(server, "_forkserver_pid", None) is not None
        ):
            return
        missing = [name for name in _FORKSERVER_PRELOAD if name not in modules]
        if missing:
            ctx.set_forkserver_preload([*modules, *missing])
    except Exception:
        pass


# One scratch directory per process for the children's output files (each child's files are
# deleted as soon as its outcome is built): making and removing a directory per runner, that
# is per test, costs a noticeable part of a fork. Made on first use; removed at interpreter
# exit, and at the end of a pytest session when no runner is open (remove_idle_scratch).
_scratch_lock = threading.Lock()
_scratch_dir: Optional[str] = None
_scratch_pid = 0  # the process that made it: a forked child must not remove it
_scratch_users = 0  # open runners that hold it


def _acquire_scratch() -> str:
    global _scratch_dir, _scratch_pid, _scratch_users
    with _scratch_lock:
        pid = os.getpid()
        if _scratch_dir is None or _scratch_pid != pid or not os.path.isdir(_scratch_dir):
            if _scratch_pid != pid:
                _scratch_users = 0
            _scratch_dir = tempfile.mkdtemp(prefix="procthread-")
            if _scratch_pid != pid:
                atexit.register(_remove_scratch_at_exit)
            _scratch_pid = pid
        _scratch_users += 1
        return _scratch_dir


def _release_scratch() -> None:
    global _scratch_users
    with _scratch_lock:
        if _scratch_pid == os.getpid() and _scratch_users > 0:
            _scratch_users -= 1


def remove_idle_scratch() -> None:
    """Remove the shared scratch directory now if no open runner uses it."""
    global _scratch_dir
    with _scratch_lock:
        if _scratch_dir is not None and _scratch_pid == os.getpid() and _scratch_users == 0:
            shutil.rmtree(_scratch_dir, ignore_errors=True)
            _scratch_dir = None


def _remove_scratch_at_exit() -> None:
    global _scratch_dir
    if _scratch_dir is not None and _scratch_pid == os.getpid():
        shutil.rmtree(_scratch_dir, ignore_errors=True)
        _scratch_dir = None


class ProcessHandle:
    """A child started by :meth:`ProcessRunner.start`."""

    def __init__(
        self,
        process: Any,
        result_conn: Any,
        lifeline_conn: Any,
        captures: tuple[Capture, Capture],
        settings: Settings,
        name: str,
        result_file: Optional[int] = None,
    ) -> None:
        self._process = process
        self._result_conn = result_conn
        # Or the result comes in a memory file, read once the child has ended (_capture).
        self._result_file = result_file
        self._lifeline_conn = lifeline_conn
        self._captures = captures
        self._stdout_path = captures[0].path
        self._stderr_path = captures[1].path
        self.settings = settings
        self.name = name
        self.start_method = settings.start_method
        self.pid: int = process.pid if process is not None else 0
        self._started = time.monotonic()
        self._result: Optional[bytes] = None
        self._outcome: Optional[Outcome] = None
        self._killed = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        state = "alive" if self.is_alive() else "finished"
        return f"<ProcessHandle {self.name!r} pid={self.pid} {self.start_method} {state}>"

    def is_alive(self) -> bool:
        return self._outcome is None and bool(self._process.is_alive())

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Wait up to ``timeout`` seconds for the child to end; never kills. True if it ended."""
        seconds = self.settings.timeout if timeout is None else validate_timeout(timeout, "wait()")
        if self._outcome is not None:
            return True
        self._drain(time.monotonic() + seconds)
        return not self._process.is_alive()

    def kill(self) -> Outcome:
        """Kill the child and its whole tree now (no stack dump); return its outcome."""
        with self._lock:
            if self._outcome is None and self._process.is_alive():
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
            if self._process.is_alive():
                timed_out = True
                self._note_in_stderr(
                    f"\nprocthread: no result after {seconds:g} s; dumping the stacks of "
                    f"every thread, then stopping the process tree\n"
                )
                stop_child_tree(self.pid, self._wait_root, dump_first=True, grace=STOP_GRACE)
            self._outcome = self._build_outcome(timed_out, seconds)
            self._release()
            return self._outcome

    def _wait_root(self, seconds: float) -> bool:
        self._drain(time.monotonic() + seconds)
        return not self._process.is_alive()

    def _attach(self, process: Any) -> None:
        """The child, for a handle made before it was started."""
        self._process = process
        self.pid = process.pid
        self._started = time.monotonic()

    def _drain(self, deadline: float) -> None:
        """Read the result as it comes and wait for the child to end, until ``deadline``."""
        sentinel = self._process.sentinel
        # A direct fork child of --isolated says when it is done, before its exit (_fork).
        done = getattr(self._process, "done", None)
        while True:
            remaining = deadline - time.monotonic()
            waitables: list[Any] = [sentinel]
            if self._result_conn is not None:
                waitables.append(self._result_conn)
            if done is not None:
                waitables.append(done)
            ready = _wait(waitables, max(0.0, remaining))
            if self._result_conn is not None and self._result_conn in ready:
                self._receive_result()
            if done is not None and done in ready:
                if self._process.note_done():
                    return
                done = None  # it ended without saying so: wait for the sentinel
                continue
            if sentinel in ready:
                if self._result_conn is not None and self._result_conn.poll(0):
                    self._receive_result()
                # The sentinel fires as the child closes its descriptors, a moment before
                # it can be reaped; a non-blocking join here would race with that.
                self._process.join(STOP_GRACE)
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

    def _note_in_stderr(self, text: str) -> None:
        self._captures[1].append(text)

    def _build_outcome(self, timed_out: bool, timeout: float) -> Outcome:
        exitcode = self._process.exitcode
        if self._result_file is not None:
            self._result = read_message(self._result_file)
        fields: dict[str, Any] = {}
        if self._result == RETURNED_NONE:  # most targets; no unpickler needed
            fields.update(returned=True, value=None)
        elif self._result is not None:
            try:
                # A result never holds multiprocessing objects (the child refuses them),
                # so plain pickle reads it: no unpickler object of our own to build.
                result = pickle.loads(self._result)
                if result.get("v") != RESULT_VERSION:
                    raise ProcThreadError(f"result format {result.get('v')!r}")
            except (Exception, SystemExit) as exc:
                # Unpickling runs code the child chose; not even sys.exit() there may end
                # the test process, nor leave this handle unfinished.
                result = {
                    "status": "raised",
                    "exception": ProcThreadError(
                        f"the child's result could not be unpickled in the parent: "
                        f"{type(exc).__name__}: {exc}. Return plain data, or objects whose "
                        f"classes the parent can import."
                    ),
                    "traceback": "",
                }
            if result["status"] == "returned":
                fields.update(returned=True, value=result["value"])
            else:
                fields.update(exception=result["exception"], traceback=result["traceback"])
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
            stdout=self._captures[0].read_text(),
            stderr=self._captures[1].read_text(),
            duration=time.monotonic() - self._started,
            pid=self.pid,
            start_method=self.start_method,
            timeout=timeout if timed_out else None,
            **fields,
        )

    def _release(self) -> None:
        if self._result_conn is not None:
            self._result_conn.close()
            self._result_conn = None
        if self._result_file is not None:
            os.close(self._result_file)
            self._result_file = None
        if self._lifeline_conn is not None:
            _fdguard.release(self._lifeline_conn.fileno())
            self._lifeline_conn.close()
            self._lifeline_conn = None
        for capture in self._captures:
            capture.discard()
        try:
            self._process.close()
        except (ValueError, AttributeError):
            pass
        _live_handles.discard(self)


class ProcessRunner:
    """Starts isolated children and stops whatever is left of them at :meth:`close`.

    >>> runner = ProcessRunner(start_method="spawn", timeout=10)
    >>> runner.run(pow, 2, 10).value
    1024
    >>> runner.close()

    With ``warm=True`` (what ``--isolated`` uses), children under ``spawn`` and
    ``forkserver`` are forked from a warm template process started with that method,
    which costs milliseconds instead of a fresh interpreter; see ``_template``. With
    ``scratch_dir`` the children's output files go there (the caller owns the directory)
    instead of a directory of the runner's own.
    """

    def __init__(
        self,
        start_method: Optional[str] = None,
        timeout: Optional[float] = None,
        *,
        config: Any = None,
        marker: Any = None,
        warm: bool = False,
        scratch_dir: Optional[str] = None,
        _parent: Optional[ProcessRunner] = None,
    ) -> None:
        self.settings = resolve(
            config, start_method=start_method, timeout=timeout, marker=marker,
            where_call="isolated_process.options()",
        )
        self._config = config
        self._warm = warm
        self._root: ProcessRunner = _parent._root if _parent is not None else self
        if _parent is None:
            self._handles: list[ProcessHandle] = []
            self._tmpdir: Optional[str] = scratch_dir
            self._holds_scratch = False  # uses (and counts in) the shared scratch directory
            self._closed = False

    @property
    def start_method(self) -> str:
        return self.settings.start_method

    @property
    def timeout(self) -> float:
        return self.settings.timeout

    @property
    def context(self) -> Any:
        """The multiprocessing context of this start method: make queues, locks and values
        with it, so that they can be passed to children of this runner."""
        return multiprocessing.get_context(self.start_method)

    def options(
        self, *, start_method: Optional[str] = None, timeout: Optional[float] = None
    ) -> ProcessRunner:
        """The same runner with other settings; its children are stopped with this one's."""
        method = (
            validate_start_method(start_method, "isolated_process.options()")
            if start_method is not None
            else self.start_method
        )
        seconds = (
            validate_timeout(timeout, "isolated_process.options()")
            if timeout is not None
            else self.timeout
        )
        return ProcessRunner(method, seconds, config=self._config, warm=self._warm, _parent=self)

    def _scratch(self) -> str:
        root = self._root
        if root._tmpdir is None:
            root._tmpdir = _acquire_scratch()
            root._holds_scratch = True
        return root._tmpdir

    def start(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> ProcessHandle:
        """Start ``fn(*args, **kwargs)`` in a new process and return at once."""
        if self._root._closed:
            raise ProcThreadError("this isolated_process runner is closed (its test has ended)")
        if not callable(fn):
            raise TypeError(
                f"isolated_process.start() needs a callable first, got {fn!r} "
                f"({type(fn).__name__}); pass the function itself, not its result"
            )
        method = self.start_method
        name = f"{getattr(fn, '__qualname__', type(fn).__name__)}#{next(_counter)}"
        if method == "fork" and _fork.available():
            return self._start_forked(fn, args, kwargs, name)
        direct_call: Optional[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = None
        payload: bytes = b""
        externals: list[Any] = []
        if method == "fork":
            prepare_parent_for_fork()
            direct_call = (fn, args, kwargs)
        else:
            payload, externals = _wire.dump_call(fn, args, kwargs, method)
        ctx: Any = multiprocessing.get_context(method)
        if method == "forkserver":
            _preload_in_forkserver(ctx)
        captures = (new_capture("out", self._scratch), new_capture("err", self._scratch))
        stdout_path, stderr_path = captures[0].path, captures[1].path
        result_r, result_w = ctx.Pipe(duplex=False)
        if self._warm and method != "fork" and not externals:
            handle = self._start_from_template(
                fn, name, payload, result_r, result_w, captures
            )
            if handle is not None:
                return handle
        lifeline_r, lifeline_w = ctx.Pipe(duplex=False)
        _fdguard.keep_in_parent(lifeline_w.fileno())
        # The child's ends go as bare descriptors on POSIX (see FdRef), as Connections on
        # Windows.
        child_result: Any = result_w if sys.platform == "win32" else FdRef(result_w.fileno())
        child_lifeline: Any = (
            lifeline_r if sys.platform == "win32" else FdRef(lifeline_r.fileno())
        )
        spec = ChildSpec(
            name=name, start_method=method, result_conn=child_result,
            lifeline_conn=child_lifeline,
            stdout_path=stdout_path, stderr_path=stderr_path, timeout=self.timeout,
            direct_call=direct_call, payload=payload, externals=externals,
            quiet_lifeline=True,
        )
        process: Any = None
        try:
            process = ctx.Process(target=child_main, args=(spec,), name=f"procthread:{name}")
            process.start()
        except Exception as exc:
            _fdguard.release(lifeline_w.fileno())
            for conn in (result_r, lifeline_w):
                conn.close()
            for capture in captures:
                capture.discard()
            if isinstance(exc, (TypeError, RuntimeError, AttributeError)) or "pickl" in str(exc):
                raise NotPicklableError(
                    f"cannot send the call's multiprocessing objects to a child started with "
                    f"{method!r}: {type(exc).__name__}: {exc}. Create queues, locks and values "
                    f"from isolated_process.context (the same start method), not another one.",
                    what="a multiprocessing object", start_method=method,
                ) from exc
            raise
        finally:
            result_w.close()
            lifeline_r.close()
        for obj in (*args, *kwargs.values()):
            handed_over = getattr(obj, "_handed_over", None)
            if handed_over is not None:
                handed_over()
        handle = ProcessHandle(
            process, result_r, lifeline_w, captures,
            Settings(method, self.timeout), name,
        )
        self._root._handles.append(handle)
        _live_handles.add(handle)
        _register_atexit()
        return handle

    def _start_forked(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], name: str
    ) -> ProcessHandle:
        """fork on POSIX: a direct fork (see ``_fork``).

        Where there are memory files (Linux), the child inherits its output files and its
        result file, and the test process reads them once the child has ended: it wakes up
        once per child, not once for the result and once more for the end. Everything is
        made before the fork: right after it, the child often waits for this process to
        block, and every page this process writes meanwhile is copied.
        """
        prepare_parent_for_fork()
        captures = (new_capture("out", self._scratch), new_capture("err", self._scratch))
        result_file = new_memory_file("result")
        result_r = result_w = None
        if result_file is None:
            result_r, result_w = multiprocessing.connection.Pipe(duplex=False)
            child_result = FdRef(result_w.fileno())
        else:
            child_result = FdRef(result_file)
        warden = _warden.pipe_for_child()
        # The lifeline pipe: for the child to watch, where there is no warden; and as the
        # sentinel of multiprocessing.parent_process() in a child that is not a test body.
        lifeline_r = lifeline_w = None
        if warden is None or not self._warm:
            lifeline_r, lifeline_w = multiprocessing.connection.Pipe(duplex=False)
            _fdguard.keep_in_parent(lifeline_w.fileno())
        capture_fds = (captures[0].fd, captures[1].fd)
        spec = ChildSpec(
            name=name, start_method="fork",
            result_conn=child_result,
            lifeline_conn=None if lifeline_r is None else FdRef(lifeline_r.fileno()),
            stdout_path=captures[0].path, stderr_path=captures[1].path, timeout=self.timeout,
            direct_call=(fn, args, kwargs), quiet_lifeline=True,
            capture_fds=None if None in capture_fds else capture_fds,  # type: ignore[arg-type]
            warden=None if warden is None else (warden, os.getpid()),
        )
        # Under --isolated (warm) the child is a test body, not a multiprocessing child.
        identity = (
            None if self._warm or lifeline_r is None
            else _fork.MpIdentity(f"procthread:{name}", lifeline_r.fileno())
        )
        handle = ProcessHandle(
            None, result_r, lifeline_w, captures, Settings("fork", self.timeout), name,
            result_file=result_file,
        )
        handed_over = [
            getattr(obj, "_handed_over", None) for obj in (*args, *kwargs.values())
        ]
        self._root._handles.append(handle)
        _live_handles.add(handle)
        _register_atexit()
        try:
            handle._attach(_fork.ForkedChild(child_main, (spec,), identity, signal_done=self._warm))
        except BaseException:
            self._root._handles.remove(handle)
            _live_handles.discard(handle)
            handle._release()
            raise
        finally:
            if result_w is not None:
                result_w.close()
            if lifeline_r is not None:
                lifeline_r.close()
        for done in handed_over:
            if done is not None:
                done()
        return handle

    def _start_from_template(
        self, fn: Callable[..., Any], name: str, payload: bytes, result_r: Any, result_w: Any,
        captures: tuple[Capture, Capture],
    ) -> Optional[ProcessHandle]:
        """Under spawn and forkserver with ``warm=True``: fork the child from the warm
        template of the start method (see ``_template``); None to start it cold."""
        warmup = getattr(fn, "procthread_warmup", None) or {}
        job = {
            "name": name, "start_method": self.start_method, "payload": payload,
            "stdout_path": captures[0].path, "stderr_path": captures[1].path,
            "timeout": self.timeout,
            "cwd": os.getcwd(), "environ": dict(os.environ), "sys_path": list(sys.path),
            "preload": list(warmup.get("preload", ())), "rewrite": warmup.get("rewrite", {}),
        }
        child = _template.launch(self.start_method, job, result_w.fileno(), self.timeout)
        if child is None:
            return None
        result_w.close()
        handle = ProcessHandle(
            child, result_r, None, captures,
            Settings(self.start_method, self.timeout), name,
        )
        self._root._handles.append(handle)
        _live_handles.add(handle)
        _register_atexit()
        return handle

    def run(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Outcome:
        """Start ``fn(*args, **kwargs)`` in a new process and wait for its outcome."""
        return self.start(fn, *args, **kwargs).join()

    def close(self) -> None:
        """Kill and reap every child still alive, close every pipe, delete scratch files."""
        root = self._root
        if root._closed:
            return
        root._closed = True
        for handle in root._handles:
            if handle._outcome is None:
                if handle.is_alive():
                    handle.kill()
                else:
                    handle.join(timeout=STOP_GRACE)
        root._handles.clear()
        if root._holds_scratch:
            root._holds_scratch = False
            _release_scratch()
        root._tmpdir = None


def stop_templates() -> None:
    """Stop the warm template processes that ``warm=True`` runners started."""
    _template.stop_all()
