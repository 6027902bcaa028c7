"""The live GIL: a re-enable during a run is seen, said, and decides ``requires(gil=...)``.

First the pure parts with plain values (``pytest_procthread.gil``, and ``requires`` given
a GIL state). Then whole runs in a subprocess, on a free-threaded build, that import a
tiny C extension without ``Py_mod_gil`` (built here from ``examples/gilext/gilext.c``):
inside a test, at collection, from a conftest, before the plugin loads, with its warning
filtered out, in a pytest-xdist worker, and under ``PYTHON_GIL=0`` and ``PYTHON_GIL=1``.
Each run sets ``PYTHON_GIL`` itself, so the outcome does not depend on this run's.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from pytest_procthread import gil
from pytest_procthread.gil import GilState, GilWatch, ReEnable, module_of_warning
from pytest_procthread.markers.requires import unmet
from pytest_procthread.runtime import runtime_facts

ARGS = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-rs")
INNER_WAIT = 120.0  # the bound of one inner run; each takes a second or two
WARNING = (
    "The global interpreter lock (GIL) has been enabled to load module 'gilext', which has "
    "not declared that it can run safely without the GIL. To override this behavior and "
    "keep the GIL disabled (at your own risk), run with PYTHON_GIL=0 or -Xgil=0."
)
PYTHON = runtime_facts().python
needs_free_threading = pytest.mark.skipif(
    not gil.free_threaded_build(),
    reason="needs a free-threaded build: only there can an import re-enable the GIL",
)


# -- the pure parts ------------------------------------------------------------------------


class Switch:
    """A GIL that the test turns on, read as GilWatch reads the real one."""

    def __init__(self, on: bool = False) -> None:
        self.on = on

    def __call__(self) -> bool:
        return self.on


def watch(at_start: bool = False, configured: int | None = None,
          free_threaded: bool = True) -> tuple[GilWatch, Switch]:
    switch = Switch(at_start)
    return GilWatch(at_start, free_threaded, configured, read=switch), switch


def test_the_module_is_read_from_cpythons_warning() -> None:
    assert module_of_warning(WARNING) == "gilext"
    assert module_of_warning("some other RuntimeWarning") is None


def test_the_live_state_is_read_each_time(monkeypatch: pytest.MonkeyPatch) -> None:
    switch = Switch(False)
    # Undone within the call: this run's own watch reads the GIL as the call ends.
    with monkeypatch.context() as patched:
        patched.setattr(sys, "_is_gil_enabled", switch, raising=False)
        assert gil.enabled() is False
        switch.on = True
        assert gil.enabled() is True
        patched.delattr(sys, "_is_gil_enabled")
        assert gil.enabled() is True  # a build without the function always has the GIL


def test_a_look_finds_the_reenable_and_the_warning_names_its_module() -> None:
    w, switch = watch()
    w.look("collection", "t.py")
    assert w.events == []
    switch.on = True
    w.look("call", "t.py::test_x")
    w.look("teardown", "t.py::test_x")
    assert w.events == [ReEnable("call", "t.py::test_x")]
    assert "by an import Python did not name" in w.events[0].describe()
    assert w.heard(WARNING, "test", "t.py::test_x")
    assert w.events == [ReEnable("call", "t.py::test_x", "gilext")]
    assert w.events[0].describe() == (
        "re-enabled during the call of t.py::test_x, by the import of module 'gilext'")


def test_a_warning_before_any_look_is_a_reenable_of_its_own() -> None:
    w, switch = watch()
    switch.on = True
    assert w.heard(WARNING, "start-up")
    w.look("configure")
    assert w.events == [ReEnable("start-up", "", "gilext")]
    # CPython warns once per process: another copy (a worker's, replayed) is not news.
    assert not w.heard(WARNING.replace("gilext", "other"), "test", "t.py::test_x")
    assert w.events == [ReEnable("start-up", "", "gilext")]


@pytest.mark.parametrize(
    ("message", "on", "free_threaded"),
    [(WARNING, False, True), (WARNING, True, False), ("another warning", True, True)],
    ids=["gil-still-off", "build-with-the-gil", "other-warning"],
)
def test_warnings_that_change_nothing_are_ignored(
    message: str, on: bool, free_threaded: bool
) -> None:
    w, switch = watch(free_threaded=free_threaded)
    switch.on = on
    assert not w.heard(message, "test", "t.py::test_x")
    assert [e for e in w.events if e.module] == []


def test_state_story_and_decisions() -> None:
    w, switch = watch()
    before = w.state("setup", "t.py::test_a")
    assert before == GilState(False, False, None) and before.story() == ""
    w.decided("t.py::test_a", before, skipped=False)  # as at start: not counted
    switch.on = True
    after = w.state("setup", "t.py::test_b")
    assert after.enabled and after.reenabled == ReEnable("setup", "t.py::test_b")
    assert after.story().startswith("it was re-enabled during the setup of t.py::test_b, ")
    w.decided("t.py::test_b", after, skipped=True)
    w.decided("t.py::test_c", after, skipped=False)
    w.decided("t.py::test_b", after, skipped=True)  # collection, then setup: one test
    assert w.summary() == [
        "the GIL was re-enabled during the setup of t.py::test_b, by an import Python did "
        "not name (its RuntimeWarning was filtered out or not emitted)",
        "2 tests with requires(gil=...) decided with the GIL on, as it was by then (off at "
        "start): 1 skipped, 1 run",
    ]


@pytest.mark.parametrize(
    ("free_threaded", "configured", "at_start", "header"),
    [
        (False, 1, True, "GIL on at start (a build with the GIL)"),
        (True, 1, True, "GIL on at start (free-threaded build, PYTHON_GIL=1 or -X gil=1)"),
        (True, 0, False, "GIL off at start (free-threaded build, PYTHON_GIL=0 or -X gil=0: "
                         "no import re-enables it)"),
        (True, None, False, "GIL off at start (free-threaded build: importing an extension "
                            "that does not declare Py_mod_gil re-enables it)"),
        (True, None, True, "GIL on at start (free-threaded build: re-enabled before "
                           "pytest-procthread was loaded, by an import Python did not name "
                           "(its RuntimeWarning was filtered out or not emitted))"),
    ],
)
def test_header_and_no_summary_when_nothing_happened(
    free_threaded: bool, configured: int | None, at_start: bool, header: str
) -> None:
    w, _ = watch(at_start, configured, free_threaded)
    for when in ("start-up", "configure", "collection", "call", "session end"):
        w.look(when)
    assert w.header() == f"procthread: {header}"
    assert w.summary() == []


def test_a_reenable_before_the_plugin_is_named_by_a_replayed_warning() -> None:
    w, _ = watch(at_start=True)
    assert w.heard(WARNING, "start-up")  # pytest replays the plugins' import warnings
    assert w.events == [ReEnable("before start", "", "gilext")]
    assert w.header().endswith("by the import of module 'gilext')")
    assert w.summary() == []  # nothing changed during the run


def test_the_header_tells_a_reenable_before_the_session_started() -> None:
    w, switch = watch()
    switch.on = True
    w.look("configure")
    assert w.header().endswith(
        "; since then re-enabled during pytest_configure, by an import Python did not name "
        "(its RuntimeWarning was filtered out or not emitted)")


def test_what_a_worker_sends_its_controller() -> None:
    worker, switch = watch()
    switch.on = True
    worker.look("call", "t.py::test_x")
    worker.heard(WARNING, "test", "t.py::test_x")
    worker.decided("t.py::test_y", worker.state("setup", "t.py::test_y"), skipped=True)
    controller, _ = watch()
    controller.merge(worker.to_data(), "gw0")
    assert controller.summary() == [
        "the GIL was re-enabled during the call of t.py::test_x in worker gw0, by the "
        "import of module 'gilext'",
        "1 test with requires(gil=...) decided with the GIL on, as it was by then (off at "
        "start): 1 skipped, 0 run",
    ]
    controller.merge(None, "gw1")  # a worker that sent nothing
    with pytest.raises(ValueError, match="worker gw3 sent its GIL re-enables in a form"):
        controller.merge({"events": [["lunch", "", None]], "decided_since": {}}, "gw3")
    assert len(controller.events) == 1
    controller.merge(worker.to_data(), "gw2")  # alike in two workers: one line
    assert controller.summary()[0] == (
        "the GIL was re-enabled during the call of t.py::test_x in workers gw0, gw2, by the "
        "import of module 'gilext'")


def test_an_unknown_phase_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown phase 'lunch' of a GIL re-enable"):
        ReEnable("lunch")


def test_requires_decides_gil_from_the_state_it_is_given() -> None:
    facts = dataclasses.replace(
        runtime_facts(), implementation="cpython", python_version=(3, 13, 5),
        free_threaded_build=True, gil_enabled=False,
    )
    now = GilState(True, False, ReEnable("call", "t.py::test_x", "gilext"))

    def reasons(state: GilState | None, **needs: object) -> list[str]:
        return unmet(pytest.mark.requires(**needs).mark, facts, "t.py::test_y", state)

    assert reasons(now, gil=False) == [
        "requires the GIL to be disabled; cpython-3.13t runs with it enabled: it was "
        "re-enabled during the call of t.py::test_x, by the import of module 'gilext'"
    ]
    assert reasons(now, gil=True) == []
    assert reasons(None, gil=True) == [  # without a state: the facts, the GIL at start
        "requires the GIL to be enabled; cpython-3.13t runs with it disabled"]
    with pytest.raises(ValueError, match=r"requires\(gil=...\)"):
        reasons(now, gil="off")


def test_nothing_printed_when_nothing_happened(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.requires(gil=True)
        def test_with():
            pass

        @pytest.mark.requires(gil=False)
        def test_without():
            pass
        """
    )
    result = pytester.runpytest(*ARGS)
    result.assert_outcomes(passed=1, skipped=1)
    assert GilWatch.of_this_process().header() in result.stdout.lines
    assert "procthread: GIL re-enabled" not in result.stdout.str()


# -- whole runs on a free-threaded build ---------------------------------------------------


@pytest.fixture(scope="session")
def gilext_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with the ``gilext`` extension module built for this interpreter."""
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        pytest.skip("no C compiler (cc, gcc or clang) to build the test extension with")
    include = sysconfig.get_paths()["include"]
    if not (Path(include) / "Python.h").exists():
        pytest.skip(f"no Python.h in {include} to build the test extension with")
    out = tmp_path_factory.mktemp("gilext")
    target = out / f"gilext{sysconfig.get_config_var('EXT_SUFFIX')}"
    source = Path(__file__).parent / "examples" / "gilext" / "gilext.c"
    extra = ["-undefined", "dynamic_lookup"] if sys.platform == "darwin" else []
    built = subprocess.run(
        [compiler, "-shared", "-fPIC", f"-I{include}", *extra, str(source), "-o", str(target)],
        capture_output=True, text=True, timeout=INNER_WAIT,
    )
    assert built.returncode == 0, f"building {target.name} failed:\n{built.stderr}"
    return out


@pytest.fixture
def inner(
    pytester: pytest.Pytester, gilext_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> pytest.Pytester:
    """A pytester whose subprocess runs import ``gilext``, with the build's own default
    GIL (PYTHON_GIL unset) unless the test sets it."""
    monkeypatch.setenv("PYTHONPATH", str(gilext_dir))
    monkeypatch.delenv("PYTHON_GIL", raising=False)
    return pytester


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(*ARGS, *args, timeout=INNER_WAIT)


IMPORT_IN_A_TEST = """
    import pytest

    @pytest.mark.requires(gil=False)
    def test_before():
        pass

    def test_imports():
        import gilext
        assert gilext.answer() == 42

    @pytest.mark.requires(gil=False)
    def test_after():
        pass

    @pytest.mark.requires(gil=True)
    def test_needs_gil():
        pass
"""

IN_TEST_EVENT = ("re-enabled during the call of test_in_test.py::test_imports, by the "
                 "import of module 'gilext'")


@needs_free_threading
def test_reenable_inside_a_test_decides_the_tests_after_it(inner: pytest.Pytester) -> None:
    inner.makepyfile(test_in_test=IMPORT_IN_A_TEST)
    result = run(inner, "-v")
    result.assert_outcomes(passed=3, skipped=1)
    result.stdout.fnmatch_lines([
        "procthread: GIL off at start (free-threaded build: *",
        "*::test_before PASSED*",
        "*::test_imports PASSED*",
        "*::test_after SKIPPED*",
        "*::test_needs_gil PASSED*",  # skipped at collection, run as the GIL is on now
        "*= procthread: GIL re-enabled =*",
        f"the GIL was {IN_TEST_EVENT}",
        "2 tests with requires(gil=...) decided with the GIL on, as it was by then (off at "
        "start): 1 skipped, 1 run",
        f"SKIPPED * test_in_test.py:*: requires the GIL to be disabled; {PYTHON} runs with "
        f"it enabled: it was {IN_TEST_EVENT}",
    ])


AT_COLLECTION = {
    "test_a_plain": """
        import pytest

        @pytest.mark.requires(gil=False)
        def test_without():
            pass

        @pytest.mark.requires(gil=True)
        def test_with():
            pass
    """,
    "test_b_imports": """
        import gilext

        def test_uses():
            assert gilext.answer() == 42
    """,
}


@needs_free_threading
def test_reenable_at_collection(inner: pytest.Pytester) -> None:
    inner.makepyfile(**AT_COLLECTION)
    event = "re-enabled during the collection of test_b_imports.py, by the import of module"
    result = run(inner)
    result.assert_outcomes(passed=2, skipped=1)
    result.stdout.fnmatch_lines([
        f"the GIL was {event} 'gilext'",
        "2 tests with requires(gil=...) decided * 1 skipped, 1 run",
        f"SKIPPED * test_a_plain.py:*: requires the GIL to be disabled; {PYTHON} runs with "
        f"it enabled: it was {event} 'gilext'",
    ])
    # The collection decides too, without running anything.
    collected = run(inner, "--collect-only", "-q")
    collected.stdout.fnmatch_lines([f"the GIL was {event} 'gilext'",
                                    "2 tests with requires(gil=...) decided *"])


@needs_free_threading
def test_reenable_with_its_warning_filtered_out(inner: pytest.Pytester) -> None:
    inner.makepyfile(**AT_COLLECTION)
    result = run(inner, "-W", "ignore::RuntimeWarning")
    result.assert_outcomes(passed=2, skipped=1)
    result.stdout.fnmatch_lines([
        "the GIL was re-enabled during the collection of test_b_imports.py, by an import "
        "Python did not name (its RuntimeWarning was filtered out or not emitted)",
    ])
    assert "has been enabled to load module" not in result.stdout.str()


@needs_free_threading
@pytest.mark.parametrize(
    ("conftest", "phase"),
    [
        ("import gilext", "while pytest loaded its plugins and conftests"),
        ("def pytest_configure(config):\n    import gilext", "during pytest_configure"),
    ],
    ids=["conftest-import", "pytest_configure"],
)
def test_reenable_by_a_conftest(inner: pytest.Pytester, conftest: str, phase: str) -> None:
    inner.makeconftest(conftest)
    inner.makepyfile(test_a_plain=AT_COLLECTION["test_a_plain"])
    result = run(inner)
    result.assert_outcomes(passed=1, skipped=1)
    event = f"re-enabled {phase}, by the import of module 'gilext'"
    result.stdout.fnmatch_lines([
        f"procthread: GIL off at start (*); since then {event}",
        f"the GIL was {event}",
        f"SKIPPED * requires the GIL to be disabled; {PYTHON} runs with it enabled: it was "
        f"{event}",
    ])


@needs_free_threading
def test_reenable_before_the_plugin_loads(inner: pytest.Pytester) -> None:
    inner.makepyfile(gilplug="import gilext", test_a_plain=AT_COLLECTION["test_a_plain"])
    result = run(inner, "-p", "gilplug")
    result.assert_outcomes(passed=1, skipped=1)
    event = "re-enabled before pytest-procthread was loaded, by the import of module 'gilext'"
    result.stdout.fnmatch_lines([
        f"procthread: GIL on at start (free-threaded build: {event})",
        f"SKIPPED * requires the GIL to be disabled; {PYTHON} runs with it enabled: it was "
        f"{event}",
    ])
    assert "procthread: GIL re-enabled" not in result.stdout.str()  # not during the run


@needs_free_threading
def test_reenable_in_an_xdist_worker(inner: pytest.Pytester) -> None:
    inner.makepyfile(test_in_test=IMPORT_IN_A_TEST)
    result = run(inner, "-n", "1")
    result.assert_outcomes(passed=3, skipped=1)
    result.stdout.fnmatch_lines([
        "the GIL was re-enabled during the call of test_in_test.py::test_imports in worker "
        "gw0, by the import of module 'gilext'",
        "2 tests with requires(gil=...) decided * 1 skipped, 1 run",
    ])


@needs_free_threading
def test_python_gil_0_never_reenables(
    inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHON_GIL", "0")
    inner.makepyfile(test_in_test=IMPORT_IN_A_TEST)
    result = run(inner, "-v")
    result.assert_outcomes(passed=3, skipped=1)
    result.stdout.fnmatch_lines([
        "procthread: GIL off at start (free-threaded build, PYTHON_GIL=0 or -X gil=0: *)",
        "*::test_after PASSED*",
        "*::test_needs_gil SKIPPED*",
    ])
    assert "GIL re-enabled" not in result.stdout.str()


@needs_free_threading
def test_python_gil_1_is_on_from_the_start(
    inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHON_GIL", "1")
    inner.makepyfile(test_in_test=IMPORT_IN_A_TEST)
    result = run(inner)
    result.assert_outcomes(passed=2, skipped=2)
    result.stdout.fnmatch_lines([
        "procthread: GIL on at start (free-threaded build, PYTHON_GIL=1 or -X gil=1)",
        f"SKIPPED * requires the GIL to be disabled; {PYTHON} runs with it enabled",
    ])
    assert "re-enabled" not in result.stdout.str()
