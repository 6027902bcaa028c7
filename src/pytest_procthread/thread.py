"""Run a callable in another thread of this process and bring back an Outcome."""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
from typing import Any, Callable, Optional

from .errors import ProcThreadError, ThreadProblem
from .outcome import Outcome
from .settings import resolve, validate_timeout

if sys.version_info >= (3, 11):
    _ExceptionGroup = ExceptionGroup  # noqa: F821
else:
    from exceptiongroup import ExceptionGroup as _ExceptionGroup


def thread_stack(ident: Optional[int]) -> str:
    """The current Python stack of a running thread, most recent call last."""
    frame = sys._current_frames().get(ident) if ident is not None else None
    if frame is None:
        return "(no Python frame: the thread has ended or runs outside Python)\n"
    return "".join(traceback.format_stack(frame))


class ThreadHandle:
    """A thread started by :meth:`ThreadRunner.start`."""

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                 timeout: float, name: str) -> None:
        self._fn, self._args, self._kwargs = fn, args, kwargs
        self.timeout = timeout
        self.name = name
        self._done = threading.Event()
        self._outcome: Optional[Outcome] = None
        self._returned = False
        self._value: Any = None
        self._exception: Optional[BaseException] = None
        self._started = 0.0
        self._finished = 0.0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        try:
            self._value = self._fn(*self._args, **self._kwargs)
            self._returned = True
        except BaseException as exc:
            self._exception = exc
        finally:
            self._finished = time.monotonic()
            # Drop references held by the callable's arguments as soon as it is done.
            self._fn, self._args, self._kwargs = None, (), {}  # type: ignore[assignment]
            self._done.set()

    def _launch(self) -> None:
        # Set here, not in the thread: a join that times out before the new thread has run
        # its first line would otherwise measure the duration from 0.0 (the boot of the OS).
        self._started = time.monotonic()
        self._thread.start()

    @property
    def ident(self) -> Optional[int]:
        return self._thread.ident

    @property
    def native_id(self) -> Optional[int]:
        return getattr(self._thread, "native_id", None)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Wait up to ``timeout`` seconds for the thread to finish. True if it did."""
        seconds = self.timeout if timeout is None else validate_timeout(timeout, "wait()")
        return self._done.wait(seconds)

    def join(self, timeout: Optional[float] = None) -> Outcome:
        """Wait at most ``timeout`` seconds (default: the runner's). A thread cannot be
        killed: if it is still running, the outcome says ``timed_out`` and its
        ``traceback`` holds where the thread is now; join again later to get the result."""
        if self._outcome is not None:
            return self._outcome
        seconds = self.timeout if timeout is None else validate_timeout(timeout, "join()")
        if not self._done.wait(seconds):
            return Outcome(
                kind="thread", name=self.name, timed_out=True, timeout=seconds,
                traceback="Thread still running; its stack now:\n" + thread_stack(self.ident),
                duration=time.monotonic() - self._started, pid=os.getpid(),
                ident=self.ident, native_id=self.native_id,
            )
        self._thread.join(seconds)  # already finished; reaps the OS thread
        exc = self._exception
        self._outcome = Outcome(
            kind="thread", name=self.name, returned=self._returned, value=self._value,
            exception=exc,
            traceback="".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            if exc is not None else "",
            duration=self._finished - self._started, pid=os.getpid(),
            ident=self.ident, native_id=self.native_id,
        )
        return self._outcome

    def __repr__(self) -> str:
        state = "alive" if self.is_alive() else "finished"
        return f"<ThreadHandle {self.name!r} ident={self.ident} {state}>"


class ThreadRunner:
    """Starts sibling threads; :meth:`close` reports what they left unsaid.

    >>> runner = ThreadRunner(timeout=5)
    >>> runner.run(sum, [1, 2, 3]).value
    6
    >>> runner.close()
    """

    def __init__(self, timeout: Optional[float] = None, *, config: Any = None,
                 marker: Any = None) -> None:
        self.timeout = resolve(config, timeout=timeout, marker=marker,
                               where_call="sibling_thread").timeout
        self._handles: list[ThreadHandle] = []
        self._closed = False
        self._count = 0

    def start(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> ThreadHandle:
        """Start ``fn(*args, **kwargs)`` in a new daemon thread and return at once."""
        if self._closed:
            raise ProcThreadError("this sibling_thread runner is closed (its test has ended)")
        if not callable(fn):
            raise TypeError(
                f"sibling_thread.start() needs a callable first, got {fn!r} "
                f"({type(fn).__name__}); pass the function itself, not its result"
            )
        self._count += 1
        name = f"procthread:{getattr(fn, '__qualname__', type(fn).__name__)}#{self._count}"
        handle = ThreadHandle(fn, args, kwargs, self.timeout, name)
        self._handles.append(handle)
        handle._launch()
        return handle

    def run(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Outcome:
        """Run ``fn(*args, **kwargs)`` in a new thread and wait for its outcome."""
        return self.start(fn, *args, **kwargs).join()

    def close(self, grace: Optional[float] = None) -> None:
        """Wait for running threads (bounded); raise if any raised unobserved or still runs.

        Several problems come together as one exception group.
        """
        if self._closed:
            return
        self._closed = True
        seconds = self.timeout if grace is None else grace
        deadline = time.monotonic() + seconds
        problems: list[BaseException] = []
        for handle in self._handles:
            handle.wait(max(0.0, deadline - time.monotonic()) or 0.001)
            if handle.is_alive() and not handle._done.is_set():
                problems.append(ThreadProblem(
                    f"thread {handle.name} (native id {handle.native_id}) is still running "
                    f"{seconds:g} s after the test ended; threads cannot be killed, so it "
                    f"keeps running. Its stack now:\n{thread_stack(handle.ident)}"
                ))
                continue
            outcome = handle.join(0.001)
            if not outcome.observed:
                exc = handle._exception
                assert exc is not None
                problem = ThreadProblem(
                    f"thread {handle.name} raised {type(exc).__name__}: {exc}, and the test "
                    f"never looked at it (check outcome.exception, or call outcome.unwrap())"
                )
                problem.__cause__ = exc
                problems.append(problem)
        self._handles.clear()
        if len(problems) == 1:
            raise problems[0]
        if problems:
            raise _ExceptionGroup(
                f"{len(problems)} problems in threads started by the test", problems
            )
