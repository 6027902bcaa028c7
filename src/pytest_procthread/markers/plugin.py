"""Hooks of the markers ``isolated``, ``threads`` and ``requires`` and of ``--isolated``.

Registered by the main plugin (``plugin.py``) as ``procthread-markers``. Only wiring: every
marker of ours is checked once at collection, ``requires`` is applied there, and the body
of a test is dispatched to a child process (``isolated.run``), to n threads (as
``threads.plugin`` planned it, run by ``threads.fanout``), or both, or left to pytest.

What runs a body elsewhere (``isolated.run``, ``threads.fanout``, the ``process`` runner)
is imported by the hook that first needs it: every pytest start loads this module, and a
session that isolates nothing and fans nothing out should not load the rest
(``benchmarks/README.md``, "Plugin start-up").
"""

from __future__ import annotations

import functools
from typing import Optional

import pytest

from ..gil import GilState
from ..gilwatch import watch_of
from ..isolated.marker import (
    note_warning_sink,
    refuse_async,
    validate_marker,
    wanted,
    warn_returned,
)
from ..options import REQUIRES_MARKER, THREADS_MARKER
from ..process import session
from ..process.launch import reap_exiting
from ..runtime import RuntimeFacts, runtime_facts
from ..settings import resolve
from ..threads.plan import asked
from ..threads.plugin import planned, run_settings
from .decision import decide_again, skip_unmet
from .requires import unmet

_MARKER_ERROR = pytest.StashKey[str]()


def _isolating_method(config: pytest.Config) -> Optional[str]:
    """Under --isolated, in a process that runs tests (not xdist's controller): the start
    method every test is isolated with; else None."""
    if not config.getoption("procthread_isolated", False):
        return None
    if config.getoption("dist", "no") != "no" and not hasattr(config, "workerinput"):
        return None  # pytest-xdist's controller runs no test; its workers start their own
    try:
        return resolve(config).start_method
    except ValueError:
        return None  # a bad setting is reported where it is used


def pytest_sessionstart(session: pytest.Session) -> None:
    # What every test will need starts now, while the tests are collected, not at the
    # first test: the warden that watches fork children (see process.warden), or the
    # warm template of spawn or forkserver, with the module its children run.
    method = _isolating_method(session.config)
    if method is not None:
        from ..isolated.body import IsolatedBody
        from ..process.runner import prepare_session

        prepare_session(method, (IsolatedBody.__module__,))


def check_markers(item: pytest.Item, facts: RuntimeFacts, gil: GilState) -> list[str]:
    """Check every marker of ours on ``item``; the reasons ``requires`` says to skip it.
    ValueError, naming the test, for a marker written wrongly."""
    validate_marker(item)
    if item.get_closest_marker(THREADS_MARKER) is not None:
        asked(item, run_settings(item.config))
    reasons = []
    for marker in item.iter_markers(REQUIRES_MARKER):
        reasons += unmet(marker, facts, item.nodeid, gil)
    return reasons


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Check every marker of ours once, before any test runs; apply ``requires``.

    A wrong marker is a usage error that stops the run. In a pytest-xdist worker, where a
    usage error at collection would crash the worker, the test errors instead.
    """
    facts, watch = runtime_facts(), watch_of(config)
    gil = watch.state("collection")
    in_worker = hasattr(config, "workerinput")
    for item in items:
        try:
            reasons = check_markers(item, facts, gil)
        except ValueError as exc:
            if not in_worker:
                raise pytest.UsageError(str(exc)) from None
            item.stash[_MARKER_ERROR] = str(exc)
            continue
        skip_unmet(item, reasons, gil, watch)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    error = item.stash.get(_MARKER_ERROR, None)
    if error is not None:
        raise pytest.UsageError(error)
    decide_again(item, runtime_facts(), watch_of(item.config))
    fan = planned(item).fan
    if wanted(item):
        from ..isolated.run import run as run_isolated
        from ..isolated.testcase import is_case

        note_warning_sink(item)
        if is_case(item):
            # A unittest method runs through its item's runtest(), not pytest_pyfunc_call.
            item.runtest = functools.partial(run_isolated, item, fan)  # type: ignore[method-assign,arg-type]
    elif fan is not None:
        from ..isolated.testcase import is_case, run_case_in_threads

        if is_case(item):
            item.runtest = functools.partial(run_case_in_threads, item, fan)  # type: ignore[method-assign]


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Optional[bool]:
    """Run the body in a child process, in n threads, or both; else leave it to pytest."""
    __tracebackhide__ = True
    fan = planned(pyfuncitem).fan
    isolated = wanted(pyfuncitem)
    if fan is None and not isolated:
        return None
    if isolated:
        from ..isolated.run import run as run_isolated

        run_isolated(pyfuncitem, fan)
        return True
    assert fan is not None
    from ..isolated.travel import test_kwargs
    from ..threads.fanout import fan_out

    refuse_async(pyfuncitem)
    result = fan_out(pyfuncitem.obj, test_kwargs(pyfuncitem), fan)
    warn_returned(pyfuncitem, None if result is None else repr(type(result)))
    return True


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    # The child of an isolated test may still be exiting (it said it was done, see
    # process.fork): gone before the first fixture is torn down, so no teardown sees it.
    reap_exiting()


def pytest_sessionfinish() -> None:
    # Before the leak check (trylast): the warm templates of --isolated end here.
    session.end()
