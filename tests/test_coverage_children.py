"""Coverage of code run in children, as the README's "Coverage of code run in children" says.

An inner project, ``pkg``, has functions that only children run: ``run_a``/``run_b`` by
``isolated_process.run`` (``test_run.py``), ``body_a``/``body_b`` by test bodies under
``--isolated`` (``test_body.py``). The inner run is measured as a user would measure it
(pytest-cov; ``coverage run -m pytest`` then ``coverage report``, or with ``-n 2``
``coverage combine`` first), under each start method, with and without ``-n 2``, and the
terminal report must count exactly the lines the children ran: the lines of the other
mode's functions are the only ones missing. Then what is kept of a child that times out
or calls ``os._exit``, and what is lost of one that crashes. Without the change, every
function body here is reported missing.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from pathlib import Path

import pytest

from pytest_procthread.process import ProcessRunner
from pytest_procthread.process import coverage as parent_side
from pytest_procthread.runtime import runtime_facts

coverage = pytest.importorskip("coverage", reason="coverage is not installed")
if not hasattr(coverage.config.CoverageConfig, "serialize"):
    pytest.skip("coverage >= 7.10.3 hands its configuration to children; this one cannot",
                allow_module_level=True)

pytestmark = pytest.mark.timeout(300)

METHODS = runtime_facts().start_methods
INNER_ARGS = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "--procthread-check-leaks")
INNER_RUN_LIMIT = 240.0  # seconds; a run takes a few

WORK = """\
def run_a(x):
    return x + 1


def run_b(x):
    return x + 2


def body_a(x):
    return x * 2


def body_b(x):
    return x * 3
"""
RUN_LINES, BODY_LINES = "2, 6", "10, 14"  # what each mode's functions run in children

TEST_RUN = """\
from pkg import work


def test_a(isolated_process):
    assert isolated_process.run(work.run_a, 1).value == 2


def test_b(isolated_process):
    assert isolated_process.run(work.run_b, 1).value == 3
"""
TEST_BODY = """\
from pkg import work


def test_a():
    assert work.body_a(2) == 4


def test_b():
    assert work.body_b(2) == 6
"""

# Run in children that end badly. Each function's first line is what a report can keep.
FAULTY = """\
from pytest_procthread import faults


def then_hang(end):
    end.send("hanging")
    faults.hang()


def then_hang_alone():
    hung = True
    faults.hang()


def then_exit():
    exiting = True
    faults.hard_exit(3)


def then_abort():
    aborting = True
    faults.abort()


def then_segfault():
    faulting = True
    faults.segfault()
"""
HANG, HANG_ALONE, EXIT, ABORT, SEGFAULT = "5-6", "10-11", "15-16", "20-21", "25-26"
TEST_FAULTY = """\
from pkg import faulty


def test_timeout(isolated_process, ipc_pipe):
    child = isolated_process.start(faulty.then_hang, ipc_pipe.child)
    assert ipc_pipe.parent.recv(timeout=60) == "hanging"
    assert child.join(timeout=0.1).timed_out  # stopped as at its timeout: SIGTERM first


def test_os_exit(isolated_process):
    assert isolated_process.run(faulty.then_exit).exitcode == 3


def test_abort(isolated_process):
    assert isolated_process.run(faulty.then_abort).crashed


def test_segfault(isolated_process):
    assert isolated_process.run(faulty.then_segfault).crashed
"""
TEST_ISOLATED_HANG = """\
import pytest

from pkg import faulty


# Long enough for the body to get to its first line under load; it then hangs.
@pytest.mark.isolated(timeout=3)
def test_isolated_timeout():
    faulty.then_hang_alone()
"""

# A child that forks a multiprocessing child of its own: that one saves the child's
# measurement at its os._exit, into a file of its own (not the child's).
FORKS = """\
import multiprocessing


def in_grandchild():
    ran = True


def fork_one():
    process = multiprocessing.get_context("fork").Process(target=in_grandchild)
    process.start()
    process.join(30)
    return process.exitcode
"""
TEST_FORKS = """\
from pkg import forks


def test_forks(isolated_process):
    assert isolated_process.run(forks.fork_one).value == 0
"""

pytest_cov = pytest.mark.skipif(
    importlib.util.find_spec("pytest_cov") is None, reason="pytest-cov is not installed"
)


def method_param(method: str) -> object:
    return pytest.param(method, marks=pytest.mark.skipif(
        method not in METHODS, reason=f"no start method {method!r} here"))


ALL_METHODS = [method_param(m) for m in ("fork", "forkserver", "spawn")]
XDIST = [pytest.param((), id="serial"), pytest.param(("-n", "2"), id="xdist")]
MODES = ["run", "isolated"]


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """The inner project, measured only as each test says (nothing from this process)."""
    for name in list(os.environ):
        if name.startswith(("COVERAGE_", "COV_CORE_")):
            monkeypatch.delenv(name)
    package = pytester.mkpydir("pkg")
    (package / "work.py").write_text(WORK)
    (package / "faulty.py").write_text(FAULTY)
    (package / "forks.py").write_text(FORKS)
    pytester.makepyfile(test_run=TEST_RUN, test_body=TEST_BODY, test_faulty=TEST_FAULTY,
                        test_isolated_hang=TEST_ISOLATED_HANG, test_forks=TEST_FORKS)
    return pytester


def mode_args(mode: str) -> tuple[str, ...]:
    return ("test_run.py",) if mode == "run" else ("--isolated", "test_body.py")


def missing_lines(output: str, module: str) -> str:
    """The Missing column of ``module`` in a terminal report (``-m`` / term-missing)."""
    pattern = rf"^pkg[/\\]{module}\.py[ \t]+\d+[ \t]+\d+[ \t]+\d+%[ \t]*(.*)$"
    found = re.search(pattern, output, re.MULTILINE)
    assert found is not None, f"no line for pkg/{module}.py in the report:\n{output}"
    return found.group(1).strip()


def expected_missing(mode: str) -> str:
    """The lines no child of this mode runs: those of the other mode's functions."""
    return BODY_LINES if mode == "run" else RUN_LINES


def run_checked(project: pytest.Pytester, *command: str) -> pytest.RunResult:
    result = project.run(*command, timeout=INNER_RUN_LIMIT)
    assert result.ret == 0, f"{command}:\n{result.stdout.str()}\n{result.stderr.str()}"
    return result


def left_behind(project: pytest.Pytester) -> list[str]:
    """Data files left next to the inner run's own: none, once combined."""
    return sorted(p.name for p in project.path.glob(".coverage.*"))


# -- pytest-cov --------------------------------------------------------------------------


@pytest_cov
@pytest.mark.parametrize("xdist", XDIST)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", ALL_METHODS)
def test_pytest_cov_counts_what_children_ran(
    project: pytest.Pytester, method: str, mode: str, xdist: tuple[str, ...]
) -> None:
    result = project.runpytest_subprocess(
        *INNER_ARGS, "--cov=pkg", "--cov-report=term-missing",
        f"--procthread-start-method={method}", *xdist, *mode_args(mode),
        timeout=INNER_RUN_LIMIT,
    )
    result.assert_outcomes(passed=2)
    assert missing_lines(result.stdout.str(), "work") == expected_missing(mode)
    assert left_behind(project) == []


# -- coverage run -------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", ALL_METHODS)
def test_coverage_run_counts_what_children_ran(
    project: pytest.Pytester, method: str, mode: str
) -> None:
    """No configuration: the children's data is in .coverage when pytest ends."""
    run_checked(project, sys.executable, "-m", "coverage", "run", "-m", "pytest",
                *INNER_ARGS, f"--procthread-start-method={method}", *mode_args(mode))
    assert left_behind(project) == []
    report = run_checked(project, sys.executable, "-m", "coverage", "report", "-m")
    assert missing_lines(report.stdout.str(), "work") == expected_missing(mode)


@pytest.mark.skipif("fork" not in METHODS, reason="no fork here")
def test_coverage_run_counts_what_grandchildren_ran(project: pytest.Pytester) -> None:
    """An isolated body (under fork it has the fixture) whose children run ``run_a`` and
    ``run_b``: they write their files as children of the test process do, which combines
    them."""
    run_checked(project, sys.executable, "-m", "coverage", "run", "-m", "pytest",
                *INNER_ARGS, "--procthread-start-method=fork", "--isolated", "test_run.py")
    assert left_behind(project) == []
    report = run_checked(project, sys.executable, "-m", "coverage", "report", "-m")
    assert missing_lines(report.stdout.str(), "work") == BODY_LINES


@pytest.mark.skipif("fork" not in METHODS, reason="no fork here")
@pytest.mark.parametrize("method", ALL_METHODS)
def test_coverage_run_counts_what_a_childs_own_fork_ran(
    project: pytest.Pytester, method: str
) -> None:
    run_checked(project, sys.executable, "-m", "coverage", "run", "-m", "pytest",
                *INNER_ARGS, f"--procthread-start-method={method}", "test_forks.py")
    assert left_behind(project) == []
    report = run_checked(project, sys.executable, "-m", "coverage", "report", "-m")
    assert missing_lines(report.stdout.str(), "forks") == ""


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", ALL_METHODS)
def test_coverage_run_with_xdist_counts_what_children_ran(
    project: pytest.Pytester, method: str, mode: str
) -> None:
    """xdist's workers are subprocesses: coverage measures them (and through them our
    children) with its ``subprocess`` patch, and their data is combined."""
    pytest.importorskip("xdist", reason="pytest-xdist is not installed")
    (project.path / ".coveragerc").write_text("[run]\npatch = subprocess\n")
    run_checked(project, sys.executable, "-m", "coverage", "run", "-m", "pytest", "-n", "2",
                *INNER_ARGS, f"--procthread-start-method={method}", *mode_args(mode))
    run_checked(project, sys.executable, "-m", "coverage", "combine")
    report = run_checked(project, sys.executable, "-m", "coverage", "report", "-m")
    assert missing_lines(report.stdout.str(), "work") == expected_missing(mode)
    assert left_behind(project) == []


# -- children that end badly ---------------------------------------------------------------


NO_SIGTERM = pytest.mark.skipif(
    sys.platform == "win32", reason="no SIGTERM at a timeout on Windows: the child is killed"
)


@pytest_cov
@NO_SIGTERM
@pytest.mark.parametrize("method", ALL_METHODS)
def test_what_is_kept_of_children_that_end_badly(project: pytest.Pytester, method: str) -> None:
    """Kept: a child stopped at its timeout (SIGTERM), one that calls os._exit. Lost: one
    killed by a signal that no Python code sees (SIGABRT, SIGSEGV)."""
    result = project.runpytest_subprocess(
        *INNER_ARGS, "--cov=pkg", "--cov-report=term-missing",
        f"--procthread-start-method={method}", "test_faulty.py", timeout=INNER_RUN_LIMIT,
    )
    result.assert_outcomes(passed=4)
    assert missing_lines(result.stdout.str(), "faulty") == f"{HANG_ALONE}, {ABORT}, {SEGFAULT}"


@pytest_cov
@NO_SIGTERM
@pytest.mark.parametrize("method", ALL_METHODS)
def test_an_isolated_test_at_its_timeout_keeps_its_data(
    project: pytest.Pytester, method: str
) -> None:
    result = project.runpytest_subprocess(
        *INNER_ARGS, "--cov=pkg", "--cov-report=term-missing",
        f"--procthread-start-method={method}", "test_isolated_hang.py",
        timeout=INNER_RUN_LIMIT,
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*no result after 3 s*"])
    assert missing_lines(result.stdout.str(), "faulty") == (
        f"{HANG}, {EXIT}, {ABORT}, {SEGFAULT}")


# -- this process's side --------------------------------------------------------------------


def test_no_plan_when_coverage_does_not_measure() -> None:
    if coverage.Coverage.current() is not None:
        pytest.skip("this test process is measured by coverage")
    assert parent_side.plan_for_child() is None


@pytest.mark.skipif("spawn" not in METHODS, reason="no spawn here")
def test_an_unmeasured_childs_fresh_interpreter_imports_no_coverage(
    isolated_process: ProcessRunner,
) -> None:
    if coverage.Coverage.current() is not None:
        pytest.skip("this test process is measured by coverage")
    spawned = isolated_process.options(start_method="spawn")
    # A lambda travels by value: the child does not import this module, which imports
    # coverage.
    assert spawned.run(lambda: "coverage" in sys.modules).unwrap() is False


def test_the_private_read_of_the_data_file(
    isolated_process: ProcessRunner, tmp_path: Path
) -> None:
    """``process.coverage.data_file_of`` reads coverage's private ``_data``: the path its
    data file was given when it started, in the directory it started in. If coverage
    changes that, this fails, and the fallback (the option made absolute now) is wrong
    as soon as a test leaves that directory. In a child: a Coverage made here would stop
    a measurement of this process that coverage's ``subprocess`` patch started."""
    outcome = isolated_process.run(_probe_data_file, str(tmp_path))
    started_in = str(tmp_path / "started" / ".coverage-probe")
    assert outcome.unwrap() == (started_in, started_in)


def _probe_data_file(where: str) -> tuple[str, str]:
    started_in = os.path.join(where, "started")
    os.mkdir(started_in)
    os.chdir(started_in)
    cov = coverage.Coverage(data_file=".coverage-probe", config_file=False, data_suffix=True)
    cov.start()
    try:
        os.chdir(where)
        data = getattr(cov, "_data", None)
        assert data is not None, "coverage.Coverage has no _data once started any more"
        return data.base_filename(), parent_side.data_file_of(cov)
    finally:
        cov.stop()


# -- pytest-cov's contexts ------------------------------------------------------------------


@pytest_cov
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", ALL_METHODS)
def test_a_childs_lines_carry_the_context_of_its_test(
    project: pytest.Pytester, method: str, mode: str
) -> None:
    """--cov-context=test: a line a child ran is recorded under the test that ran it, as
    the test process's own lines are (``<nodeid>|run``)."""
    result = project.runpytest_subprocess(
        *INNER_ARGS, "--cov=pkg", "--cov-context=test", "--cov-report=",
        f"--procthread-start-method={method}", *mode_args(mode), timeout=INNER_RUN_LIMIT,
    )
    result.assert_outcomes(passed=2)
    data = coverage.CoverageData(str(project.path / ".coverage"))
    data.read()
    work = next(name for name in data.measured_files() if name.endswith("work.py"))
    contexts = data.contexts_by_lineno(work)
    test_file = mode_args(mode)[-1]
    first, second = (int(n) for n in expected_missing("isolated" if mode == "run"
                                                      else "run").split(", "))
    assert contexts.get(first) == [f"{test_file}::test_a|run"], contexts
    assert contexts.get(second) == [f"{test_file}::test_b|run"], contexts
