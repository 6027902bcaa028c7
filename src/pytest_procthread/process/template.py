"""The ``template`` start path: children forked by a warm template process.

Starting a fresh interpreter and importing pytest and a test module costs far more than
the body of a typical test (figures in benchmarks/README.md). For ``warm`` runners
(``--isolated``) under ``spawn`` or ``forkserver``, the test process therefore keeps one
*template* per start method: a process started with that method (so it inherits nothing
from the test process) that imports the test modules once and then forks one new child
per test body (its side is ``child.template``). Every child starts from the same clean
state, so nothing passes from one test to the next; a child that crashes, hangs or exits
takes only itself down.

Where there is no ``fork`` (Windows), when a template is busy or gone, or when its
imports started a thread, this path declines and the runner starts the child the usual
way (``mp``). A child whose template died has lost its exit status: its handle says so
(``lost``), and its stderr carries a note. So does a child whose template died while it
started it: that child may have run, and is not started a second time.
"""

from __future__ import annotations

import atexit
import multiprocessing
import multiprocessing.connection
import os
import socket
import sys
import threading
import time
from typing import Any, Optional

from ..child import fdguard
from ..child.lifeline import tree_mark
from ..child.spec import FdRef
from ..child.template import serve
from .launch import ChildProcess, Launched, LaunchRequest, NoChild, reap_exiting
from .proctree import descendants, stop_processes
from .warden import pipe_for_child

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


def start_from_template(request: LaunchRequest) -> Optional[Launched]:
    """Have the template of the request's start method fork its child; None to decline."""
    warmup = getattr(request.fn, "procthread_warmup", None) or {}
    out, err = request.captures
    job: dict[str, Any] = {
        "name": request.name, "start_method": request.start_method,
        "payload": request.payload, "stdout_path": out.path, "stderr_path": err.path,
        "timeout": request.timeout,
        "cwd": os.getcwd(), "environ": dict(os.environ), "sys_path": list(sys.path),
        "preload": list(warmup.get("preload", ())), "rewrite": warmup.get("rewrite", {}),
        "coverage": request.coverage,
    }
    if request.coverage is not None:  # imported once by the template, not by each child
        job["preload"].append("coverage")
    ctx: Any = multiprocessing.get_context(request.start_method)
    result_r, result_w = ctx.Pipe(duplex=False)
    done_r, done_w = os.pipe()  # the child says here when it is done, before its exit
    try:
        child: Optional[ChildProcess] = _launch(
            request.start_method, job, (result_w.fileno(), done_w), done_r, request.timeout)
    except _StartLost:
        # Started anew, the body could run twice: it is reported as lost instead. Its pid
        # is unknown; what it may have sent comes on the result pipe, which ends once the
        # child is gone, and it is gone soon: the retirement closed its lifeline.
        err.append(f"\nprocthread: {TEMPLATE_DIED}\n")
        os.close(done_r)
        child = NoChild(result_r, TEMPLATE_DIED)
    finally:
        result_w.close()
        os.close(done_w)
    if child is None:
        result_r.close()
        os.close(done_r)
        return None
    return Launched(child, result_r)


class _StartLost(Exception):
    """The template took the job and ended before it said whether it started the child."""


class TemplateChild:
    """A child forked by a template, as a ``launch.ChildProcess``. It says when it is done
    on its done pipe, just before it exits (as a fork child of the test process does); its
    end is reported by the template (``("ended", id, exitcode)``), whose pipe is its
    sentinel. Once it said it is done nobody waits for that report: the template reads the
    next job once the child is gone, and the answers to the next job come after it (the
    child is the template's, never the test process's)."""

    def __init__(self, template: _Template, job_id: int, pid: int, stderr_path: str,
                 done: int) -> None:
        self._template = template
        self._job_id = job_id
        self._stderr_path = stderr_path
        self.pid = pid
        self.sentinel = template.conn  # readable once the template reports the end
        self.done: Optional[int] = done
        self.exitcode: Optional[int] = None
        self.lost = ""
        self._ended = False  # the template reported the end, or is gone

    def _poll(self, timeout: float) -> None:
        if self._ended or self._template.conn is None:
            return
        try:
            if not self._template.conn.poll(max(0.0, timeout)):
                return
            message = self._template.conn.recv()
        except (EOFError, OSError):
            self._template_died()
            return
        if message[:2] == ("ended", self._job_id):
            self._ended = True
            if self.exitcode is None:
                self.exitcode = message[2]
            self._template.busy = False

    def _template_died(self) -> None:
        self._ended = True
        self._template.retire()
        if self.exitcode is not None:
            return  # it said it was done: its end is known
        try:
            import psutil

            stop_processes([psutil.Process(self.pid), *descendants(self.pid)], 2.0)
        except Exception:
            pass
        self.lost = TEMPLATE_DIED  # its exit status is lost with the template that knew it
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

    def note_done(self) -> bool:
        """Read the done pipe: True if the child said it is done (its exit code)."""
        if self.done is None:
            return False
        try:
            code: Optional[int] = int(os.read(self.done, 32))
        except (OSError, ValueError):  # EOF: it ended without saying so
            code = None
        os.close(self.done)
        self.done = None
        if code is None or self.exitcode is not None:
            return False
        self.exitcode = code
        self._ended = True  # its report is left for the template's next answers
        self._template.busy = False
        return True

    def close(self) -> None:
        if self.done is not None:
            os.close(self.done)
            self.done = None


class _Template:
    def __init__(self, method: str, preload: tuple[str, ...] = ()) -> None:
        ctx: Any = multiprocessing.get_context(method)
        self.method = method
        self.busy = False
        self._jobs = 0
        self.conn: Any
        self.conn, their_conn = ctx.Pipe(duplex=True)
        lifeline_r, self.lifeline_w = ctx.Pipe(duplex=False)
        for conn in (self.conn, self.lifeline_w):
            fdguard.keep_in_parent(conn.fileno())
        # The template enlists with the warden and marks its tree: its children's own
        # children are found by the mark once the test process is gone, however they left
        # the tree (the template kills only its child).
        warden_pipe = pipe_for_child()
        outside = None if warden_pipe is None else (FdRef(warden_pipe), tree_mark())
        self.process = ctx.Process(
            target=serve, args=(their_conn, lifeline_r, preload, outside),
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
        self, job: dict[str, Any], fds: tuple[int, int], done: int, timeout: float
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
            # The result pipe's write end and the done pipe's, in one message.
            with socket.socket(fileno=os.dup(self.conn.fileno())) as channel:
                reduction.sendfds(channel, list(fds))
        except (OSError, ValueError):  # without the result pipe it starts nothing
            self.retire()
            return None
        try:
            while True:  # answers to an earlier job (the end of one that said it was
                # done, or of one given up on) are skipped
                if not self.conn.poll(max(0.0, deadline - time.monotonic())):
                    raise TimeoutError(f"no answer from the template within {timeout:g} s")
                answer = self.conn.recv()
                if answer[1] == job_id:
                    break
        except (OSError, EOFError, TimeoutError, ValueError):
            # It may have forked the child already (a child may even kill it at once).
            self.retire()
            raise _StartLost from None
        if answer[0] == "started":
            return TemplateChild(self, job_id, answer[2], job["stderr_path"], done)
        self.busy = False
        if answer[0] == "tainted":
            _tainted_modules.update(answer[2])
            self.retire()
        return None

    def _close_pipes(self) -> None:
        for name in ("conn", "lifeline_w"):
            conn = getattr(self, name, None)
            if conn is not None:
                fdguard.release(conn.fileno())
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


def _launch(
    method: str, job: dict[str, Any], fds: tuple[int, int], done: int, timeout: float
) -> Optional[TemplateChild]:
    """Have the template of ``method`` fork a child for ``job``; None to start it cold."""
    reap_exiting()  # fork children of an earlier test are gone before this one starts
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
            template = _started(method, ())
            if template is None:
                return None
        template.busy = True
    return template.launch(job, fds, done, timeout)


def _started(method: str, preload: tuple[str, ...]) -> Optional[_Template]:
    """A new template of ``method``, registered (under ``_lock``); None if it cannot start."""
    global _atexit_registered
    try:
        template = _templates[method] = _Template(method, preload)
    except Exception:
        return None
    if not _atexit_registered:
        atexit.register(stop_all)  # runs before multiprocessing's own exit join
        _atexit_registered = True
    return template


def start_soon(method: str, preload: tuple[str, ...]) -> None:
    """Start the template of ``method`` now, importing ``preload`` as it starts, where
    every test of the session will be forked from it: an interpreter's start-up and
    pytest's import then overlap with collection instead of delaying the first test."""
    if method == "fork" or not available():
        return
    with _lock:
        if method not in _templates:
            _started(method, preload)


def stop_all() -> None:
    """Stop every template of this process (end of session, or exit)."""
    with _lock:
        templates = list(_templates.values())
    for template in templates:
        template.retire()
