"""The warm template's side: a process that forks one fresh child per test body.

Started by ``process.template`` with ``spawn`` or ``forkserver``, so it inherits nothing
from the test process. It imports what the jobs name (the test modules, rewritten as
pytest rewrote them) and forks each child from that state with multiprocessing's fork
context; the child runs ``child_main`` as any other child does. It runs no thread of its
own (a fork from a process with threads is unsafe): a job whose imports start one is
answered "tainted", and the template ends. It ends when the test process closes its
lifeline, and its children watch the same lifeline.

Protocol, on a duplex pipe, one job at a time::

    test process -> template   a job (a dict, see ``process.template``), then the result
                               pipe's write end as a passed descriptor
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
import sys
import threading
import warnings
from multiprocessing import reduction
from multiprocessing.connection import Connection
from typing import Any

from . import fdguard, rewrite, stdio
from .main import child_main
from .spec import ChildSpec

Job = dict[str, Any]


def serve(conn: Any, lifeline: Any, log_path: str) -> None:
    """Main loop of a template process: one job at a time until the lifeline ends."""
    _quiet(log_path)
    if hasattr(signal, "SIGINT"):
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the test process
    fdguard.keep_in_parent(conn.fileno())  # forked children must not hold it
    stdio.prepare_parent_for_fork()
    fork: Any = multiprocessing.get_context("fork")
    while True:
        # No time limit: the template idles between tests; the lifeline ends it.
        ready = multiprocessing.connection.wait([conn, lifeline])
        if lifeline in ready:
            return
        try:
            job = conn.recv()
            result_conn = Connection(reduction.recv_handle(conn), readable=False)
        except (EOFError, OSError):
            return
        try:
            _apply(job)
            tainted = _preload(job)
            if tainted or threading.active_count() > 1:
                conn.send(("tainted", job["id"], tainted))
                return  # a process with threads must not fork: the test process retires us
            process = fork.Process(target=child_main, args=(_spec(job, result_conn, lifeline),),
                                   name=f"procthread:{job['name']}")
            process.start()
        except Exception as exc:
            result_conn.close()
            conn.send(("refused", job["id"], f"{type(exc).__name__}: {exc}"))
            continue
        result_conn.close()
        conn.send(("started", job["id"], process.pid))
        if not _watch(process, lifeline):  # the test process is gone
            return
        conn.send(("ended", job["id"], process.exitcode))
        process.close()


def _spec(job: Job, result_conn: Any, lifeline: Any) -> ChildSpec:
    return ChildSpec(
        name=job["name"], start_method=job["start_method"], result_conn=result_conn,
        lifeline_conn=lifeline, stdout_path=job["stdout_path"],
        stderr_path=job["stderr_path"], timeout=job["timeout"], payload=job["payload"],
    )


def _watch(process: Any, lifeline: Any) -> bool:
    """Wait for the child to end; False (the child killed) if the lifeline ends first."""
    # No time limit of its own: the test process bounds the child and kills it.
    ready = multiprocessing.connection.wait([process.sentinel, lifeline])
    if process.sentinel not in ready:
        process.kill()
        process.join(2.0)
        return False
    process.join(2.0)
    return True


def _quiet(log_path: str) -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND)
    os.dup2(devnull, 1)
    os.dup2(log, 2)
    os.close(devnull)
    os.close(log)


def _apply(job: Job) -> None:
    """The test process's working directory, environment and import path, now."""
    cwd = job.get("cwd")
    if cwd and cwd != os.getcwd():
        try:
            os.chdir(cwd)
        except OSError:
            pass
    environ = job.get("environ")
    if environ is not None and environ != dict(os.environ):
        os.environ.clear()
        os.environ.update(environ)
    sys_path = job.get("sys_path")
    if sys_path is not None:
        sys.path[:] = sys_path


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
