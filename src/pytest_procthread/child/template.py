"""The warm template's side: a process that forks one fresh child per test body.

Started by ``process.template`` with ``spawn`` or ``forkserver``, so it inherits nothing
from the test process. It imports what the jobs name (the test modules, rewritten as
pytest rewrote them) and forks each child from that state as the test process forks its
own (``forkhooks``, ``mpstate``); the child runs ``child_main`` as any other child does,
and says when it is done, before its exit. It runs no thread of its
own (a fork from a process with threads is unsafe): a job whose imports start one is
answered "tainted", and the template ends. It ends when the test process closes its
lifeline, and its children watch the same lifeline.

Protocol, on a duplex pipe, one job at a time::

    test process -> template   a job (a dict, see ``process.template``), then the write
                               ends of the result pipe and of the done pipe, passed
    template -> test process   ("started", id, pid), ("refused", id, reason) or
                               ("tainted", id, modules that started threads on import)
    template -> test process   ("ended", id, exitcode)   (multiprocessing's convention)
"""

from __future__ import annotations

import importlib
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
import threading
import warnings
from multiprocessing import reduction
from typing import Any, Callable, Optional

from . import fdguard, rewrite, stdio
from .forkhooks import fork_without_lock_hooks
from .lifeline import death_signal_arming, enlist, mark_tree
from .main import child_main
from .mpstate import live_and_exit
from .spec import ChildSpec, FdRef

Job = dict[str, Any]


def serve(conn: Any, lifeline: Any, preload: tuple[str, ...] = (),
          outside: Optional[tuple[FdRef, str]] = None) -> None:
    """Main loop of a template process: one job at a time until the lifeline ends.
    ``preload``: modules every job's children need, imported before the first job.
    ``outside``: the warden's pipe and the tree mark (see ``process.warden``)."""
    _quiet()
    if outside is not None:
        mark_tree(outside[1].encode())
        enlist(outside[0].fd)
    if hasattr(signal, "SIGINT"):
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the test process
    fdguard.keep_in_parent(conn.fileno())  # forked children must not hold it
    stdio.prepare_parent_for_fork()
    stdio.suppress_crash_reports()  # here, once: every child starts with it
    arm = death_signal_arming()
    _preload({"preload": preload})
    while True:
        # No time limit: the template idles between tests; the lifeline ends it.
        ready = multiprocessing.connection.wait([conn, lifeline])
        if lifeline in ready:
            return
        try:
            job = conn.recv()
            with socket.socket(fileno=os.dup(conn.fileno())) as channel:
                result_fd, done_fd = reduction.recvfds(channel, 2)
        except (EOFError, OSError):
            return
        try:
            _apply(job)
            tainted = _preload(job)
            if tainted or threading.active_count() > 1:
                conn.send(("tainted", job["id"], tainted))
                return  # a process with threads must not fork: the test process retires us
            pid, ended = _fork(_spec(job, result_fd, lifeline), done_fd, arm)
        except Exception as exc:
            conn.send(("refused", job["id"], f"{type(exc).__name__}: {exc}"))
            continue
        finally:
            os.close(result_fd)
            os.close(done_fd)
        conn.send(("started", job["id"], pid))
        code = _watch(pid, ended, lifeline)
        if code is None:  # the test process is gone
            return
        conn.send(("ended", job["id"], code))


def _spec(job: Job, result_fd: int, lifeline: Any) -> ChildSpec:
    return ChildSpec(
        name=job["name"], start_method=job["start_method"], result_conn=FdRef(result_fd),
        lifeline_conn=FdRef(lifeline.fileno()), stdout_path=job["stdout_path"],
        stderr_path=job["stderr_path"], timeout=job["timeout"], payload=job["payload"],
        cores_off=True, coverage=job.get("coverage"),
    )


def _fork(spec: ChildSpec, done_fd: int,
          arm: Optional[Callable[[], bool]]) -> tuple[int, int]:
    """Fork the child of ``spec``, as the test process forks its own (``live_and_exit``:
    it says it is done on ``done_fd`` before it exits); its pid, and a descriptor that
    ends once it has ended. ``arm``: where it works, the child dies with this template
    and watches no lifeline of its own."""
    ended_r, ended_w = os.pipe()
    pid = fork_without_lock_hooks()
    if pid == 0:
        if arm is not None and arm():
            spec.lifeline_conn = None
        live_and_exit(child_main, (spec,), None, (ended_r,), done_fd)
    os.close(ended_w)
    return pid, ended_r


def _watch(pid: int, ended: int, lifeline: Any) -> Optional[int]:
    """Wait for the child to end: its exit code; None (the child killed) if the lifeline
    ends first."""
    try:
        # No time limit of its own: the test process bounds the child and kills it.
        ready = multiprocessing.connection.wait([ended, lifeline])
        if ended not in ready:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status)
    finally:
        os.close(ended)


def _quiet() -> None:
    # Nothing the template prints reaches the test's output; each child's own output goes
    # to the files of its job. Not to a log file: nobody reads one, and a test process
    # killed with its template could not remove it.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)


def _apply(job: Job) -> None:
    """The test process's working directory, environment and import path, now."""
    cwd = job.get("cwd")
    if cwd and cwd != os.getcwd():
        try:
            os.chdir(cwd)
        except OSError:
            pass
    environ = job.get("environ")
    if environ is not None:
        apply_environ(environ)
    sys_path = job.get("sys_path")
    if sys_path is not None:
        sys.path[:] = sys_path


def apply_environ(environ: dict[str, str]) -> None:
    """Make ``os.environ`` what ``environ`` says, changing only what differs (it differs
    by a variable or two from one test to the next: PYTEST_CURRENT_TEST)."""
    current = os.environ
    for name in [name for name in current if name not in environ]:
        del current[name]
    for name, value in environ.items():
        if current.get(name) != value:
            current[name] = value


def _preload(job: Job) -> list[str]:
    """Import what the job's children would import first; the modules that started a
    thread (after which forking is unsafe) are returned."""
    rewritten = job.get("rewrite") or {}
    if rewritten:
        rewrite.install_rewriting(rewritten)
    tainted = []
    for name in job.get("preload", ()):
        if name in sys.modules:
            continue
        before = threading.active_count()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                importlib.import_module(name)
        except BaseException:  # the child imports it again and reports what goes wrong
            sys.modules.pop(name, None)
        if threading.active_count() > before:
            tainted.append(name)
    return tainted
