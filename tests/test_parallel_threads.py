"""The ``threads(n)`` marker and the ``thread_index`` fixture."""

from __future__ import annotations

import threading

import pytest

from pytest_procthread.parallel import FanOut, current_thread_index, fan_out

pytestmark = pytest.mark.timeout(120)

ARGS = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "--procthread-check-leaks")

INNER = '''
import threading
import pytest
from pytest_procthread.parallel import current_thread_index

SEEN = []
TOGETHER = threading.Barrier(4, timeout=20)


def helper():
    return current_thread_index()


@pytest.fixture
def release():
    gate = threading.Event()
    yield gate
    gate.set()  # lets the stuck thread of test_stuck_thread end, so nothing is left


@pytest.mark.threads(4)
def test_all_run_at_once(thread_index):
    TOGETHER.wait()  # breaks (BrokenBarrierError) unless all 4 bodies run at the same time
    assert helper() == thread_index
    SEEN.append(thread_index)


def test_every_index_was_seen(thread_index):
    assert sorted(SEEN) == [0, 1, 2, 3]
    assert thread_index == 0 and current_thread_index() == 0


@pytest.mark.threads(4)
def test_two_fail(thread_index):
    assert thread_index % 2 == 0, f"odd thread {thread_index}"


@pytest.mark.threads(3)
def test_all_skip():
    pytest.skip("skipped in every thread")


@pytest.mark.threads(2, timeout=1)
def test_stuck_thread(thread_index, release):
    if thread_index == 1:
        release.wait(30)


@pytest.mark.isolated
@pytest.mark.threads(3)
def test_isolated_threads(thread_index):
    assert thread_index != 2, "thread 2 of an isolated fan-out"


@pytest.mark.threads(2)
def test_returns(thread_index):
    return thread_index
'''


def test_threads_marker(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_inner=INNER)
    result = pytester.runpytest(*ARGS, "-rA")
    result.assert_outcomes(passed=3, failed=3, skipped=1, warnings=1)
    out = result.stdout.str()
    # The first failure as pytest shows any (source, E lines), the other kind below it.
    result.stdout.fnmatch_lines([
        ">       assert thread_index % 2 == 0, f\"odd thread {thread_index}\"",
        "E       AssertionError: odd thread 1",
        "E       (in thread 1 of 4)",
        "E       1 more failure in test_two_fail, of another kind:",
        "E       --- AssertionError in thread 3 of 4 ---",
        "*AssertionError: odd thread 3",
    ])
    result.stdout.fnmatch_lines(["FAILED *test_two_fail - AssertionError: odd thread 1"])
    result.stdout.fnmatch_lines(["SKIPPED [[]1[]] test_inner.py:*: skipped in every thread"])
    assert "thread 1 of 2 is still running 1 s after the threads started" in out
    assert "in test_stuck_thread" in out  # its stack
    result.stdout.fnmatch_lines(["E       AssertionError: thread 2 of an isolated fan-out",
                                 "*(in thread 2 of 3)"])
    assert "returned <class 'int'>" in out


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ("threads(0)", "invalid number of threads in marker @pytest.mark.threads"),
        ("threads('4')", "invalid number of threads in marker @pytest.mark.threads"),
        ("threads()", "needs a number of threads"),
        ("threads(2, 3)", "takes one number of threads"),
        ("threads(100000)", "write a whole number from 1 to 1024 or 'auto'"),
        ("threads(-1)", "invalid number of threads"),
        ("threads(2, iterations=0)", "invalid number of iterations"),
        ("threads(max='x')", "invalid number of threads in marker @pytest.mark.threads on "
                             "test_bad_marker_is_a_usage_error.py::test_x (max=)"),
        ("threads(2, workers=3)", "unknown argument 'workers' in marker @pytest.mark.threads"),
        ("threads(2, timeout=-1)", "invalid timeout in marker @pytest.mark.threads"),
    ],
)
def test_bad_marker_is_a_usage_error(pytester: pytest.Pytester, marker: str, message: str) -> None:
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.{marker}
        def test_x():
            pass
        """
    )
    result = pytester.runpytest(*ARGS)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()


def test_fan_out_directly() -> None:
    seen: list[int] = []
    lock = threading.Lock()

    def body(thread_index: int) -> None:
        with lock:
            seen.append(thread_index)
        assert current_thread_index() == thread_index

    assert fan_out(body, {"thread_index": 0}, FanOut(5, timeout=20)) is None
    assert sorted(seen) == [0, 1, 2, 3, 4]
    assert current_thread_index() == 0  # this thread was never part of it


def test_fan_out_reports_every_failure() -> None:
    def body(thread_index: int) -> None:
        raise ValueError(f"thread {thread_index}")

    with pytest.raises(ValueError, match="thread 0") as info:
        fan_out(body, {"thread_index": 0}, FanOut(3, timeout=20))
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "(in thread 0 of 3)" in notes
    assert "ValueError in thread 1 of 3" in notes and "ValueError: thread 1" in notes
    assert "ValueError in thread 2 of 3" in notes and "ValueError: thread 2" in notes


def test_identical_failures_fold_into_one() -> None:
    def body() -> None:
        raise KeyError("same everywhere")

    with pytest.raises(KeyError) as info:
        fan_out(body, {}, FanOut(4, iterations=2, timeout=20))
    notes = getattr(info.value, "__notes__", [])
    assert notes == ["(in thread 0 (iterations 0, 1), thread 1 (iterations 0, 1), thread 2 "
                     "(iterations 0, 1), thread 3 (iterations 0, 1) of 4 threads, 2 iterations "
                     "each: 8 identical failures, folded into this one)"]
