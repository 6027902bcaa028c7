"""The warden (``process.warden``): on Linux, one process per test process that stops its fork
children, and what they started, once the test process is gone.

The end-to-end case, a SIGKILLed test process whose fork children and grandchildren all
end, is in ``test_orphans.py``; here: what the warden is and is not.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import psutil
import pytest

from _procs import wait_ended
from pytest_procthread.child import lifeline
from pytest_procthread.process import ProcessRunner
from pytest_procthread.process import warden as wardens

pytestmark = [
    pytest.mark.skipif(not wardens._supported(), reason="no pidfd here: no warden"),
    pytest.mark.timeout(120),
]
WAIT = 30.0


def threads_here() -> tuple[int, int]:
    import threading

    return threading.active_count(), psutil.Process().num_threads()


@pytest.fixture
def fork_runner(isolated_process: ProcessRunner) -> ProcessRunner:
    return isolated_process.options(start_method="fork", timeout=WAIT)


def test_a_fork_child_has_no_watcher_thread(fork_runner: ProcessRunner) -> None:
    """The warden watches, so the child has the one thread its target runs in."""
    listed, native = fork_runner.run(threads_here).unwrap()
    assert (listed, native) == (1, 1)
    assert wardens.warden_pid() is not None


def test_the_warden_is_not_a_child_of_the_test_process(fork_runner: ProcessRunner) -> None:
    fork_runner.run(os.getpid).unwrap()
    pid = wardens.warden_pid()
    assert pid is not None and psutil.pid_exists(pid)
    mine = {p.pid for p in psutil.Process().children(recursive=True)}
    assert pid not in mine
    assert psutil.Process(pid).ppid() != os.getpid()


def test_a_killed_warden_is_replaced(fork_runner: ProcessRunner) -> None:
    fork_runner.run(os.getpid).unwrap()
    first, standby = wardens.warden_pid(), wardens.standby_pid()
    assert first is not None and standby is not None
    for pid in (first, standby):  # the standby alone would go on in the warden's place
        os.kill(pid, signal.SIGKILL)
        assert wait_ended(psutil.Process(pid), WAIT)
    outcome = fork_runner.run(threads_here)
    assert outcome.unwrap() == (1, 1)
    second = wardens.warden_pid()
    assert second is not None and second != first and psutil.pid_exists(second)


def test_a_child_that_cannot_enlist_says_so() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody reads: the write fails (EPIPE), the child must watch itself
    assert lifeline.enlist(write_end) is False
    with pytest.raises(OSError):
        os.fstat(write_end)  # closed either way


ENDS_WITH_ITS_PROCESS = """
import os, sys
from pytest_procthread.child import lifeline
from pytest_procthread.process import warden as wardens
from pytest_procthread.process import ProcessRunner

runner = ProcessRunner("fork", 30.0)
assert runner.run(os.getpid).unwrap() > 0
print(wardens.warden_pid(), flush=True)
runner.close()
"""


def test_the_warden_ends_with_its_test_process() -> None:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(ENDS_WITH_ITS_PROCESS)],
        capture_output=True, text=True, timeout=WAIT, check=False,
    )
    assert done.returncode == 0, done.stderr
    pid = int(done.stdout.split()[0])
    try:
        warden = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return  # gone already
    assert wait_ended(warden, WAIT)


@pytest.mark.parametrize("tests", ["skipped", "forking"])
def test_started_with_the_session_under_isolated(pytester: pytest.Pytester, tests: str) -> None:
    """Under --isolated with fork the warden starts at session start, while tests are
    collected; a session whose tests never fork still waits for it, and leaves nothing."""
    pytester.makeconftest(
        """
        import os
        from pytest_procthread.process import warden as wardens

        def pytest_collection_finish(session):
            print("warden on its way:", wardens._pending is not None)

        def pytest_unconfigure(config):
            print("warden settled:", wardens._pending is None and wardens._warden is not None)
        """
    )
    skip = "@pytest.mark.skip(reason='never forks')" if tests == "skipped" else ""
    pytester.makepyfile(
        f"""
        import os
        import pytest

        {skip}
        def test_child(request):
            assert os.getpid() != request.config._parent_pid
        """
    )
    pytester.makeconftest(
        pytester.path.joinpath("conftest.py").read_text()
        + "\ndef pytest_configure(config):\n    config._parent_pid = os.getpid()\n"
    )
    result = pytester.runpytest_subprocess(
        "-s", "-p", "no:cacheprovider", "--isolated", "--procthread-start-method=fork",
        "--procthread-check-leaks",
    )
    if tests == "skipped":
        result.assert_outcomes(skipped=1)
    else:
        result.assert_outcomes(passed=1)
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*warden on its way: True*", "*warden settled: True*"])
    result.stdout.no_fnmatch_line("*left behind*")
