"""What a fresh child (spawn, forkserver) can only get by reference, and unittest cases,
isolated: each behaves as in a plain run, under every start method.

``tests/examples/travel``: a hypothesis-wrapped function and method, decorators with
and without ``functools.wraps``, parametrize values that pickle cannot carry (a stream,
a lock) or would copy (a sentinel compared with ``is``, a function made at import);
``unittest.TestCase`` methods, whose setUp, body and tearDown run in the child; module
and class setups and conftest imports; fixtures that patch with ``monkeypatch``.
"""

from __future__ import annotations

import pytest

from pytest_procthread.runtime import runtime_facts

pytestmark = pytest.mark.timeout(120)

METHODS = runtime_facts().start_methods
FRESH = [m for m in METHODS if m != "fork"]
INNER_ARGS = ("-p", "no:cacheprovider", "--procthread-check-leaks", "-rA")


def run(pytester: pytest.Pytester, example: str, *args: str) -> pytest.RunResult:
    pytester.copy_example(f"travel/{example}")
    return pytester.runpytest_subprocess(*INNER_ARGS, *args)


@pytest.mark.parametrize("method", FRESH)
def test_pieces_found_by_reference(pytester: pytest.Pytester, method: str) -> None:
    result = run(pytester, "test_by_reference.py", "--isolated",
                 f"--procthread-start-method={method}")
    result.assert_outcomes(passed=12)


def test_the_same_tests_pass_without_isolation(pytester: pytest.Pytester) -> None:
    run(pytester, "test_by_reference.py").assert_outcomes(passed=12)


@pytest.mark.parametrize("method", METHODS)
def test_set_ups_and_conftest_imports_reach_the_child(pytester: pytest.Pytester,
                                                      method: str) -> None:
    """A fresh child runs the module's and class's setups itself, and imports the
    conftests first; a fork child inherits what they did."""
    result = run(pytester, "set_up", "--isolated", f"--procthread-start-method={method}")
    result.assert_outcomes(passed=3)


@pytest.mark.parametrize("method", METHODS)
def test_fixtures_monkeypatches_reach_the_child(pytester: pytest.Pytester,
                                                method: str) -> None:
    result = run(pytester, "test_patches.py", "--isolated", f"--procthread-start-method={method}")
    result.assert_outcomes(passed=1)


def test_a_value_that_truly_cannot_travel_says_why(pytester: pytest.Pytester) -> None:
    """Made by a fixture, not written in a marker: no reference, and the message says
    that fork would carry it."""
    pytester.makepyfile(
        """
        import threading
        import pytest

        @pytest.fixture
        def lock():
            return threading.Lock()

        def test_lock(lock):
            pass
        """
    )
    method = FRESH[0]
    result = pytester.runpytest_subprocess(*INNER_ARGS, "--isolated",
                                           f"--procthread-start-method={method}")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        f"*fixture 'lock' cannot travel to the isolated child*started with '{method}'*",
    ])
    assert "start_method='fork'" in result.stdout.str()


@pytest.mark.parametrize("method", METHODS)
def test_unittest_cases_run_in_the_child(pytester: pytest.Pytester, method: str) -> None:
    result = run(pytester, "test_unittest_cases.py", "--isolated",
                 f"--procthread-start-method={method}")
    result.assert_outcomes(passed=3, failed=4, skipped=3, xfailed=1)
    result.stdout.fnmatch_lines_random([
        "PASSED test_unittest_cases.py::Cases::test_runs_in_a_child",
        "PASSED test_unittest_cases.py::Cases::test_1_has_its_set_up_and_damages_the_state",
        "PASSED test_unittest_cases.py::Cases::test_2_damage_stays_in_its_child",
        "FAILED test_unittest_cases.py::Cases::test_failure - AssertionError: 1 != 2",
        "FAILED test_unittest_cases.py::Cases::test_error - KeyError: 'boom'",
        "FAILED test_unittest_cases.py::Cases::test_unexpected_success - Failed: Unexp*",
        "*test_crash*crashed: killed by SIGABRT*",
        "XFAIL test_unittest_cases.py::Cases::test_expected_failure",
        # Reported at the test, as a plain run reports a unittest skip.
        "SKIPPED [[]1[]] test_unittest_cases.py:*: not now",
        "SKIPPED [[]1[]] test_unittest_cases.py:*: inside",
        "SKIPPED [[]1[]] test_unittest_cases.py:*: the whole class",
    ])


def test_unittest_cases_without_isolation(pytester: pytest.Pytester) -> None:
    """The plain run, for comparison: the damage leaks into the next test, and the crash
    would take the run down, so it is left out."""
    result = run(pytester, "test_unittest_cases.py", "-k", "not crash")
    result.assert_outcomes(passed=1, failed=5, skipped=3, xfailed=1, deselected=1)
    result.stdout.fnmatch_lines_random([
        "FAILED *::test_runs_in_a_child - *", "FAILED *::test_2_damage_stays_in_its_child - *",
    ])


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("isolated", [True, False], ids=["isolated", "plain"])
def test_the_plugins_own_fixtures_work_in_the_body(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, method: str, isolated: bool
) -> None:
    """ipc_pipe (under fork the child keeps the test's end, which every other child is
    kept from), isolated_process (under spawn and forkserver a runner of the child's own,
    with the same settings, closed with the body) and sibling_thread."""
    monkeypatch.setenv("EXPECTED_START_METHOD", method)
    args = ["--isolated"] if isolated else []
    result = run(pytester, "test_own_fixtures.py", *args, f"--procthread-start-method={method}")
    result.assert_outcomes(passed=6)
