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
import time

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


def tree_mark_of_a_grandchild() -> tuple[str, bool]:
    """What a process this child starts finds in PROCTHREAD_TREE, and whether the child's
    own os.environ shows it (it must not: the child sees the environment it would see
    without isolation)."""
    out = subprocess.run(
        [sys.executable, "-c", "import os; print(os.environ.get('PROCTHREAD_TREE', ''))"],
        capture_output=True, text=True, timeout=WAIT, check=True,
    ).stdout.strip()
    return out, "PROCTHREAD_TREE" in os.environ


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_descendants_carry_the_session_token(isolated_process: ProcessRunner, method: str) -> None:
    runner = isolated_process.options(start_method=method, timeout=WAIT)
    mark, in_environ = runner.run(tree_mark_of_a_grandchild).unwrap()
    assert wardens.tree_token() in mark.split()
    assert not in_environ or "PROCTHREAD_TREE" in os.environ


def test_the_warden_finds_processes_by_their_token() -> None:
    from pytest_procthread.child import warden_program

    token = f"test-{os.getpid()}-{os.urandom(4).hex()}"
    env = {**os.environ, "PROCTHREAD_TREE": f"outer {token}"}
    stray = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], env=env)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                             env={**os.environ, "PROCTHREAD_TREE": f"{token}x"})
    try:
        found = warden_program.marked(token.encode())
        try:
            pids = {pid_of(fd) for fd in found}
        finally:
            for fd in found:
                os.close(fd)
        assert stray.pid in pids and other.pid not in pids
        warden_program.stop_marked(token.encode())
        assert stray.wait(WAIT) == -signal.SIGKILL
        assert other.poll() is None
    finally:
        for proc in (stray, other):
            proc.kill()
            proc.wait(WAIT)


def pid_of(pidfd: int) -> int:
    with open(f"/proc/self/fdinfo/{pidfd}") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("Pid:"))


STANDBY_SCRIPT = """
import os, subprocess, sys, time
from pytest_procthread.process import ProcessRunner
from pytest_procthread.process import warden as wardens

def child(ready):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    os.write(ready, b"%d %d\\n" % (os.getpid(), sleeper.pid))
    time.sleep(600)

runner = ProcessRunner("fork", 600.0)
ready_r, ready_w = os.pipe()
handle = runner.start(child, ready_w)
os.close(ready_w)
with os.fdopen(ready_r) as f:
    kids = f.readline().split()
print(wardens.warden_pid(), wardens.standby_pid(), *kids, flush=True)
if sys.argv[1:] == ["replace"]:  # once both are killed: a new child, a new warden
    sys.stdin.readline()
    runner.run(os.getpid)
    print(wardens.warden_pid(), flush=True)
if sys.argv[1:] == ["wait"]:  # waiting for the child, as a test does
    handle.join(600)
time.sleep(600)
"""


@pytest.mark.parametrize("killed", ["warden", "both", "both-while-waiting"])
def test_children_outlive_no_killed_warden(tmp_path, killed: str) -> None:
    """The warden is killed, then its test process: its standby stops the child and the
    child's child all the same. Both are killed: the next child's new warden takes the
    children started before it on its roll; or, if the test process is waiting for a
    child, a new warden starts at once, and the test process killed right after the pair
    still leaves nothing."""
    script = tmp_path / "parent.py"
    script.write_text(STANDBY_SCRIPT)
    args = {"warden": [], "both": ["replace"], "both-while-waiting": ["wait"]}[killed]
    parent = subprocess.Popen([sys.executable, str(script), *args], stdout=subprocess.PIPE,
                              stdin=subprocess.PIPE)
    procs: list[psutil.Process] = []
    try:
        assert parent.stdout is not None and parent.stdin is not None
        warden, standby, child, grandchild = (int(word) for word in
                                              select_line(parent.stdout).split())
        procs = [psutil.Process(child), psutil.Process(grandchild)]
        for pid in (warden,) if killed == "warden" else (warden, standby):
            os.kill(pid, signal.SIGKILL)
            assert wait_ended(psutil.Process(pid), WAIT)
        if killed == "both":
            parent.stdin.write(b"go\n")
            parent.stdin.flush()
            assert int(select_line(parent.stdout)) not in (warden, standby)
        if killed == "both-while-waiting":
            # Killed in the same instant as the pair, the test process could not react;
            # the promise is that it replaces them at once, before anything else.
            assert new_warden_of(parent.pid, {warden, standby}), "no new warden started"
    finally:
        parent.kill()
        parent.wait(WAIT)
        for stream in (parent.stdout, parent.stdin):
            if stream is not None:
                stream.close()
    left = [proc for proc in procs if not wait_ended(proc, WAIT)]
    for proc in left:
        proc.kill()
    assert not left, f"outlived their test process and its warden: {left}"


def new_warden_of(parent: int, old: set[int]) -> bool:
    """Whether, within WAIT seconds, a warden other than ``old`` watches ``parent``."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        for proc in psutil.process_iter(["pid", "cmdline"]):
            cmdline = proc.info["cmdline"] or []
            if (proc.info["pid"] not in old and len(cmdline) >= 3
                    and any("warden_program" in part for part in cmdline)
                    and str(parent) in cmdline):
                return True
        time.sleep(0.01)  # nothing to wait on from outside: the warden is not our child
    return False


def select_line(stream: object) -> str:
    """One line from the pipe ``stream``, within WAIT seconds."""
    import select

    fd = stream.fileno()  # type: ignore[attr-defined]
    data = b""
    while not data.endswith(b"\n"):
        if not select.select([fd], [], [], WAIT)[0]:
            raise TimeoutError(f"no complete line within {WAIT} s (got {data!r})")
        chunk = os.read(fd, 4096)
        if not chunk:
            raise EOFError(f"closed before a complete line (got {data!r})")
        data += chunk
    return data.decode()
