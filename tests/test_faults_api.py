"""``pytest_procthread.faults``: each fault ends an isolated child the same way every time."""

from __future__ import annotations

import inspect
import multiprocessing
import signal
import sys
import threading
from typing import Any

import pytest

from pytest_procthread import faults
from pytest_procthread.outcome import Outcome

START_METHODS = [m for m in ("fork", "forkserver", "spawn")
                 if m in multiprocessing.get_all_start_methods()]
WAIT = 20.0

every_start_method = pytest.mark.parametrize("method", START_METHODS)
fork_and_spawn = pytest.mark.parametrize(
    "method", [m for m in ("fork", "spawn") if m in START_METHODS]
)


def run(isolated_process: Any, method: str, fn: Any, *args: Any, **kwargs: Any) -> Outcome:
    outcome: Outcome = isolated_process.options(start_method=method).start(
        fn, *args, **kwargs
    ).join(WAIT)
    assert not outcome.timed_out, outcome.describe()
    assert outcome.start_method == method
    return outcome


def _line_of(fn: Any, needle: str) -> int:
    lines, first = inspect.getsourcelines(fn)
    for offset, line in enumerate(lines):
        if needle in line and not line.lstrip().startswith(("#", '"', "``")):
            return first + offset
    raise AssertionError(f"{needle!r} not in {fn.__name__}")


def assert_crashed(outcome: Outcome, sig: signal.Signals) -> None:
    assert outcome.crashed is True, outcome.describe()
    assert outcome.returned is False
    assert outcome.exception is None
    assert outcome.killed is False
    assert outcome.exitcode == -sig
    assert outcome.signal == sig
    assert f"killed by {sig.name}" in outcome.describe()


@every_start_method
def test_segfault_is_a_real_fault(isolated_process: Any, method: str) -> None:
    outcome = run(isolated_process, method, faults.segfault)
    assert_crashed(outcome, signal.SIGSEGV)
    # faulthandler saw the fault at the NULL write itself, not in the kill_self fallback.
    assert "Fatal Python error: Segmentation fault" in outcome.stderr
    if sys.implementation.name == "pypy":  # PyPy's crash stacks give approximate lines
        assert "in segfault" in outcome.stderr, outcome.stderr
    else:
        memset_line = _line_of(faults.segfault, "ctypes.memset(0, 0, 1)")
        assert f'faults.py", line {memset_line} in segfault' in outcome.stderr, outcome.stderr
    assert "in kill_self" not in outcome.stderr


@every_start_method
def test_abort(isolated_process: Any, method: str) -> None:
    outcome = run(isolated_process, method, faults.abort)
    assert_crashed(outcome, signal.SIGABRT)
    assert "Fatal Python error: Aborted" in outcome.stderr


@every_start_method
def test_fatal_error_aborts_with_its_message(isolated_process: Any, method: str) -> None:
    outcome = run(isolated_process, method, faults.fatal_error, "procthread-test-fatal-7f3a")
    assert_crashed(outcome, signal.SIGABRT)
    assert "Fatal Python error" in outcome.stderr
    assert "procthread-test-fatal-7f3a" in outcome.stderr


@every_start_method
def test_hard_exit(isolated_process: Any, method: str) -> None:
    outcome = run(isolated_process, method, faults.hard_exit, 7)
    assert outcome.exitcode == 7
    assert outcome.crashed is True
    assert outcome.signal is None
    assert outcome.returned is False and outcome.exception is None
    assert "exited with status 7" in outcome.describe()


@every_start_method
def test_kill_self(isolated_process: Any, method: str) -> None:
    outcome = run(isolated_process, method, faults.kill_self, signal.SIGKILL)
    assert_crashed(outcome, signal.SIGKILL)
    # Killed from outside, as far as the process can tell: no crash report of its own.
    assert "Fatal Python error" not in outcome.stderr


@every_start_method
def test_kill_self_with_a_catchable_signal(isolated_process: Any, method: str) -> None:
    outcome = run(isolated_process, method, faults.kill_self, signal.SIGTERM)
    assert_crashed(outcome, signal.SIGTERM)


def say_then_hang(end: Any) -> None:
    end.send("hanging")
    faults.hang()


@fork_and_spawn
def test_hang_times_out(isolated_process: Any, ipc_pipe: Any, method: str) -> None:
    handle = isolated_process.options(start_method=method).start(say_then_hang, ipc_pipe.child)
    # Time out only once it is in hang() (a spawned child may take long to start).
    assert ipc_pipe.parent.recv(timeout=WAIT) == "hanging"
    outcome = handle.join(timeout=1)
    assert outcome.timed_out is True
    assert outcome.crashed is False
    assert outcome.returned is False
    assert outcome.timeout == 1
    # Its stacks were dumped before it was stopped: the dump shows it waiting in hang().
    assert "in hang" in outcome.stderr, outcome.stderr
    assert "timed out after 1 s" in outcome.describe()


def thread_fault_then_carry_on(exc: BaseException | None = None) -> tuple[str, bool, str]:
    worker = faults.unhandled_exception_in_thread(exc)
    return "carried on", worker.is_alive(), worker.name


@every_start_method
def test_unhandled_exception_in_thread_leaves_the_process_running(
    isolated_process: Any, method: str
) -> None:
    outcome = run(isolated_process, method, thread_fault_then_carry_on)
    assert outcome.returned is True, outcome.describe()
    assert outcome.value == ("carried on", False, "procthread-faulty")
    assert outcome.exitcode == 0
    assert outcome.crashed is False
    assert "Exception in thread procthread-faulty" in outcome.stderr
    assert "RuntimeError: procthread: deliberate error in a thread" in outcome.stderr


@fork_and_spawn
def test_unhandled_exception_in_thread_raises_what_it_is_given(
    isolated_process: Any, method: str
) -> None:
    outcome = run(isolated_process, method, thread_fault_then_carry_on, KeyError("given-key"))
    assert outcome.returned is True
    assert "KeyError: 'given-key'" in outcome.stderr


def test_unhandled_exception_in_thread_in_this_process() -> None:
    # Harmless here too: the thread dies, this process does not. The hook is swapped for
    # the call, so the exception is checked here instead of reaching pytest's own hook.
    seen: list[threading.ExceptHookArgs] = []
    original = threading.excepthook
    threading.excepthook = seen.append
    try:
        worker = faults.unhandled_exception_in_thread(ValueError("in-process"))
    finally:
        threading.excepthook = original
    assert not worker.is_alive()
    assert len(seen) == 1
    assert isinstance(seen[0].exc_value, ValueError)
    assert str(seen[0].exc_value) == "in-process"


def core_limit_after_suppressing() -> tuple[int, int]:
    import resource

    faults.suppress_crash_reports()
    return resource.getrlimit(resource.RLIMIT_CORE)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX only")
def test_suppress_crash_reports_turns_off_core_files(isolated_process: Any) -> None:
    outcome = run(isolated_process, START_METHODS[0], core_limit_after_suppressing)
    assert outcome.value == (0, 0)


def test_faults_are_exported() -> None:
    for name in faults.__all__:
        assert callable(getattr(faults, name)), name
