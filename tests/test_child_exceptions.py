"""What a child raises comes back clearly, whatever it is: exceptions that pickle cannot
carry, long chains, groups, SystemExit, KeyboardInterrupt; a body that exits with
``os._exit(0)``, one that calls ``breakpoint()``; ``--pdb`` on an isolated failure; a
returned value whose unpickling fails in the test process."""

from __future__ import annotations

import sys

import pytest

pytestmark = pytest.mark.timeout(180)

ARGS = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "--procthread-check-leaks")

BODIES = '''
import os
import sys
import threading

import pytest


class NeedsArgs(Exception):
    def __init__(self, a, b):
        super().__init__(f"{a}-{b}")
        self.a, self.b = a, b


class BadReduce(Exception):
    def __reduce__(self):
        raise RuntimeError("no reduce")


class HoldsALock(Exception):
    def __init__(self):
        super().__init__("holds a lock")
        self.lock = threading.Lock()


def test_needs_args():
    raise NeedsArgs(1, 2)


def test_bad_reduce():
    raise BadReduce("reduce fails")


def test_holds_a_lock():
    raise HoldsALock()


def test_long_chain():
    exc = None
    for i in range(120):
        try:
            raise ValueError(f"level {i}") from exc
        except ValueError as e:
            exc = e
    raise exc


def test_group():
    raise ExceptionGroup("two at once", [ValueError("a"), KeyError("b")])


def test_system_exit():
    raise SystemExit(3)


def test_keyboard_interrupt():
    raise KeyboardInterrupt


def test_exit_zero():
    os._exit(0)


def test_breakpoint():
    breakpoint()


def test_last_one_runs():
    pass
'''


@pytest.mark.skipif(sys.version_info < (3, 11), reason="ExceptionGroup is built in from 3.11")
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_every_kind_of_exception_comes_back(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    monkeypatch.setenv("COLUMNS", "300")
    pytester.makepyfile(test_bodies=BODIES)
    result = pytester.runpytest_subprocess(
        *ARGS, "--isolated", f"--procthread-start-method={method}", "-rf", "-l",
        timeout=150,
    )
    # Every test ran: a KeyboardInterrupt in a child does not stop the run.
    result.assert_outcomes(failed=9, passed=1)
    out = result.stdout.str()
    result.stdout.fnmatch_lines_random([
        "FAILED *::test_needs_args - test_bodies.NeedsArgs: 1-2",
        "FAILED *::test_bad_reduce - pytest_procthread.errors.RemoteException: *BadReduce: "
        "reduce fails",
        "FAILED *::test_holds_a_lock - pytest_procthread.errors.RemoteException: "
        "*HoldsALock: holds a lock",
        "FAILED *::test_long_chain - ValueError: level 119",
        "FAILED *::test_group - ExceptionGroup: two at once (2 sub-exceptions)",
        "FAILED *::test_system_exit - SystemExit: 3",
        "FAILED *::test_keyboard_interrupt - pytest_procthread.errors.ChildInterrupted: *",
        "FAILED *::test_exit_zero - Failed: the isolated child running *",
        "FAILED *::test_breakpoint - pytest_procthread.errors.ProcThreadError: breakpoint() "
        "in an isolated test body*",
    ])
    assert "level 0" in out and "level 60" in out  # the whole chain
    assert "KeyboardInterrupt" in out and "Interrupted" not in out.splitlines()[-1]
    assert "BdbQuit" not in out


def test_pdb_works_on_an_isolated_failure(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        def test_fails():
            answer = 41
            assert answer == 42
        """)
    child = pytester.spawn_pytest("-p no:cacheprovider --isolated --pdb", expect_timeout=60)
    child.expect("entering PDB")
    child.expect(r"\(Pdb\)")
    child.sendline("p answer")
    child.expect("41")  # the child's locals, in the test process's debugger
    child.sendline("q")
    rest = child.read().decode()
    assert "1 failed" in rest


RETURNS = '''
import os

PARENT = os.getpid()


class BreaksAtHome:
    def __reduce__(self):
        return (rebuild, (PARENT,))


def rebuild(parent):
    if os.getpid() == parent:
        raise ValueError("cannot be rebuilt in the test process")
    return BreaksAtHome()


def make():
    return BreaksAtHome()


def interrupted():
    raise KeyboardInterrupt


def test_unpickling_fails_in_the_parent(isolated_process):
    outcome = isolated_process.options(start_method="fork").run(make)
    assert not outcome.returned
    assert "cannot be rebuilt in the test process" in str(outcome.exception)


def test_a_keyboard_interrupt_of_a_child_fails_only_its_test(isolated_process):
    outcome = isolated_process.options(start_method="fork").run(interrupted)
    assert isinstance(outcome.exception, KeyboardInterrupt)
    outcome.unwrap()


def test_the_run_went_on():
    pass
'''


def test_values_and_interrupts_through_the_fixture(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "300")
    pytester.makepyfile(test_returns=RETURNS)
    result = pytester.runpytest_subprocess(*ARGS, "-rf", timeout=120)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines([
        "FAILED *::test_a_keyboard_interrupt_of_a_child_fails_only_its_test - "
        "pytest_procthread.errors.ChildInterrupted: *",
    ])
