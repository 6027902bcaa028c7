"""pytest hooks and fixtures. Thin: every piece of work is delegated to its module.

Registers the plugins of the markers (``markers.plugin``), of the thread fan-out
(``threads.plugin``) and of the conformance pack (``claims.hooks``), declares the options
and markers (``options``), provides the three fixtures, and runs the session's leak check
(``leaks``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from . import gilwatch, leaks, newhooks, options
from .claims import hooks as claims_hooks
from .markers import plugin as markers_plugin
from .settings import resolve
from .threads import plugin as threads_plugin
from .wire.pickling import send_by_value

if TYPE_CHECKING:  # each fixture imports its runner when first used: see markers.plugin
    from .ipc import IpcPipe
    from .process import ProcessRunner
    from .thread import ThreadRunner


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(newhooks)


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.register(markers_plugin, "procthread-markers")
    pluginmanager.register(threads_plugin, "procthread-threads")
    pluginmanager.register(claims_hooks, "procthread-claims")
    pluginmanager.register(gilwatch.GilWatchPlugin(), "procthread-gil")
    options.add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    options.add_markers(config)
    try:
        resolve(config)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    if config.getoption("cov_context", None) == "test":  # pytest-cov's contexts
        from .process.coverage import TestContexts

        config.pluginmanager.register(TestContexts(), "procthread-cov-contexts")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for module in {getattr(item, "module", None) for item in items}:
        if module is not None:
            send_by_value(module)


@pytest.fixture
def isolated_process(request: pytest.FixtureRequest) -> Iterator[ProcessRunner]:
    """Run callables in child processes; stops and reaps every child at teardown."""
    from .process import ProcessRunner

    runner = ProcessRunner(config=request.config)
    yield runner
    runner.close()


@pytest.fixture
def sibling_thread(request: pytest.FixtureRequest) -> Iterator[ThreadRunner]:
    """Run callables in threads; at teardown, fails on unobserved errors and stuck threads."""
    from .thread import ThreadRunner

    runner = ThreadRunner(config=request.config)
    yield runner
    runner.close()


@pytest.fixture
def ipc_pipe(request: pytest.FixtureRequest) -> Iterator[IpcPipe]:
    """A pipe whose ``child`` end can be passed to ``isolated_process.start()``."""
    from .ipc import IpcPipe

    pipe = IpcPipe(timeout=resolve(request.config).timeout)
    yield pipe
    pipe.close()


_BEFORE = pytest.StashKey[leaks.Snapshot]()
_PROBLEMS = pytest.StashKey[list[str]]()


def pytest_sessionstart(session: pytest.Session) -> None:
    if session.config.getoption("procthread_check_leaks"):
        session.config.stash[_BEFORE] = leaks.take()


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    before = config.stash.get(_BEFORE, None)
    if before is None:
        return
    problems = leaks.compare(before, leaks.settle(before))
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller reports it
        workeroutput["procthread_leaks"] = problems
    _record_leaks(config, problems, where="")


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    problems = getattr(node, "workeroutput", {}).get("procthread_leaks") or []
    gateway = getattr(node, "gateway", None)
    _record_leaks(node.config, problems, where=f" in worker {getattr(gateway, 'id', '?')}")  # type: ignore[attr-defined]


def _record_leaks(config: pytest.Config, problems: list[str], where: str) -> None:
    if not problems:
        return
    config.stash.setdefault(_PROBLEMS, []).extend(f"{p}{where}" for p in problems)


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int) -> None:
    problems = terminalreporter.config.stash.get(_PROBLEMS, [])
    if problems:
        terminalreporter.section("procthread: left behind", sep="=", red=True, bold=True)
        for line in problems:
            terminalreporter.line(line, red=True)


@pytest.hookimpl(wrapper=True)
def pytest_cmdline_main(config: pytest.Config):  # type: ignore[no-untyped-def]
    status = yield
    if config.stash.get(_PROBLEMS, []) and status == 0:
        return pytest.ExitCode.TESTS_FAILED
    return status
