"""The ``isolated`` marker and ``--isolated``, run for real under every start method.

The inner suite (``tests/examples/isolated``: one test per behaviour) runs once per start
method in a pytest subprocess, so crashes and hangs are real, with a JUnit XML report
that says, test by test, what pytest made of it. Each check below reads one behaviour
from that report, so that one failing behaviour does not hide the others. The run is
made by a module-scoped fixture, not by ``pytester`` (which is function-scoped): one
inner run feeds some thirty checks. Spawn and forkserver also run cold (one fresh
interpreter per test), on a part of the suite.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import psutil
import pytest

from pytest_procthread.runtime import runtime_facts

pytestmark = pytest.mark.timeout(180)

METHODS = runtime_facts().start_methods
INNER_ARGS = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "--procthread-check-leaks")
WAIT = 30.0
EXAMPLES = Path(__file__).parent / "examples" / "isolated"
INNER_RUN_LIMIT = 170.0  # seconds; a run takes a few


@dataclass
class InnerRun:
    """One run of the inner suite: pytest's exit status and output, the JUnit results
    by test name, and the events the fixtures and tests wrote."""

    status: int
    out: str
    results: dict[str, dict[str, Any]]
    events: list[str]


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


def run_inner(directory: Path, method: str, *args: str, cold: bool = False) -> InnerRun:
    """Run the inner suite in ``directory`` (a copy of the examples) under ``method``."""
    for example in ("conftest.py", "test_inner.py", "cold_start.py"):
        shutil.copy(EXAMPLES / example, directory / example)
    events = directory / "events.txt"
    events.write_text("")
    xml = directory / "junit.xml"
    command = [
        sys.executable, "-m", "pytest", *INNER_ARGS, f"--procthread-start-method={method}",
        f"--junitxml={xml}", "-o", "junit_logging=all", "-o", "junit_family=legacy", "-rA",
        *(("-p", "cold_start") if cold else ()), *args,
    ]
    # As pytester runs pytest: no inherited options, no colours, a base temp of its own.
    env = {name: value for name, value in os.environ.items()
           if name != "PYTEST_ADDOPTS" and not name.startswith("PYTEST_XDIST")}
    env.update(ISO_EVENTS=str(events), PY_COLORS="0")
    done = subprocess.run(
        [*command, f"--basetemp={directory / 'basetemp'}"], cwd=directory, env=env,
        capture_output=True, text=True, timeout=INNER_RUN_LIMIT, check=False,
    )
    results = junit_results(xml) if xml.exists() else {}
    return InnerRun(done.returncode, done.stdout + done.stderr, results,
                    events.read_text().splitlines())


@pytest.fixture(scope="module")
def inner_runs(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], InnerRun]:
    """The inner suite's run under a start method, made once per module and method."""
    runs: dict[str, InnerRun] = {}

    def get(method: str) -> InnerRun:
        if method not in runs:
            runs[method] = run_inner(tmp_path_factory.mktemp(f"inner-{method}"), method)
        return runs[method]

    return get


@pytest.fixture(params=METHODS)
def inner(request: pytest.FixtureRequest, inner_runs: Callable[[str], InnerRun]) -> InnerRun:
    run = inner_runs(request.param)
    assert run.results, f"the inner run wrote no report:\n{run.out[-3000:]}"
    return run


def outcome(run: InnerRun, name: str) -> dict[str, Any]:
    assert name in run.results, f"{name} did not run:\n{run.out[-3000:]}"
    return run.results[name]


def method_of(request: pytest.FixtureRequest) -> str:
    return str(request.node.callspec.params["inner"])


def expected_outcomes(method: str) -> dict[str, str]:
    """What pytest must make of each inner test under ``method``."""
    fork = method == "fork"
    travels = "passed" if fork else "failure"  # a lock, a value rebuilt only here
    return {
        "test_body_runs_in_a_child": "passed",
        "test_damages_global_state": "passed",
        "test_state_intact_in_the_test_process": "passed",
        "test_state_intact_in_the_next_child": "passed",
        "test_assert_introspection": "failure",
        "test_assert_comparison_detail": "failure",
        "test_skip_in_child": "skipped",
        "test_xfail_in_child": "xfailed",
        "test_fail_in_child": "failure",
        "test_custom_exception": "failure",
        "test_segfault": "failure",
        "test_crash_with_xfail": "xfailed",
        "test_exit_status": "failure",
        "test_abort_skipped_by_hook": "skipped",
        "test_hang_times_out": "failure",
        "test_warning_relayed": "passed",
        "test_warns_and_records_then_crashes": "failure",
        "test_recwarn_in_child": "passed",
        "test_warns_then_warning_relayed": "passed",
        "test_logs_in_child": "passed",
        "test_record_property": "passed",
        "test_capsys_in_child": "failure",
        "test_output_relayed": "failure",
        "test_returns_a_value": "passed",
        "test_lock_fixture": travels,
        "test_value_rebuilt_in_the_child": travels,
        "test_env_from_fixture": "passed",
        "test_marker_start_method_fork": "passed" if "fork" in METHODS else "skipped",
        "test_marker_start_method_spawn": "passed",
        "TestInAClass.test_method": "passed",
        "test_parametrized[1]": "passed",
        "test_parametrized[2]": "passed",
    }


def test_every_inner_test_ends_as_expected(inner: InnerRun, request: pytest.FixtureRequest) -> None:
    got = {name: info["outcome"] for name, info in inner.results.items()}
    assert got == expected_outcomes(method_of(request))


def test_fixtures_run_in_the_test_process_the_body_in_a_child(inner: InnerRun) -> None:
    assert outcome(inner, "test_body_runs_in_a_child")["outcome"] == "passed"
    fixture_events = [line.split() for line in inner.events if "test_body_runs_in_a_child" in line]
    assert [e[0] for e in fixture_events] == ["setup", "teardown"]
    assert fixture_events[0][2] == fixture_events[1][2]  # the test process, both times


@pytest.mark.parametrize("name", ["test_damages_global_state",
                                  "test_state_intact_in_the_test_process",
                                  "test_state_intact_in_the_next_child"])
def test_damage_to_global_state_stays_in_its_child(inner: InnerRun, name: str) -> None:
    assert outcome(inner, name)["outcome"] == "passed", outcome(inner, name)


def test_assertions_are_rewritten_and_explained(inner: InnerRun) -> None:
    assert "+  where 3 = " in outcome(inner, "test_assert_introspection")["text"]
    detail = outcome(inner, "test_assert_comparison_detail")["text"]
    assert "assert [1, 2, 3] == [1, 2, 4]" in detail and "At index 2 diff: 3 != 4" in detail


def test_skip_xfail_fail_and_exceptions_come_back_as_themselves(inner: InnerRun) -> None:
    assert "skipped in the child" in outcome(inner, "test_skip_in_child")["message"]
    assert outcome(inner, "test_xfail_in_child")["outcome"] == "xfailed"
    assert "failed in the child" in outcome(inner, "test_fail_in_child")["message"]
    assert "CustomError: raised in the child" in outcome(inner, "test_custom_exception")["text"]


def test_a_crash_says_what_died_how_and_where(inner: InnerRun,
                                              request: pytest.FixtureRequest) -> None:
    segv = outcome(inner, "test_segfault")
    assert "killed by SIGSEGV" in segv["message"]
    assert f"start method {method_of(request)}" in segv["message"]
    assert "Fatal Python error: Segmentation fault" in segv["text"]
    assert "in test_segfault" in segv["text"]
    assert "printed before the crash" in segv["out"]
    assert "killed by SIGSEGV" in segv["properties"]["crash_hook"]


def test_a_crash_under_xfail_is_xfailed(inner: InnerRun) -> None:
    assert outcome(inner, "test_crash_with_xfail")["outcome"] == "xfailed"


def test_an_exit_status_is_named(inner: InnerRun) -> None:
    assert "exited with status 3" in outcome(inner, "test_exit_status")["message"]


def test_the_crash_hook_may_change_the_verdict(inner: InnerRun) -> None:
    aborted = outcome(inner, "test_abort_skipped_by_hook")
    assert aborted["outcome"] == "skipped"
    assert "killed by SIGABRT" in aborted["message"]


def test_a_timeout_dumps_the_stacks_and_stops_the_tree(inner: InnerRun) -> None:
    hang = outcome(inner, "test_hang_times_out")
    assert "did not finish within 1 s" in hang["message"]
    assert "in hang" in hang["text"] and "in test_hang_times_out" in hang["text"]
    assert "timed out" in hang["properties"]["crash_hook"]
    assert_gone(grandchildren(inner.events))  # the child's whole tree was stopped


def test_warnings_are_relayed(inner: InnerRun) -> None:
    assert "UserWarning: warned in the child" in inner.out


def test_recwarn_and_pytest_warns_keep_what_they_catch(inner: InnerRun) -> None:
    assert outcome(inner, "test_recwarn_in_child")["outcome"] == "passed"
    assert "kept by" not in inner.out
    assert "UserWarning: relayed after pytest.warns" in inner.out
    assert "checked in the child" not in inner.out


def test_log_records_reach_caplog_and_the_report(inner: InnerRun) -> None:
    logs = outcome(inner, "test_logs_in_child")
    assert logs["outcome"] == "passed", logs
    assert "INFO     app:test_inner.py" in logs["out"] and "informed in the child" in logs["out"]
    assert "ERROR" in logs["out"] and "ZeroDivisionError: division by zero" in logs["out"]
    assert "debugged in the child" in logs["out"]


def test_record_property_reaches_the_report(inner: InnerRun) -> None:
    assert outcome(inner, "test_record_property")["properties"] == {"from_child": "42"}


def test_what_a_child_recorded_before_crashing_is_kept(inner: InnerRun) -> None:
    crashed = outcome(inner, "test_warns_and_records_then_crashes")
    assert "killed by SIGSEGV" in crashed["message"]
    assert crashed["properties"]["before_crash"] == "7"
    assert "UserWarning: warned before the crash" in inner.out


def test_capsys_reads_the_child_and_takes_what_it_read(inner: InnerRun) -> None:
    capsys = outcome(inner, "test_capsys_in_child")
    assert "show the output" in capsys["message"]
    assert "left for the report" in capsys["out"] and "read by the test" not in capsys["out"]


def test_output_is_relayed_down_to_the_descriptors(inner: InnerRun) -> None:
    relayed = outcome(inner, "test_output_relayed")
    assert "stdout of the child" in relayed["out"]
    assert "fd-level stderr of the child" in relayed["err"]


def test_a_returned_value_is_warned_about(inner: InnerRun) -> None:
    assert "returned <class 'int'>" in inner.out  # PytestReturnNotNoneWarning


def test_fixture_values_travel_or_say_why_not(inner: InnerRun,
                                              request: pytest.FixtureRequest) -> None:
    lock = outcome(inner, "test_lock_fixture")
    rebuilt = outcome(inner, "test_value_rebuilt_in_the_child")
    if method_of(request) == "fork":  # inherited
        assert lock["outcome"] == rebuilt["outcome"] == "passed"
        return
    assert "fixture 'lock' cannot travel to the isolated child" in lock["message"]
    assert "start_method='fork'" in lock["text"]
    assert ("could not rebuild fixture 'rebuild_fails': RuntimeError: this value cannot be "
            "rebuilt in another process") in rebuilt["message"]


def test_the_environment_is_the_test_process(inner: InnerRun) -> None:
    assert outcome(inner, "test_env_from_fixture")["outcome"] == "passed"


def test_the_markers_start_method_wins(inner: InnerRun) -> None:
    expected_fork = "passed" if "fork" in METHODS else "skipped"
    assert outcome(inner, "test_marker_start_method_fork")["outcome"] == expected_fork
    assert outcome(inner, "test_marker_start_method_spawn")["outcome"] == "passed"


def test_methods_and_parametrized_tests_are_isolated(inner: InnerRun) -> None:
    assert outcome(inner, "TestInAClass.test_method")["outcome"] == "passed"
    assert outcome(inner, "test_parametrized[1]")["outcome"] == "passed"
    assert outcome(inner, "test_parametrized[2]")["outcome"] == "passed"


def test_the_inner_run_left_nothing_behind(inner: InnerRun) -> None:
    assert "procthread: left behind" not in inner.out


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


COLD = ("test_body_runs_in_a_child or test_segfault or test_hang "
        "or test_assert_comparison_detail or test_env_from_fixture")


@pytest.mark.parametrize("method", [m for m in METHODS if m != "fork"])
def test_isolated_cold_start(tmp_path: Path, method: str) -> None:
    """Without the warm template (Windows, busy template): a fresh interpreter per test."""
    run = run_inner(tmp_path, method, "-k", COLD, cold=True)
    r = run.results
    assert {name: info["outcome"] for name, info in r.items()} == {
        "test_body_runs_in_a_child": "passed", "test_env_from_fixture": "passed",
        "test_segfault": "failure", "test_hang_times_out": "failure",
        "test_assert_comparison_detail": "failure",
    }
    assert "killed by SIGSEGV" in r["test_segfault"]["message"]
    assert "in test_segfault" in r["test_segfault"]["text"]
    assert "did not finish within 1 s" in r["test_hang_times_out"]["message"]
    assert "in test_hang_times_out" in r["test_hang_times_out"]["text"]
    assert "At index 2 diff: 3 != 4" in r["test_assert_comparison_detail"]["text"]
    assert_gone(grandchildren(run.events))


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


@pytest.mark.skipif(not hasattr(os, "fork"), reason="warm templates need fork")
@pytest.mark.parametrize("method", [m for m in METHODS if m != "fork"])
def test_a_template_that_dies_while_starting_a_child(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    """The template takes the job and dies before it says whether the child started: the
    test fails as lost, and its body is not run a second time in a fresh child."""
    events = pytester.path / "events.txt"
    monkeypatch.setenv("ISO_EVENTS", str(events))
    pytester.makepyfile(
        """
        import os, signal, multiprocessing
        import pytest

        # Imported by the first template as it takes the first job: it dies there, once.
        FIRST = os.path.join(os.path.dirname(os.environ["ISO_EVENTS"]), "killed-once")
        if multiprocessing.parent_process() is not None and not os.path.exists(FIRST):
            open(FIRST, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)

        def note(what):
            with open(os.environ["ISO_EVENTS"], "a") as f:
                f.write(what + "\\n")

        @pytest.mark.isolated
        def test_first():
            note("first ran")

        @pytest.mark.isolated
        def test_second():
            note("second ran")
        """
    )
    result = pytester.runpytest_subprocess(*INNER_ARGS, f"--procthread-start-method={method}")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*test_first*(pid unknown, start method *) ended without a result: the warm template "
        "process that started this child died*",
    ])
    assert events.read_text().splitlines() == ["second ran"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="warm templates need fork")
@pytest.mark.parametrize("method", [m for m in METHODS if m != "fork"])
def test_the_warm_template_starts_with_the_session(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    """Under --isolated with spawn or forkserver the template starts at session start, so
    that its start-up overlaps collection; it is stopped at the end even when no test
    used it (the leak check is on)."""
    notes = pytester.path / "children.txt"
    monkeypatch.setenv("ISO_CHILDREN", str(notes))
    pytester.makeconftest(
        """
        import os
        import psutil

        def pytest_collection_finish(session):
            with open(os.environ["ISO_CHILDREN"], "w") as f:
                f.write(str(len(psutil.Process().children(recursive=True))))
        """
    )
    pytester.makepyfile(
        """
        import pytest

        def test_skipped():
            pytest.skip("no test forks")
        """
    )
    result = pytester.runpytest_subprocess(*INNER_ARGS, "--isolated",
                                           f"--procthread-start-method={method}")
    result.assert_outcomes(skipped=1)
    assert int(notes.read_text()) >= 1
