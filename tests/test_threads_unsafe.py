"""Tests that cannot run in several threads at once run once, with the reason shown; or
are skipped on request. The detector is also checked on plain functions."""

from __future__ import annotations

import unittest.mock
import warnings
from unittest.mock import patch as aliased_patch

import pytest

from pytest_procthread.threads.unsafe import WARNINGS_PER_THREAD, Detector

pytestmark = pytest.mark.timeout(120)

ARGS = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "--procthread-check-leaks")

HELPERS = '''
import pytest


def expect_warning():
    with pytest.warns(UserWarning):
        import warnings
        warnings.warn("w", UserWarning)


def reset_registry():
    pass
'''

UNSAFE = '''
import sys
import warnings
from unittest import mock
from unittest.mock import patch as p

import pytest

from helpers import expect_warning, reset_registry


def test_capsys(capsys, thread_count):
    assert thread_count == 1
    print("hello")
    assert capsys.readouterr().out == "hello\\n"


def test_monkeypatch(monkeypatch, thread_count):
    assert thread_count == 1
    monkeypatch.setattr(sys, "ps9", "x", raising=False)


def test_catch_warnings(thread_count):
    assert thread_count == 1
    with warnings.catch_warnings():
        pass


def test_aliased_patch(thread_count):
    assert thread_count == 1
    with p("os.getcwd", return_value="/"):
        pass


@mock.patch("os.getpid", return_value=1)
def test_patch_decorator(getpid, thread_count):
    assert thread_count == 1


def test_through_a_helper(thread_count):
    assert thread_count == 1
    expect_warning()


def test_listed_function(thread_count):
    assert thread_count == 1
    reset_registry()


@pytest.mark.thread_unsafe(reason="writes the one config file")
def test_marked(thread_count):
    assert thread_count == 1


def test_listed_fixture(db, thread_count):
    assert thread_count == 1


def test_safe(thread_count):
    assert thread_count == 4
'''

CONFTEST = '''
import pytest


@pytest.fixture
def db():
    return {}
'''

INI = '''[pytest]
procthread_thread_unsafe_fixtures = db
procthread_thread_unsafe_functions =
    helpers.reset_registry
'''


def _project(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(helpers=HELPERS, test_unsafe=UNSAFE)
    pytester.makeconftest(CONFTEST)
    pytester.makeini(INI)
    pytester.syspathinsert()


@pytest.mark.skipif(WARNINGS_PER_THREAD, reason="catching warnings is thread-safe here")
def test_thread_unsafe_tests_run_once_with_the_reason(pytester: pytest.Pytester) -> None:
    _project(pytester)
    result = pytester.runpytest(*ARGS, "-v", "--procthread-threads=4")
    result.assert_outcomes(passed=10)
    result.stdout.fnmatch_lines_random([
        "*::test_capsys PASSED (ran once: uses fixture 'capsys' (output is captured once "
        "for the whole process))*",
        "*::test_monkeypatch PASSED (ran once: uses fixture 'monkeypatch'*",
        "*::test_catch_warnings PASSED (ran once: calls warnings.catch_warnings*",
        "*::test_aliased_patch PASSED (ran once: calls p (unittest.mock.patch: a patch is "
        "process-wide))*",
        "*::test_patch_decorator PASSED (ran once: is decorated with unittest.mock.patch*",
        "*::test_through_a_helper PASSED (ran once: calls pytest.warns (*), through "
        "expect_warning())*",
        "*::test_listed_function PASSED (ran once: calls helpers.reset_registry (listed in "
        "procthread_thread_unsafe_functions))*",
        "*::test_marked PASSED (ran once: marked thread_unsafe: writes the one config file)*",
        "*::test_listed_fixture PASSED (ran once: uses fixture 'db' (listed in "
        "procthread_thread_unsafe_fixtures))*",
        "*::test_safe PASSED (4 threads)*",
    ])
    result.stdout.fnmatch_lines([
        "*= procthread: threads =*",
        "1 test ran in threads (1 in 4 threads); 9 ran once:",
        "  1 ran once: uses fixture 'capsys'*",
        "      test_unsafe.py::test_capsys",
    ])


@pytest.mark.skipif(WARNINGS_PER_THREAD, reason="catching warnings is thread-safe here")
def test_thread_unsafe_tests_can_be_skipped_instead(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    _project(pytester)
    result = pytester.runpytest(*ARGS, "-rs", "--procthread-threads=4",
                                "--procthread-skip-thread-unsafe")
    result.assert_outcomes(passed=1, skipped=9)
    result.stdout.fnmatch_lines([
        "1 test ran in threads (1 in 4 threads); 0 ran once; 9 skipped as thread-unsafe:",
        "  1 skipped: uses fixture 'capsys' (output is captured once for the whole process)",
    ])
    result.stdout.fnmatch_lines([
        "SKIPPED [[]1[]] test_unsafe.py*: thread-unsafe: marked thread_unsafe: writes the one "
        "config file",
    ])


def test_without_a_fan_out_nothing_is_said(pytester: pytest.Pytester) -> None:
    _project(pytester)
    pytester.makepyfile(test_unsafe="def test_capsys(capsys):\n    pass\n")
    result = pytester.runpytest(*ARGS)
    result.assert_outcomes(passed=1)
    assert "procthread: threads" not in result.stdout.str()


def _warns() -> None:
    with pytest.warns(UserWarning):
        warnings.warn("x", UserWarning, stacklevel=2)


def _mock_object() -> None:
    with unittest.mock.patch.object(warnings, "warn"):
        pass


def _aliased() -> None:
    with aliased_patch.dict("os.environ", {}):
        pass


def _harmless() -> None:
    sorted([3, 1, 2])


def test_the_detector_resolves_names_to_objects() -> None:
    detector = Detector()
    if not WARNINGS_PER_THREAD:
        assert detector.of_function(_warns) == (
            "calls pytest.warns (warnings are caught for the whole process (before Python "
            "3.14's context-aware warnings))"
        )
    assert "unittest.mock.patch: a patch is process-wide" in str(detector.of_function(_mock_object))
    assert "aliased_patch.dict" in str(detector.of_function(_aliased))
    assert detector.of_function(_harmless) is None
    assert detector.of_function(len) is None  # no source: nothing to read
