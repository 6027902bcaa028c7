"""What outlives a SIGKILLed test process (issue 17): each fault under each start method.

For every scenario and start method this writes a throwaway test file, runs pytest on it
in its own session with an environment token (``PROCTHREAD_PROBE_TOKEN``) that every
process it starts inherits, waits until the test says everything is in place (a file it
writes, polled with a deadline), SIGKILLs the pytest process (for ``warden``, the warden
first), and then counts, for up to ``--window`` seconds, the processes still carrying
the token. What is left is killed: the probe leaves nothing behind.

    python benchmarks/survivors.py                  # every scenario, every start method
    python benchmarks/survivors.py --only daemon --methods spawn

Scenarios:

- ``daemon``: the child starts a grandchild that calls ``os.setsid()`` and double-forks;
- ``gil``: the child is stuck in a catastrophic regex, in C, holding the GIL;
- ``warden``: the child has 20 grandchildren; the warden is killed, then pytest;
- ``wardens``: the same, but the warden's standby is killed with it;
- ``iso-daemon``, ``iso-gil``, ``iso-warden``, ``iso-wardens``: the same in the body of a
  test under the ``isolated`` marker (a warm template's child under spawn and forkserver).

Prints a table of survivors; exits 1 if any scenario left one.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil

TOKEN_VAR = "PROCTHREAD_PROBE_TOKEN"
METHODS = ("fork", "forkserver", "spawn")
READY_WAIT = 60.0

COMMON = '''
import os, re, subprocess, sys, time
READY = os.environ["PROBE_READY"]

def ready(note):
    with open(READY + ".tmp", "w") as f:
        f.write(note)
    os.replace(READY + ".tmp", READY)

def wait_for(path, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(path)
        time.sleep(0.01)
'''

DAEMON = COMMON + '''
DAEMONIZE = """
import os, sys, time
os.setsid()
if os.fork():
    os._exit(0)
with open(sys.argv[1], "w") as f:
    f.write(str(os.getpid()))
time.sleep(600)
"""

def child():
    mark = READY + ".daemon"
    subprocess.Popen([sys.executable, "-c", DAEMONIZE, mark]).wait(30)
    wait_for(mark)
    ready("daemon in place")
    time.sleep(600)

def test_probe(isolated_process):
    isolated_process.start(child).join(timeout=600)
'''

GIL = COMMON + '''
def child():
    ready("in the regex")
    re.match(r"(a+)+$", "a" * 64 + "b")  # never returns, and never checks a signal

def test_probe(isolated_process):
    isolated_process.start(child).join(timeout=600)
'''

WARDEN = COMMON + '''
def child():
    for _ in range(20):
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    ready("20 grandchildren")
    time.sleep(600)

def test_probe(isolated_process):
    isolated_process.start(child).join(timeout=600)
'''

ISOLATED = """
import pytest

@pytest.mark.isolated
def test_isolated():
    child()
"""

SCENARIOS = {
    "daemon": DAEMON, "gil": GIL, "warden": WARDEN, "wardens": WARDEN,
    # The same faults in the body of a test under the isolated marker: under spawn and
    # forkserver its child is forked by a warm template.
    "iso-daemon": DAEMON + ISOLATED, "iso-gil": GIL + ISOLATED, "iso-warden": WARDEN + ISOLATED,
    "iso-wardens": WARDEN + ISOLATED,
}


def carriers(token: str) -> list[psutil.Process]:
    """The live processes whose environment carries ``token`` (zombies have ended)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(TOKEN_VAR) == token and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            continue
    return found


def is_warden(proc: psutil.Process) -> bool:
    try:
        return any("warden_program" in part for part in proc.cmdline())
    except psutil.Error:
        return False


def _parent_is_warden(proc: psutil.Process) -> bool:
    try:
        parent = proc.parent()
    except psutil.Error:
        return False
    return parent is not None and is_warden(parent)


def survivors_after(token: str, window: float) -> list[psutil.Process]:
    """Processes with ``token`` still there after ``window`` seconds; fewer, none, end
    the wait early (a process that has ended starts no other)."""
    deadline = time.monotonic() + window
    while True:
        left = carriers(token)
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.2)


def kill_all(token: str) -> None:
    for _ in range(5):  # bounded: what is killed may have forked meanwhile
        left = carriers(token)
        if not left:
            return
        for proc in left:
            try:
                proc.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(left, timeout=2)


def probe(scenario: str, method: str, window: float, workdir: Path) -> tuple[int, str]:
    """Run one scenario under one start method; the survivors' count, and a note."""
    token = uuid.uuid4().hex
    case = workdir / f"{scenario}-{method}"
    case.mkdir()
    test_file = case / "test_probe.py"
    test_file.write_text(SCENARIOS[scenario])
    ready = case / "ready"
    env = {**os.environ, TOKEN_VAR: token, "PROBE_READY": str(ready),
           "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTEST_ADDOPTS", None)
    log = open(case / "pytest.log", "wb")  # noqa: SIM115
    pytest = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-s",
         "--procthread-start-method", method,
         f"{test_file}::test_{'isolated' if scenario.startswith('iso-') else 'probe'}"],
        cwd=case, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + READY_WAIT
        while not ready.exists():
            if pytest.poll() is not None or time.monotonic() > deadline:
                log.close()
                return -1, "not ready: " + (case / "pytest.log").read_text()[-300:]
            time.sleep(0.02)
        if scenario.endswith(("warden", "wardens")):
            wardens = [proc for proc in carriers(token) if is_warden(proc)]
            if not scenario.endswith("wardens"):  # not its standby, the warden's own child
                wardens = [proc for proc in wardens if not _parent_is_warden(proc)]
            for proc in wardens:
                proc.kill()
            psutil.wait_procs(wardens, timeout=5)
        pytest.send_signal(signal.SIGKILL)
        pytest.wait(10)
        left = survivors_after(token, window)
        note = ", ".join(sorted(_describe(proc) for proc in left))
        return len(left), note
    finally:
        if pytest.poll() is None:
            pytest.kill()
            pytest.wait(10)
        kill_all(token)
        log.close()


def _describe(proc: psutil.Process) -> str:
    try:
        cmd = " ".join(proc.cmdline())
    except psutil.Error:
        cmd = "?"
    if "warden_program" in cmd:
        return "warden"  # or its standby
    if "forkserver" in cmd:
        return "forkserver"
    if "resource_tracker" in cmd:
        return "resource tracker"
    if "sleep(600)" in cmd and "setsid" in cmd:
        return "daemon"
    if "sleep(600)" in cmd:
        return "grandchild"
    return "child"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default=",".join(SCENARIOS),
                        help=f"scenarios, comma-separated, of: {', '.join(SCENARIOS)}")
    parser.add_argument("--methods", default=",".join(METHODS), help="start methods")
    parser.add_argument("--window", type=float, default=10.0,
                        help="seconds to wait for what is left to end (default 10)")
    args = parser.parse_args(argv)
    scenarios = args.only.split(",")
    methods = args.methods.split(",")
    results: dict[tuple[str, str], tuple[int, str]] = {}
    with tempfile.TemporaryDirectory(prefix="procthread-survivors-") as tmp:
        for scenario in scenarios:
            for method in methods:
                results[scenario, method] = probe(scenario, method, args.window, Path(tmp))
    print(f"survivors {args.window:g} s after SIGKILL of the test process")
    print(f"{'scenario':<12}" + "".join(f"{m:>12}" for m in methods))
    for scenario in scenarios:
        print(f"{scenario:<12}" + "".join(f"{results[scenario, m][0]:>12}" for m in methods))
    for (scenario, method), (count, note) in results.items():
        if count:
            print(f"  {scenario}/{method}: {note}")
    return 1 if any(count for count, _ in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
