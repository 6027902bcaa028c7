"""What pytest-forked's own test suite checks for ``--forked``, checked for ``--isolated``.

pytest-forked 1.7.5 (testing/test_boxed.py, testing/test_xfail_behavior.py) checks: a test
that kills itself fails and says so, with the option and with the marker; what it printed
is shown under every capture mode (pytest-forked itself fails this under ``sys`` and
``fd``); the message names the signal, or the exit status; an isolated test followed by
others, in the same and another module, tears down cleanly; nothing is isolated by
default; and xfail works on crashing and passing tests, strict or not. Here each holds
under every start method. Written anew, not copied; behaviours that need no separate
pytest run share one.
"""

from __future__ import annotations

import pytest

from pytest_procthread.runtime import runtime_facts

pytestmark = pytest.mark.timeout(120)

ARGS = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "--procthread-check-leaks")


@pytest.fixture(params=runtime_facts().start_methods)
def method(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_crash_with_the_option(pytester: pytest.Pytester, method: str) -> None:
    """--isolated: a test killed by a signal fails, naming the signal; one that exits
    names the status; the others pass."""
    pytester.makepyfile(
        """
        import os, signal

        def test_killed():
            os.kill(os.getpid(), signal.SIGTERM)

        def test_exits():
            os._exit(42)

        def test_passes():
            pass
        """
    )
    result = pytester.runpytest(*ARGS, "--isolated", f"--procthread-start-method={method}")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines_random([
        "*test_killed*crashed: killed by SIGTERM (terminated) after *",
        "*test_exits*crashed: exited with status 42 after *",
    ])


def test_crash_with_the_marker_then_clean_teardown(pytester: pytest.Pytester, method: str) -> None:
    """The marker alone isolates; tests after it, in this and another module, run, and
    fixtures of every scope are torn down in the order they would be without isolation."""
    pytester.makeconftest(
        """
        import pytest

        ORDER = []

        @pytest.fixture(scope="session")
        def session_resource():
            ORDER.append("session up")
            yield
            ORDER.append("session down")
            assert ORDER == [
                "session up", "module up test_a", "module down test_a",
                "module up test_b", "module down test_b", "session down",
            ], ORDER

        @pytest.fixture(scope="module")
        def module_resource(request, session_resource):
            name = request.module.__name__
            ORDER.append(f"module up {name}")
            yield
            ORDER.append(f"module down {name}")
        """
    )
    pytester.makepyfile(
        test_a=f"""
        import os, signal
        import pytest

        def test_plain(module_resource):
            pass

        @pytest.mark.isolated(start_method="{method}")
        def test_killed(module_resource):
            os.kill(os.getpid(), signal.SIGTERM)

        @pytest.mark.isolated(start_method="{method}")
        def test_isolated(module_resource):
            pass
        """,
        test_b="""
        def test_other_module(module_resource):
            pass
        """,
    )
    result = pytester.runpytest(*ARGS)
    result.stdout.fnmatch_lines(["*test_killed*crashed: killed by SIGTERM*",
                                 "*1 failed, 3 passed*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "session_resource" not in result.stdout.str()  # its teardown assertion held


@pytest.mark.parametrize("capture", ["no", "sys", "fd"])
def test_output_of_a_crashed_test_is_shown(
    pytester: pytest.Pytester, method: str, capture: str
) -> None:
    pytester.makepyfile(
        """
        import os, signal, sys

        def test_function():
            sys.stdout.write("hello\\n")
            sys.stderr.write("world\\n")
            os.kill(os.getpid(), signal.SIGTERM)
        """
    )
    result = pytester.runpytest(
        *ARGS, "--isolated", f"--capture={capture}", f"--procthread-start-method={method}"
    )
    result.stdout.fnmatch_lines(["*crashed: killed by SIGTERM*", "*stdout*", "hello",
                                 "*stderr*", "world", "*1 failed*"])


def test_not_isolated_by_default(pytester: pytest.Pytester) -> None:
    config = pytester.parseconfig(pytester.path)
    assert config.getoption("procthread_isolated") is False


def test_xfail(pytester: pytest.Pytester, method: str) -> None:
    """A crash under xfail is an xfail, strict or not; a pass under strict xfail fails
    (XPASS(strict)); under non-strict xfail it is an xpass."""
    cases = {
        "strict_crash": (True, True), "strict_pass": (False, True),
        "lax_crash": (True, False), "lax_pass": (False, False),
    }
    source = ["import os, signal", "import pytest", ""]
    for name, (crashes, strict) in cases.items():
        body = "os.kill(os.getpid(), signal.SIGTERM)" if crashes else "assert True"
        source += [
            f'@pytest.mark.xfail(reason="it crashes", strict={strict})',
            f'@pytest.mark.isolated(start_method="{method}")',
            f"def test_{name}():",
            f"    {body}",
            "",
        ]
    pytester.makepyfile(test_xfail="\n".join(source))
    result = pytester.runpytest(*ARGS, "-ra")
    result.assert_outcomes(xfailed=2, failed=1, xpassed=1)
    result.stdout.fnmatch_lines_random([
        "XFAIL *test_strict_crash - it crashes",
        "FAILED *test_strict_pass*",  # pytest 9 adds the reason; 8.4 does not
        "[[]XPASS(strict)[]] it crashes",
        "XFAIL *test_lax_crash - it crashes",
        "XPASS *test_lax_pass*it crashes",
    ])
