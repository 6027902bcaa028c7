"""Ctrl-C during an isolated test or an isolated_process child: pytest stops cleanly, prints
its summary, and leaves no child behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

pytestmark = [pytest.mark.timeout(180),
              pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")]

BODIES = '''
import os
import threading

import pytest

READY = os.environ["PROCTHREAD_TEST_READY"]


def _wait_for_ctrl_c():
    with open(READY + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.replace(READY + ".tmp", READY)
    threading.Event().wait(120)  # until the interrupt


def test_first_passes():
    pass


@pytest.mark.isolated
def test_isolated_body():
    _wait_for_ctrl_c()


def test_fixture_child(isolated_process):
    isolated_process.run(_wait_for_ctrl_c)
'''


def _wait_for(path: Path, seconds: float) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists():
            return int(path.read_text())
        time.sleep(0.02)  # polling a file with a deadline: what the test waits for is outside
    raise AssertionError(f"the child never wrote {path}")


@pytest.mark.parametrize("which", ["test_isolated_body", "test_fixture_child"])
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_ctrl_c_stops_cleanly(pytester: pytest.Pytester, which: str, method: str) -> None:
    pytester.makepyfile(test_bodies=BODIES)
    ready = pytester.path / "ready"
    env = dict(os.environ, PROCTHREAD_TEST_READY=str(ready))
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:hypothesispytest",
         f"--procthread-start-method={method}", "-k", f"first or {which}", "test_bodies.py"],
        cwd=pytester.path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        child = _wait_for(ready, 60)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground group
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    text = out.decode(errors="replace")
    assert "KeyboardInterrupt" in text, text
    assert "1 passed" in text, text  # the summary line of what ran before
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, text
    # Our children are reaped by the run or, once it is gone, by init: poll, bounded.
    deadline = time.monotonic() + 10
    while _running(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(child), f"the child {child} outlived the interrupted run"


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
