"""``Outcome`` and ``describe_exit``: what happened, said in words, and unwrapped."""

from __future__ import annotations

import signal
import sys
from typing import Any

import pytest

from pytest_procthread import ChildDiedError, ChildTimeoutError, Outcome, describe_exit
from pytest_procthread.errors import ProcThreadError
from pytest_procthread.outcome import NTSTATUS_NAMES, signal_of

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
WAIT = 20.0


# -- describe_exit ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (-11, "killed by SIGSEGV (segmentation fault)"),
        (-6, "killed by SIGABRT (aborted)"),
        (-9, "killed by SIGKILL (killed)"),
        (-15, "killed by SIGTERM (terminated)"),
    ],
)
@posix_only
def test_describe_exit_signals(code: int, text: str) -> None:
    assert describe_exit(code, platform="linux") == text


@posix_only
def test_describe_exit_unknown_signal_number() -> None:
    assert describe_exit(-200, platform="linux") == "killed by signal 200"


@pytest.mark.parametrize("platform", ["linux", "darwin", "win32"])
@pytest.mark.parametrize("code", [0, 1, 7, 70, 255])
def test_describe_exit_positive_codes(code: int, platform: str) -> None:
    assert describe_exit(code, platform=platform) == f"exited with status {code}"


@pytest.mark.parametrize("platform", ["linux", "win32"])
def test_describe_exit_still_running(platform: str) -> None:
    assert describe_exit(None, platform=platform) == "still running"


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (0xC0000005, "exited with 0xC0000005 (access violation)"),
        (0xC00000FD, "exited with 0xC00000FD (stack overflow)"),
        (0xC0000409, "exited with 0xC0000409 (stack buffer overrun / fail-fast (abort))"),
        (0xC000013A, "exited with 0xC000013A (terminated by Ctrl+C)"),
        # The same status as a signed 32-bit number, as some APIs report it.
        (0xC0000005 - (1 << 32), "exited with 0xC0000005 (access violation)"),
        (0xC0000135, "exited with NTSTATUS 0xC0000135"),
        (3, "exited with status 3"),
    ],
)
def test_describe_exit_windows_ntstatus(code: int, text: str) -> None:
    assert describe_exit(code, platform="win32") == text


def test_every_named_ntstatus_is_described() -> None:
    for code, name in NTSTATUS_NAMES.items():
        assert describe_exit(code, platform="win32") == f"exited with 0x{code:08X} ({name})"


def test_describe_exit_defaults_to_this_platform() -> None:
    assert describe_exit(0) == "exited with status 0"


@posix_only
def test_signal_of() -> None:
    assert signal_of(-11) is signal.SIGSEGV
    assert signal_of(-9) is signal.SIGKILL
    assert signal_of(None) is None
    assert signal_of(0) is None
    assert signal_of(3) is None
    assert signal_of(-200) is None


# -- Outcome.describe ---------------------------------------------------------------------


def test_describe_returned() -> None:
    outcome = Outcome(kind="thread", name="t#1", returned=True, value=42, duration=0.5)
    assert outcome.describe() == "thread 't#1' returned 42 after 0.50 s"
    assert repr(outcome) == "<Outcome thread 't#1' returned 42 after 0.50 s>"


def test_describe_returned_without_name_and_long_value() -> None:
    outcome = Outcome(kind="process", returned=True, value="x" * 500, duration=1.234)
    text = outcome.describe()
    assert text.startswith("process returned 'xxx")
    assert "..." in text
    assert text.endswith(" after 1.23 s")
    assert len(text) < 120


def test_describe_survives_a_broken_repr() -> None:
    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    text = Outcome(kind="thread", returned=True, value=Broken()).describe()
    assert "Broken object; repr failed" in text


def test_describe_raised() -> None:
    outcome = Outcome(kind="process", name="p", exception=KeyError("k"), duration=0.25)
    assert outcome.describe() == "process 'p' raised KeyError: 'k' after 0.25 s"


@posix_only
def test_describe_crashed() -> None:
    outcome = Outcome(kind="process", exitcode=-11, crashed=True, duration=0.02)
    assert outcome.describe() == "process killed by SIGSEGV (segmentation fault) after 0.02 s"
    assert outcome.signal is signal.SIGSEGV
    assert Outcome(kind="process", exitcode=7, crashed=True).describe() == (
        "process exited with status 7 after 0.00 s"
    )


def test_describe_exit_zero_without_result() -> None:
    outcome = Outcome(kind="process", exitcode=0)
    assert outcome.describe() == (
        "process exited with status 0 without returning a result after 0.00 s"
    )


def test_describe_nothing_known() -> None:
    assert Outcome(kind="process").describe() == "process has no result"


def test_describe_timed_out_thread() -> None:
    outcome = Outcome(kind="thread", name="t", timed_out=True, timeout=2)
    assert outcome.describe() == "thread 't' still running after 2 s (a thread cannot be killed)"
    assert Outcome(kind="thread", timed_out=True).describe() == (
        "thread still running after its time limit (a thread cannot be killed)"
    )


@posix_only
def test_describe_timed_out_process() -> None:
    outcome = Outcome(kind="process", name="p", timed_out=True, timeout=1.5, exitcode=-15)
    assert outcome.describe() == (
        "process 'p' timed out after 1.5 s: stacks dumped to its stderr, process tree "
        "stopped (killed by SIGTERM (terminated))"
    )


@posix_only
def test_describe_killed() -> None:
    outcome = Outcome(kind="process", name="p", killed=True, exitcode=-9, duration=0.1)
    assert outcome.describe() == (
        "process 'p' was killed by the test (killed by SIGKILL (killed)) after 0.10 s"
    )


# -- unwrap -------------------------------------------------------------------------------


def test_unwrap_returned_value() -> None:
    assert Outcome(kind="thread", returned=True, value=[1]).unwrap() == [1]
    assert Outcome(kind="thread", returned=True, value=None).unwrap() is None


def test_unwrap_raises_the_very_exception() -> None:
    exc = ValueError("original")
    with pytest.raises(ValueError) as info:
        Outcome(kind="process", exception=exc).unwrap()
    assert info.value is exc


def test_unwrap_crashed_raises_child_died_error_with_stderr_tail() -> None:
    stderr = "".join(f"line {i}\n" for i in range(100)) + "Fatal Python error: last words\n"
    outcome = Outcome(kind="process", name="p", exitcode=-6, crashed=True, stderr=stderr)
    with pytest.raises(ChildDiedError) as info:
        outcome.unwrap()
    text = str(info.value)
    assert isinstance(info.value, ProcThreadError)
    assert text.startswith(outcome.describe())
    assert "--- its stderr (last lines) ---" in text
    assert "Fatal Python error: last words" in text
    assert "line 99" in text
    # The last 30 lines: 71..99 and the last words.
    assert "line 71\n" in text
    assert "line 70\n" not in text
    assert "[... 71 earlier lines ...]" in text


def test_unwrap_crashed_without_stderr_has_no_stderr_section() -> None:
    with pytest.raises(ChildDiedError) as info:
        Outcome(kind="process", exitcode=3, crashed=True, stderr="  \n").unwrap()
    assert "stderr" not in str(info.value)
    assert "exited with status 3" in str(info.value)


def test_unwrap_timed_out_raises_child_timeout_error() -> None:
    outcome = Outcome(kind="process", timed_out=True, timeout=1, exitcode=-15,
                      stderr="Thread 0x1 (most recent call first):\n  File x, line 1 in hang\n")
    with pytest.raises(ChildTimeoutError) as info:
        outcome.unwrap()
    assert isinstance(info.value, TimeoutError)
    assert "timed out after 1 s" in str(info.value)
    assert "line 1 in hang" in str(info.value)


def test_unwrap_timed_out_even_with_a_value() -> None:
    outcome = Outcome(kind="thread", returned=True, value=1, timed_out=True, timeout=1)
    assert outcome.ok is False
    with pytest.raises(ChildTimeoutError):
        outcome.unwrap()


# -- observed -----------------------------------------------------------------------------


def test_an_outcome_without_exception_is_observed() -> None:
    assert Outcome(kind="thread", returned=True, value=1).observed is True
    assert Outcome(kind="process", exitcode=-9, crashed=True).observed is True


@pytest.mark.parametrize(
    "look",
    [
        lambda o: o.exception,
        lambda o: o.traceback,
        lambda o: o.raised,
        lambda o: o.ok,
        lambda o: o.describe(),
        lambda o: repr(o),
    ],
    ids=["exception", "traceback", "raised", "ok", "describe", "repr"],
)
def test_looking_at_the_exception_marks_it_observed(look: Any) -> None:
    outcome = Outcome(kind="thread", exception=ValueError("v"), traceback="tb")
    assert outcome.observed is False
    look(outcome)
    assert outcome.observed is True


def test_unwrap_marks_it_observed() -> None:
    outcome = Outcome(kind="thread", exception=ValueError("v"))
    with pytest.raises(ValueError):
        outcome.unwrap()
    assert outcome.observed is True


def test_fields_that_do_not_count_as_looking() -> None:
    outcome = Outcome(kind="thread", exception=ValueError("v"), exitcode=None, pid=1)
    for name in ("returned", "value", "crashed", "timed_out", "exitcode", "signal", "pid",
                 "stderr", "stdout", "duration", "kind", "name"):
        getattr(outcome, name)
    assert outcome.observed is False


def test_raised_and_ok() -> None:
    assert Outcome(kind="thread", exception=ValueError()).raised is True
    assert Outcome(kind="thread", returned=True).raised is False
    assert Outcome(kind="thread", returned=True).ok is True
    assert Outcome(kind="process", exitcode=-9, crashed=True).ok is False


# -- with real children -------------------------------------------------------------------


def last_words_then_exit(code: int) -> None:
    import os

    sys.stderr.write("child's last words before exiting\n")
    sys.stderr.flush()
    os._exit(code)


def waits_for_ever(end: Any) -> None:
    import threading

    sys.stderr.write("about to wait\n")
    end.send("waiting")
    threading.Event().wait(WAIT * 3)


def returns(value: Any) -> Any:
    return value


def test_real_child_died_error_carries_the_stderr_tail(isolated_process: Any) -> None:
    outcome = isolated_process.run(last_words_then_exit, 5)
    assert outcome.crashed and outcome.exitcode == 5
    with pytest.raises(ChildDiedError, match="exited with status 5") as info:
        outcome.unwrap()
    assert "child's last words before exiting" in str(info.value)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_real_child_timeout_error_shows_where_it_was_stuck(
    isolated_process: Any, ipc_pipe: Any, method: str
) -> None:
    runner = isolated_process.options(start_method=method)
    handle = runner.start(waits_for_ever, ipc_pipe.child)
    # Time out only once it is really waiting (a spawned child may take long to start).
    assert ipc_pipe.parent.recv(timeout=WAIT) == "waiting"
    outcome = handle.join(timeout=0.5)
    assert outcome.timed_out
    with pytest.raises(ChildTimeoutError) as info:
        outcome.unwrap()
    text = str(info.value)
    assert "timed out after 0.5 s" in text
    assert "about to wait" in text, outcome.stderr
    assert "no result after 0.5 s; dumping the stacks" in text
    # Under fork the dump goes on with the test process's own stack (pytest's frames),
    # inherited by the child; they are folded so that the tail still shows the child's.
    assert "in waits_for_ever" in text
    assert "frames below the child's entry point" in text
    assert "_pytest" not in text


@posix_only
def test_real_child_died_error_shows_where_it_crashed(isolated_process: Any) -> None:
    from pytest_procthread import faults

    outcome = isolated_process.options(start_method="fork").run(faults.segfault)
    with pytest.raises(ChildDiedError, match="killed by SIGSEGV") as info:
        outcome.unwrap()
    assert "Fatal Python error: Segmentation fault" in str(info.value)
    assert "in segfault" in str(info.value)


def test_folding_keeps_everything_but_the_frames_below_the_entry() -> None:
    from pytest_procthread.stacks import fold_below_entry
    dump = "\n".join([
        "before",
        "Current thread 0x1 (most recent call first):",
        '  File "/x/threading.py", line 331 in wait',
        '  File "/t/test_a.py", line 4 in target',
        '  File "/p/child/main.py", line 287 in child_main',
        '  File "/m/process.py", line 108 in run',
        '  File "/v/_pytest/main.py", line 387 in _main',
        "",
        "Thread 0x2 (most recent call first):",
        '  File "/p/child/main.py", line 287 in child_main',
        "",
        "Traceback (most recent call last):",
        '  File "/p/child/main.py", line 287, in child_main',
        '  File "/t/test_a.py", line 5, in after',
        "after",
    ])
    folded = fold_below_entry(dump).splitlines()
    assert folded == [
        "before",
        "Current thread 0x1 (most recent call first):",
        '  File "/x/threading.py", line 331 in wait',
        '  File "/t/test_a.py", line 4 in target',
        '  File "/p/child/main.py", line 287 in child_main',
        "  [... 2 frames below the child's entry point ...]",
        "",
        "Thread 0x2 (most recent call first):",
        '  File "/p/child/main.py", line 287 in child_main',
        "",
        "Traceback (most recent call last):",
        '  File "/p/child/main.py", line 287, in child_main',
        '  File "/t/test_a.py", line 5, in after',
        "after",
    ]
    # The entry point and one frame under it at the very end of the text.
    end = "\n".join(["x", *dump.splitlines()[4:6]])
    assert fold_below_entry(end).splitlines()[-1] == (
        "  [... 1 frame below the child's entry point ...]"
    )


def test_real_child_returned_and_raised(isolated_process: Any) -> None:
    assert isolated_process.run(returns, {"v": 1}).unwrap() == {"v": 1}
    outcome = isolated_process.run(int, "not a number")
    assert outcome.observed is False
    with pytest.raises(ValueError, match="invalid literal"):
        outcome.unwrap()
    assert outcome.observed is True
