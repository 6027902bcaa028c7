"""Warm templates: fast fresh children for ``spawn`` and ``forkserver``.

Starting a fresh interpreter and importing pytest and a test module costs 150-300 ms, far
more than the body of a typical test. For ``--isolated`` under ``spawn`` or
``forkserver``, the test process therefore keeps one *template* per start method: a
process started with that method (so it inherits nothing from the test process), which
imports the test modules once and then **forks one new child per test body**. Every
child starts from the same clean state, so nothing passes from one test to the next; a
child that crashes, hangs or exits takes only itself down.

The template runs no thread of its own (a fork from a threaded process is unsafe); it
stops when the test process closes its lifeline, and the children it forks watch the same
lifeline. Where there is no ``fork`` (Windows), when a template is busy or gone, or when
a call carries multiprocessing objects (which can only be handed over as a process
starts), the runner starts a fresh child the usual way instead.

Protocol (the template's end of a socket pair, one job at a time)::

    test process -> template   {"name", "start_method", "payload", ...}   then the result
                                pipe's write end as a passed descriptor
    template -> test process   ("started", id, pid), ("refused", id, reason) or
                               ("tainted", id, modules that started threads on import)
    template -> test process   ("ended", id, exitcode)   (multiprocessing's convention)
"""

from __future__ import annotations

import atexit
import multiprocessing
import multiprocessing.connection
import os
import sys
import tempfile
import threading
import time
from typing import Any, Optional

from . import _fdguard

PROTOCOL_VERSION = 1
TEMPLATE_DIED = (
    "the warm template process that started this child died, so its exit status is "
    "unknown; the child was stopped"
)
_templates: dict[str, _Template] = {}
_tainted_modules: set[str] = set()
_lock = threading.Lock()
_atexit_registered = False


def available() -> bool:
    return hasattr(os, "fork") and "fork" in multiprocessing.get_all_start_methods()


class TemplateChild:
    """Stands in for the ``multiprocessing.Process`` of a child forked by a template: what
    :class:`~pytest_procthread.process.ProcessHandle` uses (``pid``, ``sentinel``,
    ``is_alive()``, ``join()``, ``exitcode``, ``close()``)."""

    def __init__(self, template: _Template, job_id: int, pid: int, stderr_path: str) -> None:
        self._template = template
        self._job_id = job_id
        self._stderr_path = stderr_path
        self.pid = pid
        self.sentinel = template.conn  # readable once the template reports the end
        self.exitcode: Optional[int] = None

    def _poll(self, timeout: float) -> None:
        if self.exitcode is not None or self._template.conn is None:
            return
        try:
            if not self._template.conn.poll(max(0.0, timeout)):
                return
            message = self._template.conn.recv()
        except (EOFError, OSError):
            self._template_died()
            return
        if message[:2] == ("ended", self._job_id):
            self.exitcode = message[2]
            self._template.busy = False

    def _template_died(self) -> None:
        from .tree import descendants, stop_processes

        try:
            import psutil

            stop_processes([psutil.Process(self.pid), *descendants(self.pid)], 2.0)
        except Exception:
            pass
        self._template.retire()
        self.exitcode = None  # unknown: the template that could have told is gone
        try:
            with open(self._stderr_path, "a", encoding="utf-8") as f:
                f.write(f"\nprocthread: {TEMPLATE_DIED}\n")
        except OSError:
            pass

    def is_alive(self) -> bool:
        self._poll(0)
        return self.exitcode is None and self._template.conn is not None

    def join(self, timeout: Optional[float] = None) -> None:
        self._poll(0 if timeout is None else timeout)

    def close(self) -> None:
        pass


class _Template:
    def __init__(self, method: str, timeout: float) -> None:
        ctx: Any = multiprocessing.get_context(method)
        self.method = method
        self.busy = False
        self._jobs = 0
        self.conn: Any
        self.conn, their_conn = ctx.Pipe(duplex=True)
        lifeline_r, self.lifeline_w = ctx.Pipe(duplex=False)
        for conn in (self.conn, self.lifeline_w):
            _fdguard.keep_in_parent(conn.fileno())
        fd, self.log_path = tempfile.mkstemp(prefix="procthread-template-", suffix=".log")
        os.close(fd)
        self.process = ctx.Process(
            target=serve, args=(their_conn, lifeline_r, self.log_path, PROTOCOL_VERSION),
            name=f"procthread:template-{method}",
        )
        try:
            self.process.start()
        except BaseException:
            self._close_pipes()
            their_conn.close()
            lifeline_r.close()
            raise
        their_conn.close()
        lifeline_r.close()
        self.pid = self.process.pid

    def launch(
        self, job: dict[str, Any], result_fd: int, timeout: float
    ) -> Optional[TemplateChild]:
        from multiprocessing import reduction

        if self.conn is None:
            return None
        self.busy = True
        self._jobs += 1
        job_id = self._jobs
        deadline = time.monotonic() + timeout
        try:
            self.conn.send({**job, "id": job_id})
            reduction.send_handle(self.conn, result_fd, self.pid)
            while True:  # answers to an earlier job (one given up on) are skipped
                if not self.conn.poll(max(0.0, deadline - time.monotonic())):
                    raise TimeoutError(f"no answer from the template within {timeout:g} s")
                answer = self.conn.recv()
                if answer[1] == job_id:
                    break
        except (OSError, EOFError, TimeoutError, ValueError):
            self.retire()
            return None
        if answer[0] == "started":
            return TemplateChild(self, job_id, answer[2], job["stderr_path"])
        self.busy = False
        if answer[0] == "tainted":
            _tainted_modules.update(answer[2])
            self.retire()
        return None

    def _close_pipes(self) -> None:
        for name in ("conn", "lifeline_w"):
            conn = getattr(self, name, None)
            if conn is not None:
                _fdguard.release(conn.fileno())
                conn.close()
                setattr(self, name, None)

    def retire(self, grace: float = 2.0) -> None:
        """Stop the template: close its pipes (it ends by itself), then make sure."""
        with _lock:
            if _templates.get(self.method) is self:
                del _templates[self.method]
        self._close_pipes()
        process = getattr(self, "process", None)
        if process is not None:
            process.join(grace)
            if process.is_alive():
                process.kill()
                process.join(grace)
            try:
                process.close()
            except ValueError:
                pass
            self.process = None
        try:
            os.unlink(self.log_path)
        except OSError:
            pass


def launch(
    method: str, job: dict[str, Any], result_fd: int, timeout: float
) -> Optional[TemplateChild]:
    """Have the template of ``method`` fork a child for ``job``; None to start it cold."""
    global _atexit_registered
    if not available() or method == "fork":
        return None
    if any(module in _tainted_modules for module in job.get("preload", ())):
        return None
    with _lock:
        template = _templates.get(method)
    if template is not None and (template.busy or template.conn is None):
        # Bodies run one at a time; a template still busy lost track of an earlier child
        # (its test was interrupted): start afresh rather than guess.
        template.retire()
        template = None
    with _lock:
        if template is None:
            try:
                template = _templates[method] = _Template(method, timeout)
            except Exception:
                return None
            if not _atexit_registered:
                atexit.register(stop_all)  # runs before multiprocessing's own exit join
                _atexit_registered = True
        template.busy = True
    return template.launch(job, result_fd, timeout)


def stop_all() -> None:
    """Stop every template of this process (end of session, or exit)."""
    with _lock:
        templates = list(_templates.values())
    for template in templates:
        template.retire()


# -- the template process ----------------------------------------------------------------------


def _quiet(log_path: str) -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND)
    os.dup2(devnull, 1)
    os.dup2(log, 2)
    os.close(devnull)
    os.close(log)


def _apply(job: dict[str, Any]) -> None:
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


def _preload(job: dict[str, Any]) -> list[str]:
    """Import what the job's children would import first; the modules that started a
    thread (after which forking is unsafe) are returned."""
    import importlib
    import warnings

    rewrite = job.get("rewrite") or {}
    if rewrite:
        from .isolation import install_rewriting

        install_rewriting(rewrite)
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


def serve(conn: Any, lifeline: Any, log_path: str, version: int) -> None:
    """Main loop of a template process."""
    import signal
    from multiprocessing import reduction
    from multiprocessing.connection import Connection

    from . import _child

    _quiet(log_path)
    if hasattr(signal, "SIGINT"):
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the test process
    _fdguard.keep_in_parent(conn.fileno())  # forked children must not hold it
    _child.prepare_parent_for_fork()
    import tblib.pickling_support  # noqa: F401  (every child that raises needs it)

    from . import isolation  # noqa: F401  (and pytest with it)

    fork: Any = multiprocessing.get_context("fork")
    while True:
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
            spec = _child.ChildSpec(
                name=job["name"], start_method=job["start_method"], result_conn=result_conn,
                lifeline_conn=lifeline, stdout_path=job["stdout_path"],
                stderr_path=job["stderr_path"], timeout=job["timeout"],
                payload=job["payload"], quiet_lifeline=True,
            )
            process = fork.Process(target=_child.child_main, args=(spec,),
                                   name=f"procthread:{job['name']}")
            process.start()
        except Exception as exc:
            result_conn.close()
            conn.send(("refused", job["id"], f"{type(exc).__name__}: {exc}"))
            continue
        result_conn.close()
        conn.send(("started", job["id"], process.pid))
        ready = multiprocessing.connection.wait([process.sentinel, lifeline])
        if process.sentinel not in ready:  # the test process is gone
            process.kill()
            process.join(2.0)
            return
        process.join(2.0)
        conn.send(("ended", job["id"], process.exitcode))
        process.close()

