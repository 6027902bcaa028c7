"""pytest-timeout and pytest-xdist work together with the fixtures, never against them."""

from __future__ import annotations

import json

import psutil
import pytest

INNER = """
import json, os
from pytest_procthread import faults

def grandchild_then_hang(path):
    import subprocess, sys
    kid = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    with open(path, "w") as f:
        json.dump([os.getpid(), kid.pid], f)
    faults.hang()

def test_hangs(isolated_process, ipc_pipe, tmp_path):
    path = str(tmp_path / "pids.json")
    handle = isolated_process.start(grandchild_then_hang, path)
    with open(os.environ["PIDS_OUT"], "w") as out:
        out.write(path)
    handle.join(timeout=60)
"""


def _read_pids(pointer: str) -> list[int]:
    with open(pointer) as f:
        path = f.read()
    with open(path) as f:
        return list(json.load(f))


@pytest.mark.parametrize("method", ["signal", "thread"])
def test_pytest_timeout_ends_the_test_and_its_children(
    pytester: pytest.Pytester, method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pointer = pytester.path / "pointer.txt"
    monkeypatch.setenv("PIDS_OUT", str(pointer))
    pytester.makepyfile(test_inner=INNER)
    result = pytester.runpytest_subprocess(
        "--timeout=3", f"--timeout-method={method}", "-p", "no:cacheprovider",
        "--procthread-start-method=fork",
    )
    if method == "signal":  # the thread method ends the whole run with os._exit
        result.assert_outcomes(failed=1)
    assert "Timeout" in result.stdout.str() + result.stderr.str()
    pids = _read_pids(str(pointer))
    procs = []
    for pid in pids:
        try:
            procs.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=10)
    for proc in alive:
        proc.kill()
    assert not alive, f"left running after pytest-timeout fired: {alive}"


def test_fixtures_under_xdist(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_many="""
        import pytest

        @pytest.mark.parametrize("i", range(6))
        def test_child(isolated_process, sibling_thread, ipc_pipe, i):
            child = isolated_process.start(lambda end, n: end.send(n * 2), ipc_pipe.child, i)
            assert ipc_pipe.parent.recv(timeout=20) == i * 2
            assert child.join(timeout=20).returned
            assert sibling_thread.run(abs, -i).value == i
        """
    )
    result = pytester.runpytest_subprocess(
        "-n", "2", "--procthread-check-leaks", "--procthread-start-method=spawn",
        "-p", "no:cacheprovider",
    )
    result.assert_outcomes(passed=6)
