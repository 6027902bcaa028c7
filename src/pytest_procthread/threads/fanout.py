"""The fan-out: one test body in n threads at once, k iterations each.

Owns the threads of a fan-out and nothing else: their start, the barrier before each
iteration, the per-thread arguments (``thread_index``, ``iteration_index``, a fresh
``tmp_path``/``tmpdir``), the lowered switch interval while they run, the bounded join,
and the threads still running after it (kept in a list that later tests are checked
against, see ``threads.plugin``). What the failures become is ``threads.failures``.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any, Callable, Optional

import pytest

from ..thread import thread_stack
from .failures import Failure, raise_failures
from .plan import FanOut
from .strays import Stray, record

THREAD_INDEX = "thread_index"
ITERATION_INDEX = "iteration_index"
# pytest's fixtures of a directory for the test; each thread and iteration gets its own.
_DIRECTORIES = ("tmp_path", "tmpdir")



class _FanThread(threading.Thread):
    """A thread of a fan-out, which knows its place. Kept on the thread object rather than
    in a ``threading.local``: on a free-threaded build a fresh thread's first write to a
    thread-local costs about a tenth of the whole fan-out (measured, benchmarks/README)."""

    index = 0
    iteration = 0


def current_thread_index() -> int:
    """The index of this thread in a ``threads`` fan-out (0 to n-1); 0 elsewhere."""
    thread = threading.current_thread()
    return thread.index if isinstance(thread, _FanThread) else 0


def current_iteration_index() -> int:
    """The iteration this thread runs in a ``threads(n, iterations=k)`` fan-out; else 0."""
    thread = threading.current_thread()
    return thread.iteration if isinstance(thread, _FanThread) else 0


def _arguments(kwargs: dict[str, Any], thread: int, iteration: int) -> dict[str, Any]:
    call = dict(kwargs)
    if THREAD_INDEX in call:
        call[THREAD_INDEX] = thread
    if ITERATION_INDEX in call:
        call[ITERATION_INDEX] = iteration
    own = ""
    for name in _DIRECTORIES:
        base = call.get(name)
        if base is not None:
            # One new empty directory inside the test's, for tmp_path and tmpdir alike (as
            # pytest's are one), given as the type the fixture gives: made with os, so
            # that pathlib.Path and py.path.local are served the same way.
            if not own:
                own = os.path.join(str(base), f"thread{thread}-iteration{iteration}")
                os.makedirs(own)
            call[name] = type(base)(own)
    return call


class _Switching:
    """Lowers the interpreter's switch interval while the threads run, so that a GIL build
    switches threads often enough for races to show; restored afterwards."""

    def __init__(self, seconds: Optional[float]) -> None:
        self.seconds = seconds
        self.before = sys.getswitchinterval()

    def __enter__(self) -> None:
        seconds = self.seconds
        while seconds is not None:
            try:
                sys.setswitchinterval(seconds)
                return
            except ValueError:  # below what this platform allows: the next decade
                seconds = seconds * 10 if seconds < 0.001 else None

    def __exit__(self, *exc: object) -> None:
        sys.setswitchinterval(self.before)


def fan_out(fn: Callable[..., Any], kwargs: dict[str, Any], plan: FanOut) -> Any:
    """Call ``fn(**kwargs)`` in ``plan.threads`` threads, ``plan.iterations`` times each,
    all threads released together by a barrier before each iteration; return the first
    non-None result, or raise what failed (see ``failures.raise_failures``) once every
    thread has ended or the bound has passed.

    A thread that fails goes on with its next iterations (every failure is reported); one
    that skips, xfails or exits stops calling the body but still meets the others at the
    barriers, so that no thread waits for it in vain. Every wait ends at
    ``plan.timeout`` seconds after the start.
    """
    __tracebackhide__ = True
    run = _Run(fn, kwargs, plan)
    threads = [
        _FanThread(target=run.worker, args=(i,), daemon=True,
                   name=f"procthread:{plan.label}[thread {i}]")
        for i in range(plan.threads)
    ]
    started: list[_FanThread] = []
    with _Switching(plan.switch_interval):
        try:
            for thread in threads:
                thread.start()
                started.append(thread)
        finally:
            if len(started) < plan.threads:
                run.barrier.abort()  # release the ones that did start
            for thread in started:
                thread.join(max(0.0, run.deadline - time.monotonic()))
    for index, thread in enumerate(started):
        if thread.is_alive():
            record(Stray(plan.label, index, plan.threads, thread))
            run.failures.append(_still_running(index, plan, thread))
    raise_failures(run.failures, plan)
    return next((value for value in run.results if value is not None), None)


class _Run:
    """What the threads of one fan-out share: the barrier, the deadline, the results."""

    def __init__(self, fn: Callable[..., Any], kwargs: dict[str, Any], plan: FanOut) -> None:
        self.fn, self.kwargs, self.plan = fn, kwargs, plan
        self.deadline = time.monotonic() + plan.timeout
        self.barrier = threading.Barrier(plan.threads)
        self.results: list[Any] = [None] * plan.threads
        self.failures: list[Failure] = []
        self.lock = threading.Lock()

    def worker(self, index: int) -> None:
        me = threading.current_thread()
        assert isinstance(me, _FanThread)
        me.index = index
        stopped = False
        for iteration in range(self.plan.iterations):
            me.iteration = iteration
            try:
                call = _arguments(self.kwargs, index, iteration)
                self.barrier.wait(max(0.0, self.deadline - time.monotonic()))
            except threading.BrokenBarrierError:
                return  # another thread is stuck or could not start: reported as such
            except BaseException as exc:
                self._failed(Failure(index, iteration, exc))
                self.barrier.abort()
                return
            if stopped:
                continue
            try:
                value = self.fn(**call)
                if value is not None and self.results[index] is None:
                    self.results[index] = value
            except BaseException as exc:
                failure = Failure(index, iteration, exc)
                self._failed(failure)
                stopped = failure.is_verdict

    def _failed(self, failure: Failure) -> None:
        with self.lock:
            self.failures.append(failure)


def _still_running(index: int, plan: FanOut, thread: threading.Thread) -> Failure:
    # A failure without a traceback of ours: the stack that matters is the thread's.
    return Failure(index, -1, pytest.fail.Exception(
        f"thread {index} of {plan.threads} is still running {plan.timeout:g} s after the "
        f"threads started (a thread cannot be killed; it keeps running, and the next test "
        f"will not start beside it). Its stack now:\n{thread_stack(thread.ident)}",
        pytrace=False,
    ))


__all__ = ["FanOut", "current_iteration_index", "current_thread_index", "fan_out"]
