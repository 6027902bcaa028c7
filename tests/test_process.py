"""isolated_process: the everyday contract, checked for real under fork, forkserver and spawn.

Every wait here is bounded (WAIT, or the runner's own timeout); children are held and
released with events and pipes, never with sleeps.
"""

from __future__ import annotations

import ctypes
import json
import multiprocessing
import os
import sys
import traceback

import pytest

from pytest_procthread import faults
from pytest_procthread.errors import ChildDiedError, ProcThreadError, RemoteException
from pytest_procthread.process import ProcessHandle, ProcessRunner
from pytest_procthread.process.handle import OUTPUT_KEPT
from pytest_procthread.runtime import runtime_facts

pytestmark = pytest.mark.timeout(120)

METHODS = ["fork", "forkserver", "spawn"]
WAIT = 30.0  # the bound of every wait; a passing run takes a small fraction of it
BIG = 100 * 1024 * 1024


# -- targets (module level, so that spawn and forkserver children import them by name)


def echo(*args, **kwargs):
    return args, kwargs


def wait_then_report(release):
    if not release.wait(WAIT):
        raise TimeoutError("the test never released this child")
    return os.getpid()


def raise_value_error(text):
    raise ValueError(text)


def call_sys_exit(code):
    sys.exit(code)


def write_everywhere(crash):
    libc = ctypes.CDLL(None)
    print("py-print-stdout")
    print("py-print-stderr", file=sys.stderr)
    os.write(1, b"fd-write-1\n")
    os.write(2, b"fd-write-2\n")
    libc.printf(b"c-printf-stdout\n")
    libc.puts(b"c-puts-stdout")
    if crash:
        faults.segfault()
    return "wrote"


def flood_stdout(total):
    chunk = b"0123456789abcdef" * 65536  # 1 MiB
    left = total
    while left:
        n = os.write(1, chunk[: min(left, len(chunk))])
        left -= n
    return total


def big_value(size):
    return b"\xab" * size


def start_method_seen_by_child():
    return [
        multiprocessing.get_start_method(allow_none=True),
        multiprocessing.current_process().name,
        os.getpid(),
    ]


def use_multiprocessing_objects(queue, value, lock, event):
    with lock:
        value.value += 41
    queue.put(("from child", os.getpid()))
    event.set()
    return value.value


class TwoArgsError(Exception):
    """Its __init__ takes two arguments, but args holds only the message."""

    def __init__(self, a, b):
        super().__init__(f"{a} and {b}")
        self.a = a
        self.b = b


class KeywordOnlyError(Exception):
    def __init__(self, message, *, code):
        super().__init__(message)
        self.code = code


class HoldsALockError(Exception):
    """Cannot be pickled at all: one of its attributes is a lock."""

    def __init__(self, message):
        super().__init__(message)
        import threading

        self.lock = threading.Lock()


def raise_custom(kind):
    if kind == "two-args":
        raise TwoArgsError(1, 2)
    if kind == "keyword-only":
        raise KeywordOnlyError("kw", code=5)
    raise HoldsALockError("has a lock")


# -- results and values


def test_value_round_trip(runner: ProcessRunner, method: str) -> None:
    # fn= reaches the target too: start()'s own first parameter is positional-only
    outcome = runner.run(echo, 1, "two", [3.5, None], key={"k": (4, b"\x00")}, fn="kw")

    assert outcome.returned and outcome.ok
    assert outcome.value == ((1, "two", [3.5, None]), {"key": {"k": (4, b"\x00")}, "fn": "kw"})
    assert outcome.exception is None and outcome.traceback == ""
    assert outcome.exitcode == 0 and outcome.signal is None
    assert not (outcome.crashed or outcome.timed_out or outcome.killed)
    assert outcome.start_method == method and outcome.kind == "process"
    assert outcome.duration > 0
    assert outcome.unwrap() == outcome.value
    assert "returned" in outcome.describe()


def test_local_callables_lambdas_and_closures(runner: ProcessRunner) -> None:
    factor = 6

    def times(x):
        return x * factor

    class Local:
        def __init__(self, n):
            self.n = n

    def make_local(n):
        return Local(n)

    assert runner.run(lambda x: x + 1, 41).value == 42
    assert runner.run(times, 7).value == 42
    assert runner.run(lambda: [times(i) for i in range(3)]).value == [0, 6, 12]
    local = runner.run(make_local, 3).value
    assert type(local).__name__ == "Local" and local.n == 3


def test_large_return_value(runner: ProcessRunner) -> None:
    outcome = runner.run(big_value, BIG)
    assert outcome.returned, outcome.describe()
    assert len(outcome.value) == BIG
    assert outcome.value.count(b"\xab") == BIG


# -- exceptions and exits


def test_exception_reraisable_with_child_frames(runner: ProcessRunner) -> None:
    outcome = runner.run(raise_value_error, "bad input")

    exc = outcome.exception
    assert isinstance(exc, ValueError) and str(exc) == "bad input"
    frames = [frame.name for frame in traceback.extract_tb(exc.__traceback__)]
    assert "raise_value_error" in frames
    assert "raise_value_error" in outcome.traceback
    assert "ValueError: bad input" in outcome.traceback
    assert not outcome.returned and not outcome.crashed and outcome.exitcode == 1
    assert "raised ValueError: bad input" in outcome.describe()
    with pytest.raises(ValueError, match="bad input") as info:
        outcome.unwrap()
    assert "raise_value_error" in [f.name for f in traceback.extract_tb(info.value.__traceback__)]
    with pytest.raises(ValueError):
        raise outcome.exception


@pytest.mark.parametrize("kind", ["two-args", "keyword-only", "holds-a-lock"])
def test_custom_exception_comes_back(runner: ProcessRunner, kind: str) -> None:
    outcome = runner.run(raise_custom, kind)

    exc = outcome.exception
    assert exc is not None, outcome.describe()
    expected = {
        "two-args": (TwoArgsError, "1 and 2"),
        "keyword-only": (KeywordOnlyError, "kw"),
        "holds-a-lock": (HoldsALockError, "has a lock"),
    }[kind]
    if isinstance(exc, RemoteException):
        assert exc.type_name.endswith(expected[0].__qualname__)
        assert expected[1] in str(exc)
        assert "raise_custom" in exc.traceback_text
    else:
        assert type(exc) is expected[0] and str(exc) == expected[1]
    if kind == "holds-a-lock":
        assert isinstance(exc, RemoteException), "a lock cannot have been pickled"
    assert "raise_custom" in [f.name for f in traceback.extract_tb(exc.__traceback__)]
    assert "raise_custom" in outcome.traceback


def test_sys_exit_in_child(runner: ProcessRunner) -> None:
    outcome = runner.run(call_sys_exit, 3)

    assert outcome.exitcode == 3 and outcome.signal is None
    assert isinstance(outcome.exception, SystemExit) and outcome.exception.code == 3
    assert not outcome.returned and not outcome.crashed
    with pytest.raises(SystemExit):
        outcome.unwrap()


def test_hard_exit_is_a_crash(runner: ProcessRunner) -> None:
    outcome = runner.run(faults.hard_exit, 5)

    assert outcome.crashed and outcome.exitcode == 5 and outcome.signal is None
    assert outcome.exception is None and not outcome.returned
    assert "exited with status 5" in outcome.describe()
    with pytest.raises(ChildDiedError, match="exited with status 5"):
        outcome.unwrap()


def test_hard_exit_zero_is_no_result(runner: ProcessRunner) -> None:
    outcome = runner.run(faults.hard_exit, 0)

    assert outcome.exitcode == 0 and not outcome.returned and outcome.exception is None
    assert "without returning a result" in outcome.describe()
    with pytest.raises(ChildDiedError, match="without returning a result"):
        outcome.unwrap()


# -- output


@pytest.mark.parametrize("crash", [False, True], ids=["returns", "crashes"])
def test_output_captured_at_fd_level(runner: ProcessRunner, crash: bool) -> None:
    outcome = runner.run(write_everywhere, crash)

    if crash:
        assert outcome.crashed, outcome.describe()
    else:
        assert outcome.value == "wrote", outcome.describe()
    for line in ("py-print-stdout", "fd-write-1", "c-printf-stdout", "c-puts-stdout"):
        assert line in outcome.stdout.splitlines(), (line, outcome.stdout)
    for line in ("py-print-stderr", "fd-write-2"):
        assert line in outcome.stderr.splitlines(), (line, outcome.stderr)
    assert "c-printf" not in outcome.stderr and "py-print-stderr" not in outcome.stdout


def test_c_level_output_survives_without_pythonunbuffered(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PYTHONUNBUFFERED=1 makes CPython unbuffer the C library's stdout at startup, which
    # would hide a lost stdio buffer; a run without it shows what users without it get.
    monkeypatch.delenv("PYTHONUNBUFFERED", raising=False)
    pytester.makepyfile(
        test_c_output="""
        import ctypes
        import pytest
        from pytest_procthread import faults

        def printf_then(crash):
            libc = ctypes.CDLL(None)
            libc.printf(b"c-printf-line\\n")
            libc.puts(b"c-puts-line")
            if crash:
                faults.segfault()
            return 1

        @pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
        @pytest.mark.parametrize("crash", [False, True])
        def test_c_output(isolated_process, method, crash):
            outcome = isolated_process.options(start_method=method).run(printf_then, crash)
            assert outcome.crashed is crash, outcome.describe()
            assert outcome.stdout.splitlines() == ["c-printf-line", "c-puts-line"]
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=120)
    result.assert_outcomes(passed=6)


def test_hundred_megabytes_of_stdout(runner: ProcessRunner) -> None:
    outcome = runner.run(flood_stdout, BIG)

    assert outcome.value == BIG, outcome.describe()
    # Nothing blocks, and the Outcome keeps the first and last 16 MiB (OUTPUT_KEPT).
    assert len(outcome.stdout) < OUTPUT_KEPT + 200
    assert outcome.stdout.startswith("0123456789abcdef") and outcome.stdout.endswith("cdef")
    assert f"it was {BIG:,} bytes, of which the first and last" in outcome.stdout


# -- the handle


def test_handle_lifecycle(runner: ProcessRunner, method: str) -> None:
    release = runner.context.Event()
    handle = runner.start(wait_then_report, release)

    assert isinstance(handle, ProcessHandle)
    assert handle.is_alive()
    text = repr(handle)
    assert f"pid={handle.pid}" in text and method in text and "alive" in text
    assert handle.wait(0.05) is False  # held by the event: a bounded wait times out
    assert handle.is_alive()

    release.set()
    assert handle.wait(WAIT) is True
    outcome = handle.join()
    assert outcome.value == handle.pid == outcome.pid
    assert not handle.is_alive()
    assert "finished" in repr(handle)
    assert handle.join() is outcome
    assert handle.join(timeout=0.01) is outcome
    assert handle.wait(0.01) is True
    assert handle.kill() is outcome and not outcome.killed


def test_run_many_children_are_distinct(runner: ProcessRunner) -> None:
    handles = [runner.start(start_method_seen_by_child) for _ in range(3)]
    outcomes = [h.join() for h in handles]
    pids = {o.value[2] for o in outcomes}
    assert pids == {h.pid for h in handles} and len(pids) == 3
    assert os.getpid() not in pids


def test_closed_runner_refuses_to_start() -> None:
    runner = ProcessRunner(start_method="fork", timeout=WAIT)
    assert runner.run(echo, 1).value == ((1,), {})
    runner.close()
    runner.close()  # idempotent
    with pytest.raises(ProcThreadError, match="closed"):
        runner.start(echo)
    with pytest.raises(ProcThreadError, match="closed"):
        runner.options(start_method="spawn").start(echo)


# -- start methods


def what_multiprocessing_shows_the_child():
    parent = multiprocessing.parent_process()
    return {
        "parent_pid": parent.pid if parent is not None else None,
        "current_pid": multiprocessing.current_process().pid,
        "stdin": sys.stdin.read() if sys.stdin is not None else None,
        "gc_enabled": __import__("gc").isenabled(),
    }


def test_multiprocessing_state_in_the_child_is_a_childs(runner: ProcessRunner) -> None:
    """What code in the child reads from multiprocessing is what a multiprocessing child
    would read, whichever way the child was started (fork starts it without
    multiprocessing)."""
    outcome = runner.run(what_multiprocessing_shows_the_child)
    seen = outcome.unwrap()
    assert seen["parent_pid"] == os.getpid()
    assert seen["current_pid"] == outcome.pid
    assert seen["stdin"] in ("", None)  # /dev/null, never the test's terminal
    assert seen["gc_enabled"] is True


def test_start_method_reaches_the_child(runner: ProcessRunner, method: str) -> None:
    assert runner.start_method == method
    assert runner.context.get_start_method() == method
    outcome = runner.run(start_method_seen_by_child)
    seen_method, process_name, _ = outcome.unwrap()
    assert outcome.start_method == method
    assert seen_method == method
    assert process_name.startswith("procthread:start_method_seen_by_child")


def test_options_keep_the_other_setting(isolated_process: ProcessRunner) -> None:
    fixture_settings = (isolated_process.start_method, isolated_process.timeout)
    custom = isolated_process.options(start_method="spawn", timeout=5.0)
    assert (custom.start_method, custom.timeout) == ("spawn", 5.0)
    assert custom.context.get_start_method() == "spawn"
    again = custom.options(timeout=7)
    assert (again.start_method, again.timeout) == ("spawn", 7.0)
    other = custom.options(start_method="fork")
    assert (other.start_method, other.timeout) == ("fork", 5.0)
    assert (isolated_process.start_method, isolated_process.timeout) == fixture_settings


PRECEDENCE_TEST = """
import json, multiprocessing, pathlib

def seen():
    return multiprocessing.get_start_method(allow_none=True)

def test_record(isolated_process):
    outcome = isolated_process.run(seen)
    custom = isolated_process.options(start_method="fork").run(seen)
    pathlib.Path(__file__).with_name("seen.json").write_text(json.dumps({
        "runner": isolated_process.start_method,
        "outcome": outcome.start_method,
        "child": outcome.unwrap(),
        "custom": [custom.start_method, custom.unwrap()],
        "timeout": isolated_process.timeout,
    }))
"""


@pytest.mark.parametrize(
    ("ini", "args", "expected_method", "expected_timeout"),
    [
        ({}, [], None, 60.0),
        ({"procthread_start_method": "forkserver", "procthread_timeout": "7"}, [],
         "forkserver", 7.0),
        ({"procthread_start_method": "forkserver", "procthread_timeout": "7"},
         ["--procthread-start-method=spawn", "--procthread-timeout=3.5"], "spawn", 3.5),
        ({}, ["--procthread-start-method", "default"], None, 60.0),
    ],
    ids=["default", "ini", "option-beats-ini", "option-default"],
)
def test_settings_precedence(
    pytester: pytest.Pytester,
    ini: dict[str, str],
    args: list[str],
    expected_method: str | None,
    expected_timeout: float,
) -> None:
    if ini:
        pytester.makeini("[pytest]\n" + "".join(f"{k} = {v}\n" for k, v in ini.items()))
    pytester.makepyfile(test_precedence=PRECEDENCE_TEST)
    result = pytester.runpytest(*args, "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    seen = json.loads((pytester.path / "seen.json").read_text())
    method = expected_method or runtime_facts().default_start_method
    assert seen == {
        "runner": method,
        "outcome": method,
        "child": method,
        "custom": ["fork", "fork"],  # per call beats option and ini
        "timeout": expected_timeout,
    }


# -- multiprocessing objects


def test_multiprocessing_objects_as_arguments(runner: ProcessRunner) -> None:
    ctx = runner.context
    queue, value, lock, event = ctx.Queue(), ctx.Value("i", 1), ctx.Lock(), ctx.Event()
    try:
        handle = runner.start(use_multiprocessing_objects, queue, value, lock, event)
        assert event.wait(WAIT)
        message, pid = queue.get(timeout=WAIT)
        outcome = handle.join()
        assert outcome.value == 42, outcome.describe()
        assert (message, pid) == ("from child", handle.pid)
        assert value.value == 42
        with lock:  # released by the child
            pass
    finally:
        queue.close()
        queue.join_thread()
        del queue, value, lock, event


def test_module_level_target_under_import_mode_importlib(pytester: pytest.Pytester) -> None:
    pytester.mkpydir("pkg_less_dir").joinpath("__init__.py").unlink()
    pytester.path.joinpath("pkg_less_dir", "test_imported.py").write_text(
        "def target():\n"
        "    return 42\n"
        "\n"
        "def test_spawn(isolated_process):\n"
        "    outcome = isolated_process.options(start_method='spawn', timeout=30).run(target)\n"
        "    assert outcome.value == 42, outcome.describe()\n"
    )
    result = pytester.runpytest("--import-mode=importlib", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
