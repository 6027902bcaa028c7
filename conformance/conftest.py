"""Shared set-up of the conformance pack: the claims manifest, start methods, children."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_procthread.claims.hooks import use_pack
from pytest_procthread.process import ProcessRunner
from pytest_procthread.runtime import runtime_facts

HERE = Path(__file__).parent
ALL_START_METHODS = ("fork", "forkserver", "spawn")


def pytest_configure(config: pytest.Config) -> None:
    use_pack(config, HERE)
    # The pack forks while threads run on purpose (two claims are about exactly that);
    # Python 3.12+ warns about it each time, which here says nothing new.
    config.addinivalue_line(
        "filterwarnings", r"ignore:This process \(pid=\d+\) is multi-threaded:DeprecationWarning"
    )


@pytest.fixture(params=ALL_START_METHODS)
def start_method(request: pytest.FixtureRequest) -> str:
    """Every start method; those this platform lacks are skipped with the reason."""
    method: str = request.param
    facts = runtime_facts()
    if method not in facts.start_methods:
        pytest.skip(f"start method {method!r} is not available on {facts.system}")
    return method


@pytest.fixture
def procs(isolated_process: ProcessRunner, start_method: str) -> ProcessRunner:
    """Isolated children under the start method of this parametrisation."""
    return isolated_process.options(start_method=start_method, timeout=30)
