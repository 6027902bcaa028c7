"""Nothing outlives its test: not at teardown, not when the test process itself is killed.

Every child and grandchild here is a real process; their pids travel back through files
and pipes, and their end is checked with psutil within bounded waits.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from _procs import ended, still_running

pytestmark = pytest.mark.timeout(120)

METHODS = ["fork", "forkserver", "spawn"]
WAIT = 30.0


def process_if_same(pid: int, create_time: float) -> psutil.Process | None:
    """The process ``pid`` if it is still the one created at ``create_time``."""
    try:
        proc = psutil.Process(pid)
        if abs(proc.create_time() - create_time) > 0.01:
            return None  # the pid was reused
        return proc
    except psutil.Error:
        return None


# -- teardown of unjoined children

TEARDOWN_TEST = """
import json, os, subprocess, sys
import psutil, pytest
from pytest_procthread import faults
from pytest_procthread.ipc import IpcPipe

PIDS = {pids_path!r}

def hang_with_grandchild(end):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    end.send(sleeper.pid)
    faults.hang()

def record(*pids):
    with open(PIDS, "a") as f:
        for pid in pids:
            f.write(json.dumps([pid, psutil.Process(pid).create_time()]) + "\\n")

@pytest.mark.parametrize("fail", [False, True], ids=["passes", "fails"])
@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_leaves_children_running(isolated_process, method, fail):
    runner = isolated_process.options(start_method=method, timeout=60)
    plain = runner.start(faults.hang)
    with IpcPipe(timeout=30) as pipe:
        parent = runner.start(hang_with_grandchild, pipe.child)
        grandchild = pipe.parent.recv()
    record(plain.pid, parent.pid, grandchild)
    assert plain.is_alive() and parent.is_alive()
    assert not fail, "failing with children running"
"""


def test_teardown_stops_unjoined_children_and_grandchildren(pytester: pytest.Pytester) -> None:
    pids_path = pytester.path / "pids.jsonl"
    pytester.makepyfile(test_leaver=TEARDOWN_TEST.format(pids_path=str(pids_path)))
    started = time.monotonic()
    result = pytester.runpytest("-p", "no:cacheprovider")
    elapsed = time.monotonic() - started
    result.assert_outcomes(passed=3, failed=3)

    records = [json.loads(line) for line in pids_path.read_text().splitlines()]
    assert len(records) == 3 * 2 * 3  # 3 methods x pass/fail x (2 children + a grandchild)
    survivors = [p for p in (process_if_same(pid, t) for pid, t in records) if p is not None]
    running = still_running(survivors, timeout=0)  # already over: teardown waited for them
    assert not running, f"left running after teardown: {running}"
    assert elapsed < 30, f"teardown should kill at once, not wait for timeouts ({elapsed:.1f} s)"


# -- no orphans when the parent process is killed

PARENT_SCRIPT = """
import json, os, subprocess, sys
from pytest_procthread import faults
from pytest_procthread.process import ProcessRunner


def grandchild(queue):
    queue.put(("runner-grandchild", os.getpid()))
    faults.hang()


def child(method, queue):
    runner = ProcessRunner(start_method=method, timeout=60)
    runner.start(grandchild, queue)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    queue.put(("popen-grandchild", sleeper.pid))
    queue.put(("child", os.getpid()))
    faults.hang()


if __name__ == "__main__":
    method = sys.argv[1]
    runner = ProcessRunner(start_method=method, timeout=60)
    queue = runner.context.Queue()
    for _ in range(2):
        runner.start(child, method, queue)
    pids = [queue.get(timeout=60) for _ in range(6)]
    print(json.dumps(pids), flush=True)
    faults.hang()
"""


def read_line(stream, timeout: float) -> bytes:
    """One line from a pipe, waiting at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    fd = stream.fileno()
    data = b""
    while not data.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            raise TimeoutError(f"no complete line within {timeout} s (got {data!r})")
        chunk = os.read(fd, 65536)
        if not chunk:
            raise EOFError(f"the pipe closed before a complete line (got {data!r})")
        data += chunk
    return data


@pytest.mark.parametrize("method", METHODS)
def test_no_orphans_when_the_parent_is_sigkilled(tmp_path: Path, method: str) -> None:
    script = tmp_path / "parent.py"
    script.write_text(PARENT_SCRIPT)
    errors = tmp_path / "stderr.txt"
    with open(errors, "wb") as err:
        parent = subprocess.Popen(
            [sys.executable, str(script), method], stdout=subprocess.PIPE, stderr=err
        )
    tree: list[psutil.Process] = []
    try:
        try:
            reported = json.loads(read_line(parent.stdout, WAIT))
        except (TimeoutError, EOFError) as exc:
            pytest.fail(f"{exc}; its stderr:\n{errors.read_text()}")
        # Everything below the parent, helpers included (forkserver, resource tracker).
        tree = psutil.Process(parent.pid).children(recursive=True)
        assert sorted(kind for kind, _ in reported) == sorted(
            ["child", "runner-grandchild", "popen-grandchild"] * 2
        )
        assert {pid for _, pid in reported} <= {p.pid for p in tree}
        assert all(p.is_running() and not ended(p) for p in tree)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait(WAIT)
        parent.stdout.close()

    running = still_running(tree, timeout=10)
    assert not running, (
        f"outlived their SIGKILLed parent: {running}; its stderr:\n{errors.read_text()}"
    )
