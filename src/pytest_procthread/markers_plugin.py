"""Hooks of the markers ``isolated``, ``threads`` and ``requires`` and of ``--isolated``.

Registered by the main plugin (``plugin.py``) as ``procthread-markers``. Only wiring here:
the work is done in ``isolation``, ``parallel`` and ``requires``.
"""

from __future__ import annotations

from typing import Optional

import pytest

from . import _fork, _warden, isolation, newhooks, parallel, requires
from .runtime import runtime_facts
from .settings import resolve

MARKERS = (
    f"{isolation.MARKER}(start_method=None, timeout=None): run the test body in a child "
    "process (fixtures stay in the test process); a crash or a hang fails only this test.",
    f"{parallel.MARKER}(n, timeout=None): run the test body in n threads at once, released "
    "together by a barrier; every thread's failure is reported. See the thread_index fixture.",
    f"{requires.MARKER}(**needs): skip unless this runtime has what the test needs: "
    "start_method=, fork=, free_threaded=, gil=, cpus=, implementation=.",
)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(newhooks)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("procthread", "pytest-procthread: processes and threads")
    group.addoption(
        isolation.OPTION, action="store_true", dest="procthread_isolated", default=False,
        help="run the body of every test in its own child process, as if each had "
        f"@pytest.mark.{isolation.MARKER} (start method and time limit: "
        "--procthread-start-method, --procthread-timeout).",
    )


def pytest_configure(config: pytest.Config) -> None:
    for line in MARKERS:
        config.addinivalue_line("markers", line)


_MARKER_ERROR = pytest.StashKey[str]()


def pytest_sessionstart(session: pytest.Session) -> None:
    # Under --isolated with fork, every test forks: the warden that watches fork children
    # starts now, while the tests are collected, not at the first test (see _warden).
    config = session.config
    if not config.getoption("procthread_isolated", False) or not _fork.available():
        return
    if config.getoption("dist", "no") != "no" and not hasattr(config, "workerinput"):
        return  # pytest-xdist's controller runs no test; its workers start their own
    try:
        method = resolve(config).start_method
    except ValueError:
        return  # a bad setting is reported where it is used
    if method == "fork":
        _warden.start_soon()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Check every marker of ours once, before any test runs; apply ``requires``.

    A wrong marker is a usage error that stops the run. In a pytest-xdist worker, where a
    usage error at collection would crash the worker, the test errors instead.
    """
    facts = runtime_facts()
    in_worker = hasattr(config, "workerinput")
    for item in items:
        try:
            isolation.validate_marker(item)
            threads = item.get_closest_marker(parallel.MARKER)
            if threads is not None:
                parallel.thread_count(threads, item.nodeid)
                _threads_timeout(item, threads)
            reasons = []
            for marker in item.iter_markers(requires.MARKER):
                reasons += requires.unmet(marker, facts, item.nodeid)
        except ValueError as exc:
            if not in_worker:
                raise pytest.UsageError(str(exc)) from None
            item.stash[_MARKER_ERROR] = str(exc)
            continue
        if reasons:
            item.add_marker(pytest.mark.skip(reason="; ".join(reasons)))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    error = item.stash.get(_MARKER_ERROR, None)
    if error is not None:
        raise pytest.UsageError(error)
    if isolation.wanted(item):
        isolation.note_warning_sink(item)


def _threads_timeout(item: pytest.Item, marker: pytest.Mark) -> float:
    try:
        return resolve(item.config, marker=marker).timeout
    except ValueError as exc:
        raise ValueError(f"{exc} (on {item.nodeid})") from None


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Optional[bool]:
    """Run the body in a child process, in n threads, or both; else leave it to pytest."""
    __tracebackhide__ = True
    threads_marker = pyfuncitem.get_closest_marker(parallel.MARKER)
    isolated = isolation.wanted(pyfuncitem)
    if threads_marker is None and not isolated:
        return None
    threads, timeout = 0, 0.0
    if threads_marker is not None:
        threads = parallel.thread_count(threads_marker, pyfuncitem.nodeid)
        timeout = _threads_timeout(pyfuncitem, threads_marker)
    if isolated:
        isolation.run(pyfuncitem, threads=threads, thread_timeout=timeout)
        return True
    isolation.refuse_async(pyfuncitem)
    kwargs = isolation.test_kwargs(pyfuncitem)
    result = parallel.fan_out(pyfuncitem.obj, kwargs, threads, timeout)
    isolation.warn_returned(pyfuncitem, None if result is None else repr(type(result)))
    return True


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    # The child of an isolated test may still be exiting (it said it was done, see
    # _fork): gone before the first fixture is torn down, so no teardown sees it.
    _fork.reap_exiting()


@pytest.fixture
def thread_index() -> int:
    """This thread's index in a ``@pytest.mark.threads(n)`` test (0 to n-1); 0 elsewhere."""
    return 0


def pytest_sessionfinish(session: pytest.Session) -> None:
    # Before the leak check (trylast): the warm templates of --isolated end here.
    isolation.end_session()

