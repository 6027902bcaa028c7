"""Prints, at the end of the session, which of pytest-procthread's modules it loaded."""

import sys

import pytest


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    ours = sorted(name for name in sys.modules if name.startswith("pytest_procthread."))
    terminalreporter.write_line("loaded: " + " ".join(ours))
