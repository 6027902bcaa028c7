"""Shared set-up of the conformance pack: the claims manifest, start methods, evidence."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_procthread.claims import load_claims
from pytest_procthread.process import ProcessRunner
from pytest_procthread.runtime import runtime_facts

CLAIMS = load_claims(Path(__file__).with_name("claims.toml"))
ALL_START_METHODS = ("fork", "forkserver", "spawn")
_RESULTS: dict[str, list[tuple[str, str, str]]] = {}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here not in Path(str(item.fspath)).parents:
            continue
        marker = item.get_closest_marker("claim")
        if marker is None or not marker.args:
            raise pytest.UsageError(
                f"{item.nodeid}: every conformance check names its claim with "
                f"@pytest.mark.claim('<id>'); known ids: {', '.join(CLAIMS)}"
            )
        if marker.args[0] not in CLAIMS:
            raise pytest.UsageError(
                f"{item.nodeid}: unknown claim {marker.args[0]!r}; add it to "
                f"conformance/claims.toml or use one of: {', '.join(CLAIMS)}"
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


@pytest.fixture
def evidence(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """A dict the check fills with what it saw; it goes into the report and the summary."""
    found: dict[str, Any] = {}
    request.node.user_properties.append(("evidence", found))
    yield found


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    marker = item.get_closest_marker("claim")
    skipped_at_setup = report.when == "setup" and report.skipped
    if marker is None or (report.when != "call" and not skipped_at_setup):
        return
    evidence = dict(item.user_properties).get("evidence", "")
    params = getattr(item, "callspec", None)
    variant = ",".join(str(v) for v in params.params.values()) if params else "-"
    _RESULTS.setdefault(marker.args[0], []).append((variant, report.outcome, str(evidence)))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _RESULTS:
        return
    facts = runtime_facts()
    terminalreporter.section(
        f"claims on {facts.system} {facts.machine}, {facts.python} "
        f"({facts.python_version_text}), {facts.usable_cpus} usable CPUs"
    )
    for cid, rows in _RESULTS.items():
        terminalreporter.line(f"{cid}: {CLAIMS[cid].statement}")
        for variant, outcome, evidence in rows:
            terminalreporter.line(f"    [{variant}] {outcome}: {evidence[:200]}")
