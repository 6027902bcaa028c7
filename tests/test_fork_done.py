"""A direct fork child of ``--isolated`` says when it is done, and the test process goes on
without waiting for its exit; the child is reaped before any fixture is torn down."""

from __future__ import annotations

import os
import select
import sys
from collections.abc import Iterator

import pytest

from pytest_procthread.process import fork as forking
from pytest_procthread.process import launch

pytestmark = [
    pytest.mark.skipif(not forking.available(), reason="no fork here"),
    pytest.mark.timeout(120),
]

WAIT = 30.0  # bound on every wait below; each is over in milliseconds


@pytest.fixture
def pipes() -> Iterator[list[tuple[int, int]]]:
    made: list[tuple[int, int]] = []
    yield made
    for pair in made:
        for fd in pair:
            try:
                os.close(fd)
            except OSError:
                pass


def new_pipe(pipes: list[tuple[int, int]]) -> tuple[int, int]:
    pair = os.pipe()
    pipes.append(pair)
    return pair


def readable(fd: int, timeout: float) -> bool:
    return bool(select.select([fd], [], [], timeout)[0])


def gone(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def test_done_then_reaped(pipes: list[tuple[int, int]]) -> None:
    go_r, go_w = new_pipe(pipes)
    child = forking.ForkedChild(lambda: readable(go_r, WAIT), (), signal_done=True)
    try:
        assert child.done is not None
        assert not readable(child.done, 0), "done before the target ended"
        os.write(go_w, b"g")
        assert readable(child.done, WAIT)
        assert child.note_done()
        assert child.exitcode == 0 and not child.is_alive()
        assert child in launch._exiting and child.sentinel is not None
        child.close()  # as the handle does: the pidfd stays for the reaping
        assert child.sentinel is not None
    finally:
        launch.reap_exiting()
    assert not launch._exiting
    assert gone(child.pid), "said it was done, then was not reaped"
    assert child.sentinel is None and child.done is None


def test_done_comes_from_the_child_only(pipes: list[tuple[int, int]]) -> None:
    """A process the target forks and that returns from the target runs back through the
    child's frames; its exit must not pass for the child's."""
    reaped_r, reaped_w = new_pipe(pipes)
    go_r, go_w = new_pipe(pipes)

    def target() -> None:
        pid = os.fork()
        if pid == 0:
            return  # the grandchild: back into ForkedChild's frames, and out
        os.waitpid(pid, 0)
        os.write(reaped_w, b"r")
        readable(go_r, WAIT)

    child = forking.ForkedChild(target, (), signal_done=True)
    try:
        assert readable(reaped_r, WAIT) and os.read(reaped_r, 1) == b"r"
        assert child.done is not None
        assert not readable(child.done, 0), "the grandchild's exit was taken for the child's"
        os.write(go_w, b"g")
        assert readable(child.done, WAIT)
        assert child.note_done() and child.exitcode == 0
    finally:
        launch.reap_exiting()
    assert gone(child.pid)


@pytest.mark.parametrize("how", ["os._exit", "closes the pipe"])
def test_no_done_is_waited_for_as_before(how: str) -> None:
    """A child that ends without saying so (os._exit, a crash) or closes the pipe: the
    parent sees EOF, and waits for the end itself, with the real exit status."""

    def target() -> None:
        if how == "os._exit":
            os._exit(7)
        os.closerange(3, 4096)  # the done pipe among them
        raise SystemExit(5)

    child = forking.ForkedChild(target, (), signal_done=True)
    assert child.done is not None
    assert readable(child.done, WAIT)
    assert not child.note_done()
    assert child not in launch._exiting
    child.join(WAIT)
    assert child.exitcode == (7 if how == "os._exit" else 5)
    child.close()
    assert gone(child.pid)


def test_reaping_is_bounded(monkeypatch: pytest.MonkeyPatch, pipes: list[tuple[int, int]]) -> None:
    """A child that said it was done but does not end (stuck on its way out) is killed
    after the grace period, not waited for without end."""
    monkeypatch.setattr(forking, "REAP_GRACE", 0.2)
    go_r, _ = new_pipe(pipes)
    child = forking.ForkedChild(lambda: readable(go_r, WAIT), (), signal_done=True)
    child.exitcode, child._exiting = 0, True  # as note_done() leaves it
    launch._exiting.append(child)
    launch.reap_exiting()
    assert gone(child.pid)
    assert child.sentinel is None and child.done is None


TEARDOWN_CHECK = """
import os
import psutil
import pytest

@pytest.fixture(autouse=True)
def no_child_at_teardown():
    assert psutil.Process().children() == [], "at setup"
    yield
    kids = psutil.Process().children()
    assert kids == [], f"at teardown: {kids}"
"""


@pytest.mark.skipif(sys.platform == "win32", reason="no fork")
def test_isolated_children_reaped_before_teardown(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(TEARDOWN_CHECK)
    pytester.makepyfile(
        """
        import os
        import pytest

        pytestmark = pytest.mark.isolated(start_method="fork")

        @pytest.mark.parametrize("i", range(25))
        def test_each(i):
            assert i >= 0

        def test_fails():
            assert 1 == 2

        def test_crashes():
            os._exit(3)
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=25, failed=2)
    result.stdout.fnmatch_lines(
        ["*_ test_fails _*", "E * assert 1 == 2", "*test_crashes*crashed: exited with status 3*"]
    )
    result.stdout.no_fnmatch_line("*at teardown*")
    result.stdout.no_fnmatch_line("*at setup*")
