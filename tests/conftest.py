"""Fixtures shared by the tests that run one check under every start method."""

from __future__ import annotations

import pytest

from pytest_procthread.process import ProcessRunner

# Files that the tests copy into inner pytest runs; not tests of this suite.
collect_ignore = ["examples"]

START_METHODS = ["fork", "forkserver", "spawn"]
RUNNER_WAIT = 30.0  # the bound of every wait of a runner; a passing run takes a fraction


@pytest.fixture(params=START_METHODS)
def method(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def runner(isolated_process: ProcessRunner, method: str) -> ProcessRunner:
    """The test's isolated_process runner under ``method``."""
    return isolated_process.options(start_method=method, timeout=RUNNER_WAIT)
