"""isolated_process given what it cannot use: where does it fail, and how clearly?

The shape follows loky's crash matrix: an object that raises, exits or crashes at each
stage of the journey (pickled in the parent, unpickled in the child, the result pickled
in the child, the result unpickled in the parent), under every start method. Whatever
happens, start() or join() answers at once and never hangs.
"""

from __future__ import annotations

import math
import multiprocessing
import signal
import sys
import threading
from pathlib import Path

import psutil
import pytest

from pytest_procthread import faults
from pytest_procthread.errors import NotPicklableError, ProcThreadError
from pytest_procthread.process import ProcessRunner

pytestmark = pytest.mark.timeout(120)

METHODS = ["fork", "forkserver", "spawn"]
PICKLING = ["forkserver", "spawn"]  # the start methods that pickle the call
WAIT = 30.0


def direct_children() -> set[int]:
    """Our own children, minus multiprocessing's long-lived helpers."""
    found = set()
    for child in psutil.Process().children():
        try:
            command = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if "resource_tracker" not in command and "forkserver" not in command:
            found.add(child.pid)
    return found


# -- targets


def take(*args, **kwargs):
    return "took it"


def consume(items):
    return sum(items)


def write_to(stream):
    stream.write("written by the child")
    stream.flush()
    return "wrote"


def return_lock():
    return threading.Lock()


def return_generator():
    return (i for i in range(3))


# -- the crash matrix


def _act(stage: str, kind: str) -> None:
    if kind == "error":
        raise RuntimeError(f"deliberate error in {stage}")
    if kind == "exit":
        sys.exit(7)
    faults.segfault()


class Fault:
    """Raises, exits or crashes when ``stage`` reaches it: a dump- stage when it is
    pickled, a load- stage when it is unpickled."""

    def __init__(self, stage: str, kind: str) -> None:
        self.stage = stage
        self.kind = kind

    def __reduce__(self):
        if self.stage.startswith("dump"):
            _act(self.stage, self.kind)
        return (_rebuild_fault, (self.stage, self.kind))

    def __repr__(self) -> str:
        return f"Fault({self.stage!r}, {self.kind!r})"


def _rebuild_fault(stage: str, kind: str) -> Fault:
    if stage.startswith("load"):
        _act(stage, kind)
    return Fault(stage, kind)


def give_fault(stage, kind):
    return Fault(stage, kind)


KINDS = ["error", "exit", "crash"]


# A crash while pickling in the test process would end the test process: not in the matrix.
CALL_CASES = [
    (stage, kind)
    for stage in ("dump-call", "load-call")
    for kind in KINDS
    if (stage, kind) != ("dump-call", "crash")
]


@pytest.mark.parametrize(("stage", "kind"), CALL_CASES)
def test_call_stages(runner: ProcessRunner, method: str, stage: str, kind: str) -> None:
    if method == "fork":  # nothing is pickled: the child gets the object itself
        assert runner.run(take, Fault(stage, kind)).value == "took it"
        return
    if stage == "dump-call":
        before = direct_children()
        if kind == "exit":
            # The test's own code called sys.exit(): that is not the child's business.
            with pytest.raises(SystemExit):
                runner.start(take, Fault(stage, kind))
        else:
            with pytest.raises(NotPicklableError) as info:
                runner.start(take, Fault(stage, kind))
            assert info.value.what == "argument 0"
            assert info.value.start_method == method
            assert "RuntimeError: deliberate error in dump-call" in str(info.value)
        assert direct_children() == before, "nothing may have been started"
        return

    outcome = runner.run(take, Fault(stage, kind))
    assert not outcome.returned and not outcome.timed_out
    if kind == "crash":
        assert outcome.crashed and outcome.signal == signal.SIGSEGV, outcome.describe()
        assert "_rebuild_fault" in outcome.stderr
        return
    exc = outcome.exception
    assert type(exc) is ProcThreadError, outcome.describe()
    assert "could not unpickle the call" in str(exc)
    assert repr(method) in str(exc)
    cause = "SystemExit: 7" if kind == "exit" else "RuntimeError: deliberate error in load-call"
    assert cause in str(exc)
    assert outcome.exitcode == 1


@pytest.mark.parametrize("kind", KINDS)
def test_result_cannot_be_pickled_in_the_child(runner: ProcessRunner, kind: str) -> None:
    outcome = runner.run(give_fault, "dump-result", kind)

    assert not outcome.returned and not outcome.timed_out
    if kind == "crash":
        assert outcome.crashed and outcome.signal == signal.SIGSEGV, outcome.describe()
        assert "__reduce__" in outcome.stderr
        return
    exc = outcome.exception
    assert isinstance(exc, NotPicklableError), outcome.describe()
    assert exc.what == "the return value"
    assert "returned Fault('dump-result'" in str(exc)
    cause = "SystemExit: 7" if kind == "exit" else "RuntimeError: deliberate error in dump-result"
    assert cause in str(exc)


# A crash while unpickling in the parent would end the test process: not in the matrix.
@pytest.mark.parametrize("kind", ["error", "exit"])
def test_result_cannot_be_unpickled_in_the_parent(runner: ProcessRunner, kind: str) -> None:
    handle = runner.start(give_fault, "load-result", kind)
    outcome = handle.join()

    exc = outcome.exception
    assert type(exc) is ProcThreadError, outcome.describe()
    assert "could not be unpickled in the parent" in str(exc)
    cause = "SystemExit: 7" if kind == "exit" else "RuntimeError: deliberate error in load-result"
    assert cause in str(exc)
    assert not outcome.returned and outcome.exitcode == 0
    assert handle.join() is outcome  # the handle is finished, not left half-way


# -- what cannot be pickled at all


@pytest.mark.parametrize("what", ["lock", "generator"])
def test_unpicklable_return_value(runner: ProcessRunner, what: str) -> None:
    outcome = runner.run(return_lock if what == "lock" else return_generator)

    exc = outcome.exception
    assert isinstance(exc, NotPicklableError), outcome.describe()
    assert exc.what == "the return value"
    assert "the target returned" in str(exc) and "cannot be pickled" in str(exc)
    assert ("_thread.lock" if what == "lock" else "generator") in str(exc)
    assert "Return plain data" in str(exc)
    with pytest.raises(NotPicklableError):
        outcome.unwrap()


def test_unpicklable_target(runner: ProcessRunner, method: str) -> None:
    lock = threading.Lock()

    def closes_over_a_lock():
        return lock.locked()

    if method == "fork":
        assert runner.run(closes_over_a_lock).value is False
        return
    before = direct_children()
    with pytest.raises(NotPicklableError) as info:
        runner.start(closes_over_a_lock)
    exc = info.value
    assert exc.what == "the target" and exc.start_method == method
    assert isinstance(exc, TypeError)
    message = str(exc)
    assert f"cannot send the target to a child started with {method!r}" in message
    assert "closes_over_a_lock" in message and "cannot be pickled" in message
    assert "start_method='fork'" in message  # what to do
    assert direct_children() == before


def test_unpicklable_arguments(runner: ProcessRunner, method: str, tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    with open(path, "w") as stream:
        if method == "fork":  # inherited as they are: both work
            assert runner.run(consume, (i for i in range(4))).value == 6
            assert runner.run(write_to, stream=stream).value == "wrote"
            assert path.read_text() == "written by the child"
            return
        before = direct_children()
        with pytest.raises(NotPicklableError) as info:
            runner.start(consume, (i for i in range(4)))
        assert info.value.what == "argument 0"
        message = str(info.value)
        assert f"cannot send argument 0 to a child started with {method!r}" in message
        assert "generator" in message and "start_method='fork'" in message

        with pytest.raises(NotPicklableError) as info:
            runner.start(take, 1, stream=stream)
        assert info.value.what == "keyword argument 'stream'"
        message = str(info.value)
        assert "cannot send keyword argument 'stream'" in message
        assert "a path rather than an open file" in message
        assert direct_children() == before


@pytest.mark.parametrize("method", PICKLING)
def test_multiprocessing_object_of_another_start_method(
    isolated_process: ProcessRunner, method: str
) -> None:
    runner = isolated_process.options(start_method=method, timeout=WAIT)
    lock = multiprocessing.get_context("fork").Lock()
    if not hasattr(lock, "_is_fork_ctx"):
        # Before CPython 3.11 (and on PyPy 3.9) multiprocessing lets such a lock through,
        # and it works in the child: nothing to refuse.
        assert runner.run(take, lock).returned
        return
    before = direct_children()
    with pytest.raises(NotPicklableError) as info:
        runner.start(take, lock)
    assert info.value.start_method == method
    assert "isolated_process.context" in str(info.value)
    assert direct_children() == before


@pytest.mark.parametrize("target", [42, None, "print"], ids=["int", "None", "str"])
def test_non_callable_target(runner: ProcessRunner, target: object) -> None:
    before = direct_children()
    with pytest.raises(TypeError, match="needs a callable first") as info:
        runner.start(target)  # type: ignore[arg-type]
    assert not isinstance(info.value, NotPicklableError)
    with pytest.raises(TypeError, match="pass the function itself"):
        runner.run(target)  # type: ignore[arg-type]
    assert direct_children() == before


# -- bad settings


def hold(event):
    return event.wait(WAIT)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"start_method": "bogus"}, r"invalid start method in isolated_process.options\(\)"),
        ({"start_method": 3}, r"invalid start method in isolated_process.options\(\)"),
        ({"timeout": 0}, r"invalid timeout in isolated_process.options\(\): 0;"),
        ({"timeout": -1}, r"invalid timeout in isolated_process.options\(\): -1;"),
        ({"timeout": "abc"}, r"'abc' is not a number of seconds"),
        ({"timeout": math.inf}, r"positive, finite number"),
        ({"timeout": math.nan}, r"positive, finite number"),
    ],
)
def test_bad_options(isolated_process: ProcessRunner, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        isolated_process.options(**kwargs)


def test_bad_timeouts_on_a_handle(isolated_process: ProcessRunner) -> None:
    runner = isolated_process.options(start_method="fork", timeout=WAIT)
    release = runner.context.Event()
    handle = runner.start(hold, release)
    with pytest.raises(ValueError, match=r"invalid timeout in join\(\)"):
        handle.join(timeout=-1)
    with pytest.raises(ValueError, match=r"invalid timeout in wait\(\)"):
        handle.wait(timeout="soon")  # type: ignore[arg-type]
    assert handle.is_alive()
    release.set()
    assert handle.join().value is True


@pytest.mark.parametrize(
    ("args", "ini", "message"),
    [
        (["--procthread-timeout=abc"], "",
         "*invalid timeout in option --procthread-timeout: 'abc' is not a number of seconds*"),
        (["--procthread-timeout=0"], "",
         "*invalid timeout in option --procthread-timeout: '0'; it must be a positive*"),
        (["--procthread-timeout=-1"], "",
         "*invalid timeout in option --procthread-timeout: '-1'; it must be a positive*"),
        (["--procthread-timeout=inf"], "",
         "*invalid timeout in option --procthread-timeout: 'inf'; it must be a positive, "
         "finite number of seconds (every wait here is bounded)*"),
        (["--procthread-timeout=nan"], "",
         "*invalid timeout in option --procthread-timeout: 'nan'; it must be a positive*"),
        ([], "procthread_timeout = -1",
         "*invalid timeout in ini key procthread_timeout: '-1'; it must be a positive*"),
        (["--procthread-start-method=bogus"], "",
         "*invalid start method in option --procthread-start-method: 'bogus'; choose one of*"),
        ([], "procthread_start_method = threads",
         "*invalid start method in ini key procthread_start_method: 'threads'; choose one of*"),
    ],
    ids=["option-timeout-text", "option-timeout-zero", "option-timeout-negative",
         "option-timeout-inf", "option-timeout-nan", "ini-timeout", "option-method",
         "ini-method"],
)
def test_bad_settings_are_usage_errors(
    pytester: pytest.Pytester, args: list[str], ini: str, message: str
) -> None:
    if ini:
        pytester.makeini(f"[pytest]\n{ini}\n")
    pytester.makepyfile("def test_never_runs(): pass")
    result = pytester.runpytest(*args, "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    result.stdout.no_fnmatch_line("*test_never_runs*PASSED*")
