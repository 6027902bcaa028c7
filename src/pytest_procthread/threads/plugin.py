"""Hooks and fixtures of the thread fan-out: what each test runs as, what its status and
the run's summary say about it, and the guard against threads a test left running.

Registered by the main plugin as ``procthread-threads``. The decision for each test is
made once, after collection (``planned``); ``markers.plugin`` dispatches on it. Reports
carry what happened as plain attributes, so that pytest-xdist's controller, which runs no
test, can show the same status words and summary.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Optional

import pytest

from ..options import THREADS_MARKER, THREADS_OPTION
from .plan import FanOut, RunSettings, asked
from .strays import strays
from .unsafe import Detector, plugin_detector

_RUN = pytest.StashKey[RunSettings]()
_DETECTOR = pytest.StashKey[Detector]()
_PLANNED = pytest.StashKey["Planned"]()
# pytest-run-parallel's plugin name and the markers with which it fans a test out.
_PEER = "run-parallel"
_PEER_MARKERS = ("force_parallel_threads", "parallel_threads")
_THREADS_WORD = "procthread_threads"  # attributes of a report
_ONCE_WORD = "procthread_once"


@dataclass(frozen=True)
class Planned:
    """What one test runs as: a fan-out (or None), and why it runs once if it does."""

    fan: Optional[FanOut]
    once: Optional[str] = None


def planned(item: pytest.Item) -> Planned:
    """The decision for ``item`` (no fan-out for a test collected without one)."""
    return item.stash.get(_PLANNED, Planned(None))


def run_settings(config: pytest.Config) -> RunSettings:
    """The run's settings of the fan-out, read once."""
    settings = config.stash.get(_RUN, None)
    if settings is None:
        settings = config.stash[_RUN] = RunSettings.read(config)
    return settings


def _peer_asks(config: pytest.Config, item: Optional[pytest.Item] = None) -> str:
    """What pytest-run-parallel was asked, if it is here and asked to fan out; else ""."""
    if not config.pluginmanager.has_plugin(_PEER):
        return ""
    if item is not None:
        for name in _PEER_MARKERS:
            marker = item.get_closest_marker(name)
            if marker is not None and marker.args and str(marker.args[0]) != "1":
                return f"@pytest.mark.{name}({marker.args[0]!r})"
    value = str(config.getoption("parallel_threads", 1))
    return "" if value == "1" else f"--parallel-threads={value}"


def pytest_configure(config: pytest.Config) -> None:
    try:
        run = run_settings(config)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    peer = _peer_asks(config)
    if peer and run.explicit:
        raise pytest.UsageError(
            f"both pytest-run-parallel ({peer}) and pytest-procthread "
            f"({THREADS_OPTION}={run.threads}) would run every test in threads: each "
            f"thread of one would start the threads of the other, and their thread_index "
            f"fixtures would disagree. Drop one: remove {THREADS_OPTION} (and the ini key), "
            f"or remove --parallel-threads, or disable pytest-run-parallel with "
            f"-p no:{_PEER}."
        )
    config.stash[_DETECTOR] = plugin_detector(config)
    config.pluginmanager.register(Summary(config), "procthread-threads-summary")


def _expected(item: pytest.Item) -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = []
    for marker in item.iter_markers("xfail"):
        raises = marker.kwargs.get("raises")
        if isinstance(raises, type):
            found.append(raises)
        elif isinstance(raises, tuple):
            found += [kind for kind in raises if isinstance(kind, type)]
    return tuple(found)


def _cannot_fan_out(item: pytest.Item) -> Optional[str]:
    """Why ``item`` cannot run in threads at all, or None."""
    cls = getattr(item, "cls", None)
    if isinstance(item, pytest.Function):
        import inspect

        if inspect.iscoroutinefunction(getattr(item, "obj", None)) and cls is None:
            return "is a coroutine function (its event-loop plugin runs it, in one thread)"
        return None
    if type(item).__name__ == "TestCaseFunction":
        return None
    return (f"is a {type(item).__name__}, not a Python test function; only test "
            f"functions and unittest methods can run in threads")


def plan_item(item: pytest.Item, run: RunSettings, detector: Detector) -> Planned:
    """Decide what ``item`` runs as. ValueError: a bad marker, or a marker asking for
    threads on an item that cannot have them."""
    wish = asked(item, run)
    if wish.threads <= 1 and wish.iterations <= 1:
        return Planned(None)
    blocked = _cannot_fan_out(item)
    if blocked is not None:
        if wish.marked and not blocked.startswith("is a coroutine"):
            raise ValueError(f"@pytest.mark.{THREADS_MARKER} on {item.nodeid}: the item "
                             f"{blocked}")
        return Planned(None, blocked)
    peer = _peer_asks(item.config, item)
    if peer and wish.threads > 1 and (wish.marked or run.explicit):
        raise ValueError(
            f"{item.nodeid} is asked to run in threads by both pytest-procthread "
            f"(@pytest.mark.{THREADS_MARKER} or {THREADS_OPTION}) and pytest-run-parallel "
            f"({peer}): keep one of the two"
        )
    threads, once = wish.threads, None
    if threads > 1:
        once = detector.why(item)
        if once is not None:
            threads = 1
            if run.skip_unsafe:
                item.add_marker(pytest.mark.skip(reason=f"thread-unsafe: {once}"))
    if threads <= 1 and wish.iterations <= 1:
        return Planned(None, once)
    fan = FanOut(threads=threads, iterations=wish.iterations, timeout=wish.timeout,
                 switch_interval=run.switch_interval, label=item.name,
                 expected=_expected(item))
    return Planned(fan, once)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # After markers.plugin has checked every marker: a bad one has stopped the run there.
    run, detector = run_settings(config), config.stash[_DETECTOR]
    for item in items:
        try:
            item.stash[_PLANNED] = plan_item(item, run, detector)
        except ValueError as exc:
            if hasattr(config, "workerinput"):
                item.stash[_PLANNED] = Planned(None, f"error: {exc}")
                continue
            raise pytest.UsageError(str(exc)) from None


# A thread that a fixture's teardown released (an event set, a server stopped) ends a
# moment after the teardown; it is given this long before it counts as still running.
_GRACE = 2.0


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    deadline = time.monotonic() + _GRACE
    for stray in strays():
        if not stray.reported:
            stray.thread.join(max(0.0, deadline - time.monotonic()))
    left = [stray for stray in strays() if not stray.reported]
    if left:
        for stray in left:
            stray.reported = True
        names = "; ".join(f"thread {s.index} of {s.threads} of {s.label}" for s in left)
        pytest.fail(
            f"not run: threads of an earlier test are still running ({names}), past their "
            f"time limit; they would run beside this test and could change what it sees. "
            f"Their stacks were in that test's failure; fix the hang, or give it a longer "
            f"timeout=.", pytrace=False)
    planned_item = planned(item)
    if planned_item.once is not None and planned_item.once.startswith("error: "):
        raise pytest.UsageError(planned_item.once[len("error: "):])


def _describe(fan: FanOut) -> str:
    text = f"{fan.threads} thread{'s' if fan.threads > 1 else ''}"
    if fan.iterations > 1:
        text += f" x {fan.iterations} iterations"
    return text


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    decision = item.stash.get(_PLANNED, None)
    if decision is not None and (report.when == "call" or report.skipped):
        if decision.fan is not None and decision.fan.threads > 1:
            setattr(report, _THREADS_WORD, _describe(decision.fan))
        elif decision.once is not None:
            setattr(report, _ONCE_WORD, decision.once)
    return report


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config) -> Any:
    status = yield
    if getattr(report, "wasxfail", None) is not None or not isinstance(status, tuple):
        return status
    category, letter, word = status
    # Only a pass says how it ran: a failure's own text says in which threads it failed,
    # and the short summary line of a failure stays pytest's ("FAILED id - Error: ...").
    if category != "passed" or not isinstance(word, str) or not word:
        return status
    threads = getattr(report, _THREADS_WORD, None)
    once = getattr(report, _ONCE_WORD, None)
    if report.when == "call" and threads is not None:
        return category, letter, f"{word} ({threads})"
    if once is not None and report.when == "call":
        return category, letter, f"{word} (ran once: {once})"
    return status


class Summary:
    """Counts what the reports said (in pytest-xdist's controller too) and writes the
    run's summary section."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.fanned: Counter[str] = Counter()
        self.once: dict[str, list[str]] = {}
        self.skipped: dict[str, list[str]] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        threads = getattr(report, _THREADS_WORD, None)
        once = getattr(report, _ONCE_WORD, None)
        if report.when == "call" and threads is not None:
            self.fanned[threads] += 1
        elif once is not None and report.when == "call":
            self.once.setdefault(once, []).append(report.nodeid)
        elif once is not None and report.skipped and report.when == "setup":
            self.skipped.setdefault(once, []).append(report.nodeid)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        left = strays()
        if not (self.fanned or self.once or self.skipped or left):
            return
        write = terminalreporter.write_line
        terminalreporter.section("procthread: threads", sep="=")
        fanned = sum(self.fanned.values())
        ways = ", ".join(f"{count} in {how}" for how, count in self.fanned.most_common())
        once = sum(len(ids) for ids in self.once.values())
        skipped = sum(len(ids) for ids in self.skipped.values())
        line = f"{fanned} test{'s' if fanned != 1 else ''} ran in threads"
        line += f" ({ways})" if ways else ""
        line += f"; {once} ran once"
        line += f"; {skipped} skipped as thread-unsafe" if skipped else ""
        write(line + (":" if once or skipped else ""))
        verbose = self.config.getoption("verbose", 0) > 0
        for title, groups in (("ran once", self.once), ("skipped", self.skipped)):
            for reason, ids in sorted(groups.items(), key=lambda kv: -len(kv[1])):
                write(f"  {len(ids)} {title}: {reason}")
                for nodeid in ids if verbose else ():
                    write(f"      {nodeid}")
        if (self.once or self.skipped) and not verbose:
            write("  (-v lists the tests)")
        for stray in left:
            write(f"still running: thread {stray.index} of {stray.threads} of {stray.label}",
                  red=True)


@pytest.fixture
def thread_index() -> int:
    """This thread's index in a fanned-out test (0 to n-1); 0 elsewhere and in the
    fixtures, which pytest sets up once, in the test's own thread, before the threads."""
    return 0


@pytest.fixture
def iteration_index() -> int:
    """The iteration this thread runs (0 to k-1); 0 elsewhere and in fixtures."""
    return 0


@pytest.fixture
def thread_count(request: pytest.FixtureRequest) -> int:
    """How many threads run this test's body at once (1 when it runs in one)."""
    fan = planned(request.node).fan
    return 1 if fan is None else fan.threads


@pytest.fixture
def iteration_count(request: pytest.FixtureRequest) -> int:
    """How many times each thread runs this test's body."""
    fan = planned(request.node).fan
    return 1 if fan is None else fan.iterations
