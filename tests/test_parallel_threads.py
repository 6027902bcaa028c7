"""The ``threads(n)`` marker and the ``thread_index`` fixture."""

from __future__ import annotations

import sys
import threading

import pytest

from pytest_procthread.parallel import current_thread_index, fan_out

if sys.version_info >= (3, 11):
    from builtins import BaseExceptionGroup
else:
    from exceptiongroup import BaseExceptionGroup

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
    assert "2 of 4 threads running test_two_fail failed (thread 1, 3)" in out
    assert "AssertionError: odd thread 1" in out and "AssertionError: odd thread 3" in out
    assert "(in thread 1 of 4)" in out and "(in thread 3 of 4)" in out
    result.stdout.fnmatch_lines(["SKIPPED [[]1[]] test_inner.py:*: skipped in every thread"])
    assert "thread 1 of 2 is still running 1 s after the threads started" in out
    assert "in test_stuck_thread" in out  # its stack
    assert "1 of 3 threads running test_isolated_threads failed (thread 2)" in out
    assert "thread 2 of an isolated fan-out" in out
    assert "returned <class 'int'>" in out


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ("threads(0)", "invalid number of threads in marker @pytest.mark.threads"),
        ("threads('4')", "invalid number of threads in marker @pytest.mark.threads"),
        ("threads()", "needs exactly one number of threads"),
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

    assert fan_out(body, {"thread_index": 0}, 5, timeout=20) is None
    assert sorted(seen) == [0, 1, 2, 3, 4]
    assert current_thread_index() == 0  # this thread was never part of it


def test_fan_out_reports_every_failure() -> None:
    def body(thread_index: int) -> None:
        raise ValueError(f"thread {thread_index}")

    with pytest.raises(BaseException) as info:
        fan_out(body, {"thread_index": 0}, 3, timeout=20)
    group = info.value
    assert isinstance(group, BaseExceptionGroup)
    assert sorted(str(e) for e in group.exceptions) == ["thread 0", "thread 1", "thread 2"]
