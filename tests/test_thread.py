"""The ``sibling_thread`` fixture: handles, outcomes, timeouts and what teardown reports."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import pytest

from pytest_procthread import Outcome, ProcThreadError, ThreadRunner
from pytest_procthread.thread import ThreadHandle, thread_stack

# Inner runs: no cache files, and no hypothesis plugin, whose start-up costs ~0.7 s a run.
QUIET = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest")

# Every wait in these tests is bounded by this; none of them is expected to take long.
WAIT = 10.0


def add(a: int, b: int = 0, *, scale: int = 1) -> int:
    return (a + b) * scale


def where_am_i() -> tuple[int, int, int]:
    return os.getpid(), threading.get_ident(), threading.get_native_id()


def boom(message: str) -> None:
    raise ValueError(message)


def held_here(release: threading.Event, entered: threading.Event, value: str) -> str:
    entered.set()
    if not release.wait(WAIT):
        raise AssertionError("never released")
    return value


# -- start / join / run ------------------------------------------------------------------


def test_start_returns_handle_and_join_gives_outcome(sibling_thread: ThreadRunner) -> None:
    handle = sibling_thread.start(where_am_i)
    assert isinstance(handle, ThreadHandle)
    assert handle.wait(WAIT) is True
    outcome = handle.join(WAIT)
    assert isinstance(outcome, Outcome)
    pid, ident, native_id = outcome.value
    assert outcome.kind == "thread"
    assert outcome.returned is True
    assert outcome.exception is None
    assert outcome.traceback == ""
    assert outcome.timed_out is False
    assert outcome.crashed is False
    assert outcome.ok is True
    assert pid == os.getpid() == outcome.pid
    assert ident == handle.ident == outcome.ident
    assert ident != threading.get_ident()
    assert native_id == handle.native_id == outcome.native_id
    assert 0.0 <= outcome.duration < WAIT
    assert handle.name.startswith("procthread:where_am_i#")
    assert outcome.name == handle.name
    assert not handle.is_alive()
    # Joining again gives the very same outcome.
    assert handle.join(WAIT) is outcome


def test_start_passes_positional_and_keyword_arguments(sibling_thread: ThreadRunner) -> None:
    outcome = sibling_thread.start(add, 2, 3, scale=10).join(WAIT)
    assert outcome.value == 50
    assert outcome.unwrap() == 50


def test_run_waits_for_the_outcome(sibling_thread: ThreadRunner) -> None:
    outcome = sibling_thread.run(add, 1, b=2)
    assert outcome.returned and outcome.value == 3
    assert "returned 3" in outcome.describe()


def test_outcome_of_a_raising_thread(sibling_thread: ThreadRunner) -> None:
    outcome = sibling_thread.start(boom, "thread-boom-1").join(WAIT)
    assert outcome.returned is False
    assert outcome.value is None
    assert isinstance(outcome.exception, ValueError)
    assert str(outcome.exception) == "thread-boom-1"
    # The traceback text is the thread's own, down to the raising function.
    assert "Traceback (most recent call last)" in outcome.traceback
    assert "in boom" in outcome.traceback
    assert "ValueError: thread-boom-1" in outcome.traceback
    assert outcome.raised and not outcome.ok
    with pytest.raises(ValueError, match="thread-boom-1") as info:
        outcome.unwrap()
    assert info.value is outcome.exception
    assert "raised ValueError: thread-boom-1" in outcome.describe()


def test_base_exceptions_are_caught_too(sibling_thread: ThreadRunner) -> None:
    def leave() -> None:
        raise SystemExit(3)

    outcome = sibling_thread.run(leave)
    assert isinstance(outcome.exception, SystemExit)
    assert outcome.exception.code == 3


def test_is_alive_and_wait_while_held(sibling_thread: ThreadRunner) -> None:
    release, entered = threading.Event(), threading.Event()
    handle = sibling_thread.start(held_here, release, entered, "v")
    try:
        assert entered.wait(WAIT)
        assert handle.is_alive()
        assert handle.wait(0.01) is False
        assert "alive" in repr(handle)
    finally:
        release.set()
    assert handle.wait(WAIT) is True
    assert handle.join(WAIT).value == "v"
    assert "finished" in repr(handle)


def test_join_on_running_thread_times_out_with_its_stack(sibling_thread: ThreadRunner) -> None:
    release, entered = threading.Event(), threading.Event()
    handle = sibling_thread.start(held_here, release, entered, "late value")
    try:
        assert entered.wait(WAIT)
        started = time.monotonic()
        early = handle.join(timeout=0.2)
        assert time.monotonic() - started < WAIT / 2
        assert early.timed_out is True
        assert early.returned is False
        assert early.value is None
        assert early.timeout == pytest.approx(0.2)
        assert early.kind == "thread"
        assert early.ident == handle.ident
        assert early.native_id == handle.native_id
        assert early.pid == os.getpid()
        # Where the thread is right now: inside held_here, waiting on the Event.
        assert "still running" in early.traceback
        assert "in held_here" in early.traceback
        assert "release.wait" in early.traceback
        assert "still running after 0.2 s" in early.describe()
        assert early.ok is False
        assert handle.is_alive()
    finally:
        release.set()
    late = handle.join(WAIT)
    assert late is not early
    assert late.timed_out is False
    assert late.value == "late value"


def test_duration_of_a_join_that_times_out_before_the_thread_ran(
    sibling_thread: ThreadRunner,
) -> None:
    # Hold the new thread between its start and the first line of the handle's code, with
    # a trace function (the only hook there is); the duration still counts from start().
    gate = threading.Event()

    def tracer(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code.co_name == "_run":
            gate.wait(WAIT)

    previous = getattr(threading, "gettrace", lambda: None)()
    threading.settrace(tracer)
    try:
        handle = sibling_thread.start(add, 1)
    finally:
        threading.settrace(previous)  # type: ignore[arg-type]
    try:
        early = handle.join(timeout=0.05)
        assert early.timed_out
        assert 0.04 <= early.duration < WAIT
    finally:
        gate.set()
    assert handle.join(WAIT).value == 1


def test_timed_out_outcome_unwraps_to_child_timeout_error(sibling_thread: ThreadRunner) -> None:
    from pytest_procthread import ChildTimeoutError

    release, entered = threading.Event(), threading.Event()
    handle = sibling_thread.start(held_here, release, entered, "x")
    try:
        assert entered.wait(WAIT)
        with pytest.raises(ChildTimeoutError, match="still running"):
            handle.join(timeout=0.05).unwrap()
    finally:
        release.set()
    assert handle.join(WAIT).unwrap() == "x"


@pytest.mark.parametrize("not_callable", [None, 42, "add", add(1, 2)])
def test_non_callable_is_a_type_error(sibling_thread: ThreadRunner, not_callable: object) -> None:
    with pytest.raises(TypeError, match="needs a callable"):
        sibling_thread.start(not_callable)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not its result"):
        sibling_thread.run(not_callable)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), "soon"])
def test_bad_timeouts_are_refused(sibling_thread: ThreadRunner, bad: object) -> None:
    handle = sibling_thread.start(add, 1)
    with pytest.raises(ValueError, match="invalid timeout in join"):
        handle.join(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="invalid timeout in wait"):
        handle.wait(bad)  # type: ignore[arg-type]
    assert handle.join(WAIT).value == 1


def test_runner_used_directly_and_closed() -> None:
    runner = ThreadRunner(timeout=WAIT)
    assert runner.timeout == WAIT
    assert runner.run(sum, [1, 2, 3]).value == 6
    runner.close()
    runner.close()  # closing twice is harmless
    with pytest.raises(ProcThreadError, match="closed"):
        runner.start(add, 1)


def test_close_raises_for_an_unobserved_exception_directly() -> None:
    from pytest_procthread import ThreadProblem

    runner = ThreadRunner(timeout=WAIT)
    runner.start(boom, "direct-unobserved")
    with pytest.raises(ThreadProblem, match="ValueError: direct-unobserved") as info:
        runner.close()
    assert isinstance(info.value.__cause__, ValueError)


def test_thread_stack_of_an_unknown_thread() -> None:
    assert "no Python frame" in thread_stack(None)
    assert "in test_thread_stack_of_an_unknown_thread" in thread_stack(threading.get_ident())


# -- teardown ----------------------------------------------------------------------------

TEARDOWN_TESTS = """
import threading

def raise_value_error():
    raise ValueError("only-one-problem")

def raise_key_error():
    raise KeyError("first-of-several")

def raise_zero_division():
    1 / 0

def raise_custom():
    class SecondOfSeveralError(Exception):
        pass
    raise SecondOfSeveralError("second-of-several")

def test_one_unobserved(sibling_thread):
    sibling_thread.start(raise_value_error)

def test_one_unobserved_joined_but_not_looked_at(sibling_thread):
    outcome = sibling_thread.start(raise_value_error).join(10)
    assert outcome.returned is False  # reading returned/value does not count as looking

def test_several_unobserved(sibling_thread):
    sibling_thread.start(raise_key_error)
    sibling_thread.start(raise_zero_division)
    sibling_thread.start(raise_custom)
    sibling_thread.start(lambda: "fine")

def test_observed_through_exception(sibling_thread):
    outcome = sibling_thread.start(raise_value_error).join(10)
    assert isinstance(outcome.exception, ValueError)

def test_observed_through_unwrap(sibling_thread):
    outcome = sibling_thread.run(raise_value_error)
    try:
        outcome.unwrap()
    except ValueError:
        pass
    else:
        raise AssertionError("unwrap did not raise")

def test_observed_through_raised(sibling_thread):
    assert sibling_thread.run(raise_key_error).raised

def test_clean(sibling_thread):
    assert sibling_thread.run(lambda: 5).value == 5

def test_timeout_follows_the_option(sibling_thread):
    assert sibling_thread.timeout == 7.5
"""


@pytest.fixture
def teardown_run(pytester: pytest.Pytester) -> pytest.RunResult:
    pytester.makepyfile(test_inner=TEARDOWN_TESTS)
    return pytester.runpytest(*QUIET, "--procthread-timeout=7.5")


def _report(result: pytest.RunResult, when: str, name: str) -> pytest.TestReport:
    reports = [
        r for r in result.reprec.getreports("pytest_runtest_logreport")  # type: ignore[attr-defined]
        if r.when == when and r.nodeid.endswith("::" + name)
    ]
    assert len(reports) == 1, (name, when, reports)
    return reports[0]


def test_teardown_reports_what_threads_left(teardown_run: pytest.RunResult) -> None:
    result = teardown_run
    result.assert_outcomes(passed=8, errors=3)

    one = _report(result, "teardown", "test_one_unobserved")
    assert one.failed
    text = one.longreprtext
    assert "ThreadProblem" in text
    assert "ValueError: only-one-problem" in text
    assert "never looked at it" in text
    assert "raise_value_error" in text  # the cause's traceback is shown as well

    joined = _report(result, "teardown", "test_one_unobserved_joined_but_not_looked_at")
    assert joined.failed
    assert "ValueError: only-one-problem" in joined.longreprtext

    several = _report(result, "teardown", "test_several_unobserved")
    assert several.failed
    text = several.longreprtext
    assert "ExceptionGroup" in text
    assert "3 problems in threads started by the test" in text
    for needle in ("KeyError: 'first-of-several'", "ZeroDivisionError: division by zero",
                   "SecondOfSeveralError: second-of-several"):
        assert needle in text
    assert "<lambda>" not in text  # the thread that returned is no problem
    output = result.stdout.str()
    for needle in ("only-one-problem", "first-of-several", "ZeroDivisionError",
                   "SecondOfSeveralError: second-of-several"):
        assert needle in output

    for name in ("test_observed_through_exception", "test_observed_through_unwrap",
                 "test_observed_through_raised", "test_clean",
                 "test_timeout_follows_the_option"):
        assert _report(result, "call", name).passed, name
        assert _report(result, "teardown", name).passed, name


def test_thread_still_running_after_timeout_errors_at_teardown(
    pytester: pytest.Pytester,
) -> None:
    # The inner thread is stuck for at most 4 s, then ends by itself: nothing can hang.
    pytester.makepyfile(
        test_stuck="""
        import threading

        def stuck_in_here(entered):
            entered.set()
            threading.Event().wait(4)

        def test_stuck(sibling_thread):
            entered = threading.Event()
            sibling_thread.start(stuck_in_here, entered)
            assert entered.wait(10)
        """
    )
    started = time.monotonic()
    result = pytester.runpytest_subprocess(
        "--procthread-timeout=1", *QUIET, timeout=60
    )
    assert time.monotonic() - started < 30
    result.assert_outcomes(passed=1, errors=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([
        "*ERROR at teardown of test_stuck*",
        "*ThreadProblem: thread procthread:stuck_in_here#1 (native id *) is still running "
        "1 s after the test ended*",
    ])
    output = result.stdout.str()
    assert "Its stack now:" in output
    assert "in stuck_in_here" in output
