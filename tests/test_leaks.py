"""``--procthread-check-leaks``: a run that leaves a process, thread or descriptor fails.

The leaking runs happen in a pytest subprocess; everything they leave ends by itself
within seconds (a thread waits at most 5 s, the process reads a stdin that closes when
the inner pytest exits), so nothing outlives these tests.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import pytest

from pytest_procthread import leaks

# Inner runs: no cache files, and no hypothesis plugin, whose start-up costs ~0.7 s a run.
QUIET = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest")

LEAKY_TESTS = """
import os
import subprocess
import sys
import threading

KEPT = []

def test_leaks_a_thread():
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait, args=(5,), name="leaky-thread-1f2e", daemon=True)
    worker.start()
    KEPT.append(stop)

def test_leaks_a_pipe(tmp_path_factory):
    r, w = os.pipe()
    KEPT.append((r, w))
    with open(os.path.join(os.environ["LEAK_NOTES"], "fds"), "w") as f:
        f.write(f"{r} {w}")

def test_leaks_a_process():
    # It waits for its stdin, which stays open until this pytest ends (15 s at most).
    child = subprocess.Popen(
        [sys.executable, "-c",
         "import select, sys; select.select([sys.stdin], [], [], 15)"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    KEPT.append(child)
    with open(os.path.join(os.environ["LEAK_NOTES"], "pid"), "w") as f:
        f.write(str(child.pid))
"""

CLEAN_TESTS = """
import os
import subprocess
import sys
import threading

def test_thread_joined():
    worker = threading.Thread(target=lambda: None)
    worker.start()
    worker.join(10)

def test_pipe_closed():
    r, w = os.pipe()
    os.close(r)
    os.close(w)

def test_process_waited():
    subprocess.run([sys.executable, "-c", "pass"], check=True, timeout=30)

def test_plugin_fixtures(isolated_process, sibling_thread, ipc_pipe):
    assert isolated_process.run(abs, -3).value == 3
    assert sibling_thread.run(abs, -4).value == 4
    ipc_pipe.parent.send(1)
    assert ipc_pipe.child.recv(timeout=10) == 1
"""


@pytest.fixture
def notes(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    path = tmp_path / "notes"
    path.mkdir()
    monkeypatch.setenv("LEAK_NOTES", str(path))
    return path


def test_leaked_thread_pipe_and_process_fail_the_run(
    pytester: pytest.Pytester, notes: Any
) -> None:
    pytester.makepyfile(test_leaky=LEAKY_TESTS)
    result = pytester.runpytest_subprocess(
        "--procthread-check-leaks", *QUIET, timeout=60
    )
    result.assert_outcomes(passed=3)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    r, w = (notes / "fds").read_text().split()
    pid = (notes / "pid").read_text()
    result.stdout.fnmatch_lines([
        "*= procthread: left behind =*",
    ])
    output = result.stdout.str()
    section = output[output.index("procthread: left behind"):]
    assert f"process {pid} still alive: " in section
    assert "select.select([sys.stdin]" in section
    assert "thread 'leaky-thread-1f2e' (ident " in section
    assert "still running" in section
    assert f"file descriptor {r} still open: pipe:[" in section
    assert f"file descriptor {w} still open: pipe:[" in section


def test_leaked_descriptor_alone_fails_the_run(pytester: pytest.Pytester, notes: Any) -> None:
    pytester.makepyfile(test_leaky=LEAKY_TESTS)
    result = pytester.runpytest_subprocess(
        "--procthread-check-leaks", *QUIET, "-k", "pipe", timeout=60
    )
    result.assert_outcomes(passed=1, deselected=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    r, _ = (notes / "fds").read_text().split()
    result.stdout.fnmatch_lines([
        "*= procthread: left behind =*",
        f"file descriptor {r} still open: pipe:*",
    ])
    assert "thread '" not in result.stdout.str()


def test_a_failing_run_keeps_its_own_exit_code(pytester: pytest.Pytester, notes: Any) -> None:
    pytester.makepyfile(
        test_leaky=LEAKY_TESTS + "\n\ndef test_fails():\n    assert False\n"
    )
    result = pytester.runpytest_subprocess(
        "--procthread-check-leaks", *QUIET, "-k", "pipe or fails",
        timeout=60,
    )
    result.assert_outcomes(passed=1, failed=1, deselected=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "procthread: left behind" in result.stdout.str()


def test_clean_run_passes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_clean=CLEAN_TESTS)
    result = pytester.runpytest_subprocess(
        "--procthread-check-leaks", *QUIET, timeout=60
    )
    result.assert_outcomes(passed=4)
    assert result.ret == pytest.ExitCode.OK
    assert "left behind" not in result.stdout.str()


def test_without_the_option_leaks_are_not_checked(pytester: pytest.Pytester, notes: Any) -> None:
    pytester.makepyfile(test_leaky=LEAKY_TESTS)
    result = pytester.runpytest_subprocess(*QUIET, "-k", "pipe", timeout=60)
    assert result.ret == pytest.ExitCode.OK
    assert "left behind" not in result.stdout.str()


def test_leak_in_an_xdist_worker_fails_the_run(pytester: pytest.Pytester, notes: Any) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile(test_leaky=LEAKY_TESTS, test_clean=CLEAN_TESTS)
    result = pytester.runpytest_subprocess(
        "-n", "2", "--procthread-check-leaks", *QUIET,
        "-k", "thread or pipe_closed or plugin_fixtures", timeout=120,
    )
    result.assert_outcomes(passed=4)
    assert result.ret != pytest.ExitCode.OK
    output = result.stdout.str()
    section = output[output.index("procthread: left behind"):]
    assert "thread 'leaky-thread-1f2e'" in section
    assert " in worker gw" in section


# -- the snapshot functions themselves ------------------------------------------------------


def test_compare_names_what_is_new() -> None:
    before = leaks.Snapshot(children={1: "old"}, threads={10: "main"}, fds={3: "/dev/null"})
    after = leaks.Snapshot(
        children={1: "old", 2: "python new"},
        threads={10: "main", 11: "worker"},
        fds={3: "/dev/null", 4: "pipe:[5]", 5: "socket:[6]"},
    )
    assert leaks.compare(before, after) == [
        "process 2 still alive: python new",
        "thread 'worker' (ident 11) still running",
        "file descriptor 4 still open: pipe:[5]",
        "file descriptor 5 still open: socket:[6]",
    ]
    assert leaks.compare(after, after) == []
    # The same number for another file is a new descriptor.
    reused = leaks.Snapshot(children={}, threads={}, fds={3: "/tmp/other"})
    assert leaks.compare(before, reused) == ["file descriptor 3 still open: /tmp/other"]
    # What went away is not a problem.
    assert leaks.compare(after, leaks.Snapshot()) == []


def test_take_sees_threads_and_descriptors() -> None:
    before = leaks.take()
    assert threading.get_ident() in before.threads
    r, w = os.pipe()
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait, args=(10,), name="take-probe")
    worker.start()
    try:
        now = leaks.take()
        problems = leaks.compare(before, now)
        assert any(f"file descriptor {r} still open: pipe:" in p for p in problems)
        assert any(f"file descriptor {w} still open: pipe:" in p for p in problems)
        assert any("thread 'take-probe'" in p for p in problems)
    finally:
        stop.set()
        worker.join(10)
        os.close(r)
        os.close(w)
    assert leaks.compare(before, leaks.take()) == []


def test_settle_gives_ending_threads_a_moment() -> None:
    before = leaks.take()
    go, entered = threading.Event(), threading.Event()

    def ends_when_told() -> None:
        entered.set()
        go.wait(10)

    worker = threading.Thread(target=ends_when_told, name="settle-probe")
    worker.start()
    assert entered.wait(10)
    go.set()  # it is ending; settle() waits for that instead of reporting it
    after = leaks.settle(before, grace=10)
    assert worker.ident not in after.threads
    assert leaks.compare(before, after) == []
    worker.join(10)


def test_multiprocessing_helpers_are_not_counted(isolated_process: Any) -> None:
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        pytest.skip("no forkserver here")
    assert isolated_process.options(start_method="forkserver").run(abs, -1).value == 1
    from multiprocessing import forkserver

    server_pid = forkserver._forkserver._forkserver_pid
    alive_fd = forkserver._forkserver._forkserver_alive_fd
    assert server_pid is not None
    snapshot = leaks.take()
    assert server_pid not in snapshot.children
    assert alive_fd not in snapshot.fds
    pids, fds = leaks._multiprocessing_helpers()
    assert server_pid in pids and alive_fd in fds
