"""isolated_process when the child crashes, hangs or is killed, under every start method.

Crashes are real (a NULL write, abort(), Py_FatalError); hangs are real blocking waits.
Process trees are checked with psutil: after join() or kill() nothing of them may remain.
"""

from __future__ import annotations

import re
import resource
import signal
import subprocess
import sys
import threading
import time

import psutil
import pytest

from _procs import still_running
from pytest_procthread import faults
from pytest_procthread.errors import ChildDiedError, ChildTimeoutError
from pytest_procthread.ipc import IpcPipe, PipeEnd
from pytest_procthread.process import STOP_GRACE, ProcessRunner

pytestmark = pytest.mark.timeout(120)

METHODS = ["fork", "forkserver", "spawn"]
WAIT = 30.0


def assert_all_gone(procs: list[psutil.Process], timeout: float) -> None:
    running = still_running(procs, timeout)
    assert not running, f"still running: {running}"


# -- targets


def crash_with_segfault():
    faults.segfault()


def _parked_thread_body(started, never):
    started.set()
    never.wait(WAIT)


def crash_with_thread_running():
    started, never = threading.Event(), threading.Event()
    threading.Thread(target=_parked_thread_body, args=(started, never), daemon=True).start()
    if not started.wait(WAIT):
        raise TimeoutError("the helper thread never started")
    faults.segfault()


def core_limit():
    return resource.getrlimit(resource.RLIMIT_CORE)


def hang_with_grandchild(end: PipeEnd):
    """Start a grandchild, send its pid to the test, then block forever in faults.hang."""
    grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    end.send(grandchild.pid)
    faults.hang()


# -- crashes


def test_segfault(runner: ProcessRunner) -> None:
    outcome = runner.run(crash_with_segfault)

    assert outcome.crashed and not outcome.returned and outcome.exception is None
    assert outcome.signal == signal.SIGSEGV and outcome.exitcode == -signal.SIGSEGV
    assert not outcome.timed_out and not outcome.killed
    assert "killed by SIGSEGV (segmentation fault)" in outcome.describe()
    assert "Fatal Python error: Segmentation fault" in outcome.stderr
    assert "crash_with_segfault" in outcome.stderr
    with pytest.raises(ChildDiedError, match="killed by SIGSEGV") as info:
        outcome.unwrap()
    assert "Fatal Python error: Segmentation fault" in str(info.value)
    assert "crash_with_segfault" in str(info.value)


def test_segfault_dumps_every_thread(runner: ProcessRunner) -> None:
    outcome = runner.run(crash_with_thread_running)

    assert outcome.signal == signal.SIGSEGV, outcome.describe()
    stderr = outcome.stderr
    assert "Fatal Python error: Segmentation fault" in stderr
    assert "Current thread" in stderr
    assert "in crash_with_thread_running" in stderr
    assert "in _parked_thread_body" in stderr


def test_abort(runner: ProcessRunner) -> None:
    outcome = runner.run(faults.abort)

    assert outcome.crashed and outcome.signal == signal.SIGABRT
    assert "killed by SIGABRT" in outcome.describe()
    assert "Fatal Python error: Aborted" in outcome.stderr


def test_fatal_error(runner: ProcessRunner) -> None:
    outcome = runner.run(faults.fatal_error, "procthread-test: deliberate fatal error")

    assert outcome.crashed and outcome.signal == signal.SIGABRT, outcome.describe()
    assert "Fatal Python error" in outcome.stderr
    assert "procthread-test: deliberate fatal error" in outcome.stderr


@pytest.mark.parametrize("parent_soft", ["as is", "raised"])
def test_core_dumps_are_off_in_the_child(runner: ProcessRunner, parent_soft: str) -> None:
    """The child's soft core limit is 0; the test process keeps its own (under fork it
    is lowered for the moment of the fork only, see _fork)."""
    before = resource.getrlimit(resource.RLIMIT_CORE)
    if parent_soft == "raised":
        if before[1] == 0:
            pytest.skip("the hard core limit is 0 here: the soft one cannot be raised")
        resource.setrlimit(resource.RLIMIT_CORE, (before[1], before[1]))
    try:
        mine = resource.getrlimit(resource.RLIMIT_CORE)
        soft, _hard = runner.run(core_limit).unwrap()
        assert soft == 0
        assert resource.getrlimit(resource.RLIMIT_CORE) == mine
    finally:
        resource.setrlimit(resource.RLIMIT_CORE, before)


# -- timeouts and kill


@pytest.mark.parametrize("how", ["options", "join"])
def test_timeout_dumps_stacks_and_stops_the_tree(
    isolated_process: ProcessRunner, method: str, how: str
) -> None:
    limit = 0.5
    runner = isolated_process.options(
        start_method=method, timeout=limit if how == "options" else WAIT
    )
    with IpcPipe(timeout=WAIT) as pipe:
        handle = runner.start(hang_with_grandchild, pipe.child)
        grandchild = psutil.Process(pipe.parent.recv())
        child = psutil.Process(handle.pid)
        assert grandchild.ppid() == handle.pid
        outcome = handle.join() if how == "options" else handle.join(timeout=limit)

    assert outcome.timed_out and outcome.timeout == limit
    assert not outcome.crashed and not outcome.returned and not outcome.killed
    assert outcome.signal == signal.SIGTERM  # faulthandler dumped, then SIGTERM ended it
    assert f"timed out after {limit:g} s" in outcome.describe()
    assert f"no result after {limit:g} s" in outcome.stderr
    assert re.search(r"faults\.py\", line \d+ in hang$", outcome.stderr, re.MULTILINE)
    assert "in hang_with_grandchild" in outcome.stderr
    with pytest.raises(ChildTimeoutError, match="timed out"):
        outcome.unwrap()
    # join() returned only once the whole tree was gone
    assert_all_gone([child, grandchild], timeout=0.5)


def test_kill_stops_the_tree(runner: ProcessRunner) -> None:
    with IpcPipe(timeout=WAIT) as pipe:
        handle = runner.start(hang_with_grandchild, pipe.child)
        grandchild = psutil.Process(pipe.parent.recv())
        child = psutil.Process(handle.pid)
        started = time.monotonic()
        outcome = handle.kill()
        took = time.monotonic() - started

    # SIGKILL works at once; the grandchild, a zombie now that its parent is dead, must
    # not make kill() wait out the grace period (init here may reap it late, or never).
    assert took < STOP_GRACE, f"kill() took {took:.2f} s"

    assert outcome.killed and outcome.signal == signal.SIGKILL
    assert not outcome.timed_out and not outcome.crashed and not outcome.returned
    assert "was killed by the test" in outcome.describe()
    assert not handle.is_alive()
    assert handle.kill() is outcome and handle.join() is outcome
    with pytest.raises(ChildDiedError, match="killed"):
        outcome.unwrap()
    assert_all_gone([child, grandchild], timeout=0.5)


def test_timeout_option_is_honoured(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_inner="""
        from pytest_procthread import faults

        def test_hangs(isolated_process):
            assert isolated_process.timeout == 1.0
            outcome = isolated_process.run(faults.hang)
            assert outcome.timed_out and outcome.timeout == 1.0, outcome.describe()
            assert "no result after 1 s" in outcome.stderr
        """
    )
    result = pytester.runpytest_subprocess(
        "--procthread-timeout=1", "-p", "no:cacheprovider", timeout=120
    )
    result.assert_outcomes(passed=1)
