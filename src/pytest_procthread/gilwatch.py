"""pytest wiring of the live GIL (:mod:`pytest_procthread.gil`): where a re-enable is seen.

Registered by the main plugin as ``procthread-gil``, one instance per pytest run. It
reads the GIL after every window an import can happen in (start-up, ``pytest_configure``,
each collector, each test's setup, call and teardown), takes the module's name from
CPython's RuntimeWarning wherever pytest records it (``pytest_warning_recorded``) and,
in ``pytest_configure``, where pytest does not, from ``warnings.showwarning``; and it
writes the report header's line and the terminal summary's section.
``requires(gil=...)`` asks :func:`watch_of` for the GIL as it decides (``markers.decision``).
"""

from __future__ import annotations

import warnings
from collections.abc import Generator
from typing import Any, Callable, Optional, TextIO

import pytest

from .gil import GilWatch

_WATCH = pytest.StashKey[GilWatch]()
_WORKER_KEY = "procthread_gil"  # in pytest-xdist's workeroutput


def watch_of(config: pytest.Config) -> GilWatch:
    """This run's watch (a fresh one where the plugin was disabled with ``-p no:``)."""
    return config.stash.setdefault(_WATCH, GilWatch.of_this_process())


class _Tee:
    """``warnings.showwarning`` while ``pytest_configure`` runs: notes CPython's re-enable
    warning, then shows every warning as the function it replaced would have."""

    def __init__(self, watch: GilWatch, shown: Callable[..., Any]) -> None:
        self.watch, self.shown = watch, shown

    def __call__(self, message: Warning | str, category: type[Warning], filename: str,
                 lineno: int, file: Optional[TextIO] = None, line: Optional[str] = None
                 ) -> None:
        if issubclass(category, RuntimeWarning):
            self.watch.heard(str(message), "configure")
        self.shown(message, category, filename, lineno, file, line)


class GilWatchPlugin:
    """The hooks of one run; ``watch`` is its :class:`~pytest_procthread.gil.GilWatch`."""

    def __init__(self) -> None:
        self.watch = GilWatch.of_this_process()
        self._configured = False
        self._tee: Optional[_Tee] = None

    @pytest.hookimpl(tryfirst=True)
    def pytest_configure(self, config: pytest.Config) -> None:
        config.stash[_WATCH] = self.watch
        self.watch.look("start-up")
        # pytest records no warning of pytest_configure (a historic hook: no wrapper
        # either), so a tee from our first implementation to our last one notes the
        # module whose import there turned the GIL on; a failed configure removes it.
        self._tee = _Tee(self.watch, warnings.showwarning)
        warnings.showwarning = self._tee
        config.add_cleanup(self._untee)

    @pytest.hookimpl(trylast=True, specname="pytest_configure")
    def configured(self) -> None:
        self._untee()
        self._configured = True
        self.watch.look("configure")

    def _untee(self) -> None:
        tee, self._tee = self._tee, None
        if tee is None:
            return
        shown = tee.shown
        if warnings.showwarning is tee:  # else someone replaced it since: leave theirs
            warnings.showwarning = shown

    def pytest_warning_recorded(
        self, warning_message: warnings.WarningMessage, when: str, nodeid: str
    ) -> None:
        if not issubclass(warning_message.category, RuntimeWarning):
            return
        phase = {"collect": "collection", "runtest": "test"}.get(
            when, "session end" if self._configured else "start-up")
        self.watch.heard(str(warning_message.message), phase, nodeid)

    @pytest.hookimpl(wrapper=True)
    def pytest_make_collect_report(
        self, collector: pytest.Collector
    ) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
        try:
            return (yield)
        finally:
            self.watch.look("collection", collector.nodeid)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Generator[None, None, None]:
        try:
            return (yield)
        finally:
            self.watch.look("setup", item.nodeid)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, None, None]:
        try:
            return (yield)
        finally:
            self.watch.look("call", item.nodeid)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Generator[None, None, None]:
        try:
            return (yield)
        finally:
            self.watch.look("teardown", item.nodeid)

    def pytest_report_header(self) -> str:
        return self.watch.header()

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        self.watch.look("session end")
        workeroutput = getattr(session.config, "workeroutput", None)
        if workeroutput is not None:  # a pytest-xdist worker: the controller reports it
            workeroutput[_WORKER_KEY] = self.watch.to_data()

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        data = getattr(node, "workeroutput", {}).get(_WORKER_KEY)
        gateway = getattr(node, "gateway", None)
        self.watch.merge(data, str(getattr(gateway, "id", "?")))

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        self.watch.look("session end")
        lines = self.watch.summary()
        if lines:
            terminalreporter.section("procthread: GIL re-enabled", sep="=", yellow=True)
            for line in lines:
                terminalreporter.line(line)
