"""The ``isolated`` marker and ``--isolated``, run for real under every start method.

One inner test file holds every behaviour; it runs once per start method in a pytest
subprocess (crashes and hangs are real), with a JUnit XML report that says, test by test,
what pytest made of it. Spawn and forkserver run twice: through the warm template (the
default) and cold, one fresh interpreter per test.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import psutil
import pytest

from pytest_procthread.runtime import runtime_facts

pytestmark = pytest.mark.timeout(180)

METHODS = runtime_facts().start_methods
INNER_ARGS = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "--procthread-check-leaks")
WAIT = 30.0

CONFTEST = """
import os
import pytest

EVENTS = os.environ["ISO_EVENTS"]


def log(event):
    with open(EVENTS, "a") as f:
        f.write(event + "\\n")


@pytest.fixture(scope="session")
def parent_pid():
    return os.getpid()


@pytest.fixture
def logged(request):
    log(f"setup {request.node.name} {os.getpid()}")
    yield "fixture value"
    log(f"teardown {request.node.name} {os.getpid()}")


@pytest.fixture
def lock():
    import threading

    return threading.Lock()


@pytest.fixture
def env_from_fixture(monkeypatch):
    monkeypatch.setenv("ISO_FIXTURE_ENV", "set by a fixture")


def _rebuild_here_only(pid):
    if os.getpid() != pid:
        raise RuntimeError("this value cannot be rebuilt in another process")
    return FailsInAFreshChild()


class FailsInAFreshChild:
    def __reduce__(self):
        return (_rebuild_here_only, (os.getpid(),))


@pytest.fixture
def rebuild_fails():
    return FailsInAFreshChild()


def pytest_procthread_isolated_crash(item, outcome):
    item.user_properties.append(("crash_hook", outcome.describe()))
    if "skipped_by_hook" in item.name:
        pytest.skip(f"the crash hook skipped it: {outcome.describe()}")
"""

COLD_CONFTEST = """
from pytest_procthread import _template

_template.available = lambda: False  # every child starts cold: a fresh interpreter
"""

INNER = '''
import logging
import os
import sys
import warnings

import pytest

from pytest_procthread import faults

STATE = {"touched": False, "set_in_parent": False}


class CustomError(Exception):
    pass


@pytest.fixture
def mark_parent():
    STATE["set_in_parent"] = True
    yield
    STATE["set_in_parent"] = False


@pytest.mark.isolated
def test_body_runs_in_a_child(parent_pid, logged, tmp_path):
    assert os.getpid() != parent_pid
    assert logged == "fixture value"
    (tmp_path / "written").write_text("by the child")


@pytest.mark.isolated
def test_damages_global_state():
    STATE["touched"] = True
    os.environ["ISO_DAMAGE"] = "1"


def test_state_intact_in_the_test_process():
    assert STATE["touched"] is False and "ISO_DAMAGE" not in os.environ


@pytest.mark.isolated
def test_state_intact_in_the_next_child():
    assert STATE["touched"] is False and "ISO_DAMAGE" not in os.environ


@pytest.mark.isolated
def test_assert_introspection():
    def three():
        return 3

    assert three() == 4


@pytest.mark.isolated
def test_assert_comparison_detail():
    assert [1, 2, 3] == [1, 2, 4]


@pytest.mark.isolated
def test_skip_in_child():
    pytest.skip("skipped in the child")


@pytest.mark.isolated
def test_xfail_in_child():
    pytest.xfail("xfailed in the child")


@pytest.mark.isolated
def test_fail_in_child():
    pytest.fail("failed in the child")


@pytest.mark.isolated
def test_custom_exception():
    raise CustomError("raised in the child")


@pytest.mark.isolated
def test_segfault():
    print("printed before the crash")
    faults.segfault()


@pytest.mark.xfail(reason="it crashes", strict=True)
@pytest.mark.isolated
def test_crash_with_xfail():
    faults.segfault()


@pytest.mark.isolated
def test_exit_status():
    os._exit(3)


@pytest.mark.isolated
def test_abort_skipped_by_hook():
    faults.abort()


@pytest.mark.isolated(timeout=1)
def test_hang_times_out():
    import subprocess

    grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    with open(os.environ["ISO_EVENTS"], "a") as f:
        f.write(f"grandchild {grandchild.pid}\\n")
    faults.hang()


@pytest.mark.isolated
def test_warning_relayed():
    warnings.warn("warned in the child", UserWarning)


@pytest.mark.isolated
def test_warns_and_records_then_crashes(record_property):
    warnings.warn("warned before the crash", UserWarning)
    record_property("before_crash", "7")
    faults.segfault()


@pytest.mark.isolated
def test_recwarn_in_child(recwarn):
    warnings.warn("kept by recwarn", UserWarning)
    assert [str(w.message) for w in recwarn] == ["kept by recwarn"]
    with pytest.warns(DeprecationWarning, match="kept by pytest.warns"):
        warnings.warn("kept by pytest.warns", DeprecationWarning)


@pytest.mark.isolated
def test_warns_then_warning_relayed():
    with pytest.warns(UserWarning, match="checked"):
        warnings.warn("checked in the child", UserWarning)
    warnings.warn("relayed after pytest.warns", UserWarning)


class Unpicklable:
    def __reduce__(self):
        raise TypeError("no")

    def __repr__(self):
        return "<unpicklable extra>"


@pytest.fixture
def logs_seen_by_teardown(caplog):
    yield
    seen = [r.getMessage() for r in caplog.get_records("call")]
    assert "informed in the child" in seen, seen


@pytest.mark.isolated
def test_logs_in_child(logs_seen_by_teardown, caplog):
    caplog.set_level(logging.INFO)
    logging.getLogger("app").info("informed in the child")
    try:
        1 / 0
    except ZeroDivisionError:
        logging.getLogger("app").exception("failed in the child",
                                           extra={"odd": Unpicklable()})
    assert caplog.record_tuples[0] == ("app", logging.INFO, "informed in the child")
    assert "ZeroDivisionError" in caplog.text
    with caplog.at_level(logging.DEBUG, logger="app"):
        logging.getLogger("app").debug("debugged in the child")
    assert caplog.messages[-1] == "debugged in the child"
    assert caplog.get_records("call")[-1].levelno == logging.DEBUG


@pytest.mark.isolated
def test_record_property(record_property):
    record_property("from_child", "42")


@pytest.mark.isolated
def test_capsys_in_child(capsys):
    print("read by the test")
    assert capsys.readouterr().out == "read by the test\\n"
    print("left for the report")
    pytest.fail("show the output")


@pytest.mark.isolated
def test_output_relayed():
    print("stdout of the child")
    os.write(2, b"fd-level stderr of the child\\n")
    pytest.fail("show the output")


@pytest.mark.isolated
def test_returns_a_value():
    return 5


@pytest.mark.isolated
def test_lock_fixture(lock):
    assert lock.acquire(timeout=1)


@pytest.mark.isolated
def test_value_rebuilt_in_the_child(rebuild_fails):
    pass


@pytest.mark.isolated
def test_env_from_fixture(env_from_fixture, monkeypatch):
    assert os.environ["ISO_FIXTURE_ENV"] == "set by a fixture"
    monkeypatch.setenv("ISO_FIXTURE_ENV", "changed in the child")  # undone with the child


@pytest.mark.requires(fork=True)
@pytest.mark.isolated(start_method="fork")
def test_marker_start_method_fork(mark_parent):
    assert STATE["set_in_parent"] is True


@pytest.mark.isolated(start_method="spawn")
def test_marker_start_method_spawn(mark_parent):
    assert STATE["set_in_parent"] is False


class TestInAClass:
    def setup_method(self):
        self.value = 7

    @pytest.mark.isolated
    def test_method(self):
        assert self.value == 7


@pytest.mark.isolated
@pytest.mark.parametrize("n", [1, 2])
def test_parametrized(n):
    assert n in (1, 2)
'''


def junit_results(path: Path) -> dict[str, dict[str, Any]]:
    """Test name -> outcome, message, text, properties, stdout, stderr (JUnit XML)."""
    results = {}
    for case in ET.parse(path).iter("testcase"):
        info: dict[str, Any] = {"outcome": "passed", "message": "", "text": "",
                                "properties": {}, "out": "", "err": ""}
        for child in case:
            if child.tag in ("failure", "error"):
                info.update(outcome=child.tag, message=child.get("message", ""),
                            text=child.text or "")
            elif child.tag == "skipped":
                kind = "xfailed" if child.get("type") == "pytest.xfail" else "skipped"
                info.update(outcome=kind, message=child.get("message", ""),
                            text=child.text or "")
            elif child.tag == "properties":
                info["properties"] = {p.get("name"): p.get("value") for p in child}
            elif child.tag == "system-out":
                info["out"] += child.text or ""
            elif child.tag == "system-err":
                info["err"] += child.text or ""
        classname = case.get("classname", "")
        name = case.get("name", "")
        if classname.endswith("TestInAClass"):
            name = f"TestInAClass.{name}"
        results[name] = info
    return results


def run_inner(
    pytester: pytest.Pytester, method: str, *args: str, cold: bool = False
) -> tuple[pytest.RunResult, dict[str, dict[str, Any]], list[str]]:
    events = pytester.path / "events.txt"
    events.write_text("")
    os.environ["ISO_EVENTS"] = str(events)
    pytester.makeconftest(CONFTEST + (COLD_CONFTEST if cold else ""))
    pytester.makepyfile(test_inner=INNER)
    xml = pytester.path / "junit.xml"
    result = pytester.runpytest_subprocess(
        *INNER_ARGS, f"--procthread-start-method={method}", f"--junitxml={xml}",
        "-o", "junit_logging=all", "-o", "junit_family=legacy", "-rA", *args,
    )
    return result, junit_results(xml), events.read_text().splitlines()


@pytest.fixture
def events_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ISO_EVENTS", "")  # restored after the test; run_inner sets it


def assert_gone(pids: list[int]) -> None:
    """Every process in ``pids`` has ended (bounded wait; survivors are killed, then fail)."""
    procs = []
    for pid in pids:
        try:
            procs.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=WAIT)
    alive = [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]
    for proc in alive:
        proc.kill()
    assert not alive, f"still running: {alive}"


def grandchildren(events: list[str]) -> list[int]:
    return [int(line.split()[1]) for line in events if line.startswith("grandchild ")]


@pytest.mark.parametrize("method", METHODS)
def test_isolated_behaviours(pytester: pytest.Pytester, events_env: None, method: str) -> None:
    result, r, events = run_inner(pytester, method)
    out = result.stdout.str()

    # Fixtures are set up and torn down in the test process; the body ran elsewhere.
    assert r["test_body_runs_in_a_child"]["outcome"] == "passed", r["test_body_runs_in_a_child"]
    fixture_events = [line.split() for line in events if "test_body_runs_in_a_child" in line]
    assert [e[0] for e in fixture_events] == ["setup", "teardown"]
    assert fixture_events[0][2] == fixture_events[1][2]  # the test process, both times
    # Damage to global state stays in the child that did it.
    for name in ("test_damages_global_state", "test_state_intact_in_the_test_process",
                 "test_state_intact_in_the_next_child"):
        assert r[name]["outcome"] == "passed", (name, r[name])

    # Assertion rewriting, introspection and pytest's comparison detail.
    assert "+  where 3 = " in r["test_assert_introspection"]["text"]
    detail = r["test_assert_comparison_detail"]["text"]
    assert "assert [1, 2, 3] == [1, 2, 4]" in detail and "At index 2 diff: 3 != 4" in detail

    # pytest.skip / xfail / fail and other exceptions come back as themselves.
    assert r["test_skip_in_child"]["outcome"] == "skipped"
    assert "skipped in the child" in r["test_skip_in_child"]["message"]
    assert r["test_xfail_in_child"]["outcome"] == "xfailed"
    assert r["test_fail_in_child"]["outcome"] == "failure"
    assert "failed in the child" in r["test_fail_in_child"]["message"]
    assert "CustomError: raised in the child" in r["test_custom_exception"]["text"]

    # A crash: what died, how, the child's stack at the crash, and what it printed.
    segv = r["test_segfault"]
    assert segv["outcome"] == "failure"
    assert "killed by SIGSEGV" in segv["message"]
    assert f"start method {method}" in segv["message"]
    assert "Fatal Python error: Segmentation fault" in segv["text"]
    assert "in test_segfault" in segv["text"]
    assert "printed before the crash" in segv["out"]
    assert "killed by SIGSEGV" in segv["properties"]["crash_hook"]
    assert r["test_crash_with_xfail"]["outcome"] == "xfailed"
    assert "exited with status 3" in r["test_exit_status"]["message"]
    # The crash hook may change the verdict.
    assert r["test_abort_skipped_by_hook"]["outcome"] == "skipped"
    assert "killed by SIGABRT" in r["test_abort_skipped_by_hook"]["message"]

    # A timeout: the stacks at the timeout, the tree stopped, the test failed.
    hang = r["test_hang_times_out"]
    assert hang["outcome"] == "failure"
    assert "did not finish within 1 s" in hang["message"]
    assert "in hang" in hang["text"] and "in test_hang_times_out" in hang["text"]
    assert "timed out" in hang["properties"]["crash_hook"]
    assert_gone(grandchildren(events))  # the child's whole tree was stopped

    # Warnings, record_property, capsys and output, as without isolation.
    assert r["test_warning_relayed"]["outcome"] == "passed"
    assert "UserWarning: warned in the child" in out
    assert r["test_record_property"]["properties"] == {"from_child": "42"}
    # recwarn and pytest.warns keep what they catch; warnings after pytest.warns are relayed.
    assert r["test_recwarn_in_child"]["outcome"] == "passed", r["test_recwarn_in_child"]
    assert "kept by" not in out
    assert r["test_warns_then_warning_relayed"]["outcome"] == "passed"
    assert "UserWarning: relayed after pytest.warns" in out
    assert "checked in the child" not in out
    # Log records reach caplog in the child and pytest's handlers in the test process:
    # the report section (here JUnit's system-out), and caplog in the fixture's teardown.
    logs = r["test_logs_in_child"]
    assert logs["outcome"] == "passed", logs
    assert "INFO     app:test_inner.py" in logs["out"] and "informed in the child" in logs["out"]
    assert "ERROR" in logs["out"] and "ZeroDivisionError: division by zero" in logs["out"]
    assert "debugged in the child" in logs["out"]
    # What the child recorded before it crashed reaches the report all the same.
    crashed = r["test_warns_and_records_then_crashes"]
    assert crashed["outcome"] == "failure" and "killed by SIGSEGV" in crashed["message"]
    assert crashed["properties"]["before_crash"] == "7"
    assert "UserWarning: warned before the crash" in out
    capsys = r["test_capsys_in_child"]
    assert "show the output" in capsys["message"]
    assert "left for the report" in capsys["out"] and "read by the test" not in capsys["out"]
    relayed = r["test_output_relayed"]
    assert "stdout of the child" in relayed["out"]
    assert "fd-level stderr of the child" in relayed["err"]
    assert "returned <class 'int'>" in out  # PytestReturnNotNoneWarning

    # Fixture values travel: pickled under spawn and forkserver, inherited under fork.
    lock = r["test_lock_fixture"]
    if method == "fork":
        assert lock["outcome"] == "passed"
    else:
        assert lock["outcome"] == "failure"
        assert "fixture 'lock' cannot travel to the isolated child" in lock["message"]
        assert "start_method='fork'" in lock["text"]
    rebuilt = r["test_value_rebuilt_in_the_child"]
    if method == "fork":
        assert rebuilt["outcome"] == "passed"
    else:
        assert rebuilt["outcome"] == "failure"
        assert ("could not rebuild fixture 'rebuild_fails': RuntimeError: this value cannot be "
                "rebuilt in another process") in rebuilt["message"]
    assert r["test_env_from_fixture"]["outcome"] == "passed"
    # The marker's start method wins over the command line.
    expected_fork = "passed" if "fork" in METHODS else "skipped"
    assert r["test_marker_start_method_fork"]["outcome"] == expected_fork
    assert r["test_marker_start_method_spawn"]["outcome"] == "passed"
    assert r["TestInAClass.test_method"]["outcome"] == "passed"
    assert r["test_parametrized[1]"]["outcome"] == r["test_parametrized[2]"]["outcome"] == "passed"
    assert len(r) == 32
    fork = method == "fork"
    result.assert_outcomes(passed=16 + 2 * fork, failed=12 - 2 * fork, skipped=2, xfailed=2,
                           warnings=4)


COLD = ("test_body_runs_in_a_child or test_segfault or test_hang "
        "or test_assert_comparison_detail or test_env_from_fixture")


@pytest.mark.parametrize("method", [m for m in METHODS if m != "fork"])
def test_isolated_cold_start(pytester: pytest.Pytester, events_env: None, method: str) -> None:
    """Without the warm template (Windows, busy template): a fresh interpreter per test."""
    result, r, events = run_inner(pytester, method, "-k", COLD, cold=True)
    assert r["test_body_runs_in_a_child"]["outcome"] == "passed"
    assert "killed by SIGSEGV" in r["test_segfault"]["message"]
    assert "in test_segfault" in r["test_segfault"]["text"]
    assert "did not finish within 1 s" in r["test_hang_times_out"]["message"]
    assert "in test_hang_times_out" in r["test_hang_times_out"]["text"]
    assert "At index 2 diff: 3 != 4" in r["test_assert_comparison_detail"]["text"]
    assert r["test_env_from_fixture"]["outcome"] == "passed"
    result.assert_outcomes(passed=2, failed=3)
    assert_gone(grandchildren(events))


def test_isolated_option_isolates_every_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import os
        import pytest

        @pytest.fixture(scope="session")
        def session_pid():
            return os.getpid()

        @pytest.mark.parametrize("i", range(3))
        def test_each(session_pid, i):
            assert os.getpid() != session_pid

        def test_crash():
            os.abort()
        """
    )
    result = pytester.runpytest_subprocess(*INNER_ARGS, "--isolated")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*test_crash*crashed: killed by SIGABRT*"])


@pytest.mark.parametrize("method", METHODS)
def test_output_is_live_with_s(pytester: pytest.Pytester, method: str) -> None:
    """With -s the child's output reaches the terminal while the test runs (it is on the
    terminal before the test's own result), and a crash report carries it too."""
    pytester.makepyfile(
        """
        import os, sys
        import pytest

        @pytest.mark.isolated
        def test_prints():
            print("first line from the child", flush=True)
            sys.stderr.write("error line from the child\\n")

        @pytest.mark.isolated
        def test_crashes():
            print("said before dying", flush=True)
            os.abort()
        """
    )
    result = pytester.runpytest_subprocess(
        *INNER_ARGS, "-s", "-v", f"--procthread-start-method={method}"
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*test_prints first line from the child",
        "PASSED",
        "*crashed: killed by SIGABRT*",
        "--- its stdout (last lines) ---",
        "said before dying",
        "--- its stderr (last lines), with its Python stack at the crash (faulthandler) ---",
        "Fatal Python error: Aborted",
    ])
    assert "error line from the child" in result.stderr.str()


def test_with_xdist(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import os
        import pytest
        from pytest_procthread import faults

        @pytest.mark.parametrize("i", range(6))
        def test_many(i):
            assert i >= 0

        def test_segfault():
            faults.segfault()

        @pytest.mark.isolated(timeout=1)
        def test_hang():
            faults.hang()

        @pytest.mark.isolated(tiemout=1)
        def test_bad_marker():
            pass
        """
    )
    method = "forkserver" if "forkserver" in METHODS else "spawn"
    result = pytester.runpytest_subprocess(
        *INNER_ARGS, "-n", "2", "--isolated", f"--procthread-start-method={method}"
    )
    # A bad marker errors the test in a worker (a usage error there would crash it).
    result.assert_outcomes(passed=6, failed=2, errors=1)
    result.stdout.fnmatch_lines_random([
        "*test_segfault*crashed: killed by SIGSEGV*", "*test_hang*did not finish within 1 s*",
        "*UsageError: unknown argument 'tiemout' in marker @pytest.mark.isolated on *",
    ])


TIMEOUT_CASES = [("signal", "fork"), ("thread", "fork"), ("signal", "spawn")]


@pytest.mark.parametrize(
    ("timeout_method", "method"), [c for c in TIMEOUT_CASES if c[1] in METHODS]
)
def test_with_pytest_timeout(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, timeout_method: str,
    method: str,
) -> None:
    """pytest-timeout, active, ends a hanging isolated test; nothing is left running, and
    the next isolated test runs (through a warm template too)."""
    events = pytester.path / "events.txt"
    monkeypatch.setenv("ISO_EVENTS", str(events))
    pytester.makepyfile(
        """
        import os
        import pytest
        from pytest_procthread import faults

        @pytest.mark.isolated(timeout=60)
        def test_hang():
            with open(os.environ["ISO_EVENTS"], "a") as f:
                f.write(f"grandchild {os.getpid()}\\n")
            faults.hang()

        @pytest.mark.isolated
        def test_after():
            pass
        """
    )
    result = pytester.runpytest_subprocess(
        *INNER_ARGS, "--timeout=1", f"--timeout-method={timeout_method}",
        f"--procthread-start-method={method}",
    )
    if timeout_method == "signal":  # the thread method ends the whole run at once
        result.assert_outcomes(passed=1, failed=1)
    assert "Timeout" in result.stdout.str() + result.stderr.str()
    assert_gone(grandchildren(events.read_text().splitlines()))


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ("isolated(start_method='bogus')", "invalid start method in marker @pytest.mark.isolated"),
        ("isolated(timeout='soon')", "invalid timeout in marker @pytest.mark.isolated"),
        ("isolated(tiemout=3)", "unknown argument 'tiemout' in marker @pytest.mark.isolated"),
        ("isolated('spawn')", "takes keywords only"),
    ],
)
def test_bad_marker_is_a_usage_error(pytester: pytest.Pytester, marker: str, message: str) -> None:
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.{marker}
        def test_x():
            pass
        """
    )
    result = pytester.runpytest(*INNER_ARGS)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()
    assert "test_bad_marker_is_a_usage_error.py::test_x" in result.stderr.str()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="warm templates need fork")
@pytest.mark.parametrize("method", [m for m in METHODS if m != "fork"])
def test_warm_template_isolates(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    """Children of one template are siblings, each from the template's clean state; one
    that crashes, or kills the template itself, fails alone."""
    events = pytester.path / "events.txt"
    monkeypatch.setenv("ISO_EVENTS", str(events))
    pytester.makepyfile(
        """
        import json, os, signal
        import pytest

        COUNTER = []

        def note(**data):
            with open(os.environ["ISO_EVENTS"], "a") as f:
                f.write(json.dumps(data) + "\\n")

        @pytest.mark.isolated
        @pytest.mark.parametrize("i", range(3))
        def test_sibling(i):
            COUNTER.append(i)
            note(test=f"sibling{i}", pid=os.getpid(), ppid=os.getppid(), seen=list(COUNTER))

        @pytest.mark.isolated
        def test_crash():
            os.kill(os.getpid(), signal.SIGKILL)

        @pytest.mark.isolated
        def test_after_crash():
            note(test="after_crash", pid=os.getpid(), ppid=os.getppid(), seen=list(COUNTER))

        @pytest.mark.isolated
        def test_kills_its_template():
            os.kill(os.getppid(), signal.SIGKILL)
            import time
            time.sleep(60)  # stopped by the test process once it sees the template gone

        @pytest.mark.isolated
        def test_after_template_died():
            note(test="after_template", pid=os.getpid(), ppid=os.getppid(), seen=list(COUNTER))
        """
    )
    result = pytester.runpytest_subprocess(*INNER_ARGS, f"--procthread-start-method={method}")
    result.assert_outcomes(passed=5, failed=2)
    result.stdout.fnmatch_lines_random([
        "*test_crash*crashed: killed by SIGKILL*",
        "*test_kills_its_template*the warm template process that started this child died*",
    ])
    notes = {n["test"]: n for n in map(json.loads, events.read_text().splitlines())}
    template = notes["sibling0"]["ppid"]
    assert {notes[f"sibling{i}"]["ppid"] for i in range(3)} == {template}
    assert len({notes[f"sibling{i}"]["pid"] for i in range(3)}) == 3
    assert [notes[f"sibling{i}"]["seen"] for i in range(3)] == [[0], [1], [2]]
    assert notes["after_crash"]["ppid"] == template  # a crash leaves the template alone
    assert notes["after_template"]["ppid"] != template  # a new template took over
    assert notes["after_template"]["seen"] == []
    assert_gone([template])
