"""Thread fan-out: a test body in n threads at once (the ``threads(n)`` marker, see
``markers.threads``).

The n threads are started together and wait at one barrier, so that their bodies really
overlap; every join is bounded; every thread's failure is reported, all of them together
in one exception group, each with its own traceback and the index of its thread.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, Callable

from .errors import ThreadProblem
from .thread import thread_stack

INDEX_FIXTURE = "thread_index"

if sys.version_info >= (3, 11):
    _BaseExceptionGroup = BaseExceptionGroup  # noqa: F821
else:
    from exceptiongroup import BaseExceptionGroup as _BaseExceptionGroup

_local = threading.local()


def current_thread_index() -> int:
    """The index of this thread in a ``threads(n)`` fan-out (0 to n-1); 0 elsewhere.

    The ``thread_index`` fixture gives a test the same number; this function gives it to
    the helpers the test calls.
    """
    return int(getattr(_local, "index", 0))


def fan_out(
    fn: Callable[..., Any], kwargs: dict[str, Any], n: int, timeout: float
) -> Any:
    """Call ``fn(**kwargs)`` in ``n`` threads released together; return the first non-None
    result, or raise every failure at once (an exception group) once all have ended.

    A ``thread_index`` keyword argument is replaced, in each thread, by that thread's index.
    Each join waits at most until ``timeout`` seconds after the start.
    """
    __tracebackhide__ = True
    barrier = threading.Barrier(n, timeout=timeout)
    results: list[Any] = [None] * n
    errors: dict[int, BaseException] = {}

    def worker(index: int) -> None:
        _local.index = index
        try:
            call_kwargs = dict(kwargs)
            if INDEX_FIXTURE in call_kwargs:
                call_kwargs[INDEX_FIXTURE] = index
            barrier.wait()
            results[index] = fn(**call_kwargs)
        except BaseException as exc:
            errors[index] = exc

    name = getattr(fn, "__name__", "test")
    threads = [
        threading.Thread(target=worker, args=(i,), name=f"procthread:{name}[thread {i}]",
                         daemon=True)
        for i in range(n)
    ]
    deadline = time.monotonic() + timeout
    started: list[threading.Thread] = []
    try:
        for thread in threads:
            thread.start()
            started.append(thread)
    finally:
        if len(started) < n:
            barrier.abort()  # release the ones that did start
        for thread in started:
            thread.join(max(0.0, deadline - time.monotonic()))
    problems: list[tuple[int, BaseException]] = []
    for index, thread in enumerate(threads):
        if thread in started and thread.is_alive():
            problems.append((index, ThreadProblem(
                f"thread {index} of {n} is still running {timeout:g} s after the threads "
                f"started (a thread cannot be killed; it keeps running). Its stack now:\n"
                f"{thread_stack(thread.ident)}"
            )))
        elif index in errors:
            problems.append((index, errors[index]))
    _raise_problems(problems, n, name)
    return next((value for value in results if value is not None), None)


def _is_verdict(exc: BaseException) -> bool:
    """What pytest.skip, pytest.xfail and pytest.exit raise: a verdict, not a failure."""
    import pytest

    return isinstance(exc, (pytest.skip.Exception, pytest.xfail.Exception, pytest.exit.Exception))


def _raise_problems(problems: list[tuple[int, BaseException]], n: int, name: str) -> None:
    # Not hidden from tracebacks: pytest notes "all entries are hidden" when none is left.
    if not problems:
        return
    failures = [(i, e) for i, e in problems if not _is_verdict(e)]
    if not failures:
        # Every problem is a skip, xfail or exit: the test's verdict, as without threads.
        raise problems[0][1]
    for index, exc in failures:
        note = f"(in thread {index} of {n})"
        if hasattr(exc, "add_note"):
            exc.add_note(note)
        else:
            exc.__notes__ = [*getattr(exc, "__notes__", []), note]  # type: ignore[attr-defined]
    which = ", ".join(str(i) for i, _ in failures)
    raise _BaseExceptionGroup(
        f"{len(failures)} of {n} threads running {name} failed (thread {which})",
        [exc for _, exc in failures],
    )


__all__ = ["current_thread_index", "fan_out"]
