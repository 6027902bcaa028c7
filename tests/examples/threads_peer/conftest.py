"""Stands in for pytest-run-parallel where it is not installed: its plugin name and its
option, which are what pytest-procthread's coexistence check reads."""

import pytest


class Peer:
    pass


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    parser.addoption("--parallel-threads", dest="parallel_threads", default=1)
    pluginmanager.register(Peer(), "run-parallel")
