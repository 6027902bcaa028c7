"""pytest wiring of the conformance pack: the ``claim`` fixture, the table, the JSON report.

A pack (a directory with claims.toml and expectations.toml) is switched on by its
conftest calling :func:`use_pack`; without one these hooks do nothing.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import pytest

from ..options import PACK_METHODS_OPTION
from ..runtime import runtime_facts
from .records import CLAIM_KEY, RECORD_KEY

if TYPE_CHECKING:
    from .expectations import Expectation
    from .manifest import Claim
    from .verdicts import ClaimCheck

# Loaded at every pytest start; what only a pack needs (the manifest, statistics,
# verdicts, the report) is imported by the hook that needs it once a pack is in use.


@dataclass
class Pack:
    directory: Path
    version: str
    claims: dict[str, Claim]
    expectations: list[Expectation]
    records: dict[str, dict[str, Any]]


_PACK = pytest.StashKey[Pack]()


def fact_keys() -> set[str]:
    return set(runtime_facts().as_dict()) | {"start_method"}


def use_pack(config: pytest.Config, directory: Path) -> Pack:
    """Load ``claims.toml`` and ``expectations.toml`` from ``directory`` for this run."""
    import sys

    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib
    from .expectations import load_expectations
    from .manifest import load_claims

    with open(directory / "claims.toml", "rb") as f:
        version = str(tomllib.load(f).get("pack_version", "0"))
    try:
        claims = load_claims(directory / "claims.toml")
        expectations = load_expectations(
            directory / "expectations.toml", set(claims), fact_keys()
        )
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    pack = Pack(directory, version, claims, expectations, {})
    config.stash[_PACK] = pack
    return pack


def chosen_start_methods(config: pytest.Config) -> Optional[tuple[str, ...]]:
    """The start methods the pack is asked to run (None: every one the platform has)."""
    text = config.getoption("procthread_pack_start_methods", None)
    if text is None:
        return None
    from ..matrix import START_METHODS

    names = tuple(name.strip() for name in str(text).split(",") if name.strip())
    wrong = [name for name in names if name not in START_METHODS]
    if wrong or not names:
        raise pytest.UsageError(
            f"{PACK_METHODS_OPTION}={text!r}: {', '.join(map(repr, wrong)) or 'nothing'} is "
            f"not a start method; give one or more of {', '.join(START_METHODS)}, "
            f"comma-separated (e.g. {PACK_METHODS_OPTION}=fork,spawn)"
        )
    return names


def run_facts(config: pytest.Config) -> dict[str, Any]:
    """The runtime facts of this run, its start methods narrowed to those it ran."""
    facts = runtime_facts().as_dict()
    chosen = chosen_start_methods(config)
    if chosen is not None:
        facts["start_methods"] = [m for m in facts["start_methods"] if m in chosen]
    return facts


def _variant(item: pytest.Item) -> str:
    callspec = getattr(item, "callspec", None)
    if callspec is None or not callspec.params:
        return "-"
    return "-".join(str(v) for v in callspec.params.values())


@pytest.fixture
def claim(request: pytest.FixtureRequest) -> Iterator[ClaimCheck]:
    """The claim this check decides (from ``@pytest.mark.claim``): state a verdict on it."""
    pack: Optional[Pack] = request.config.stash.get(_PACK, None)
    marker = request.node.get_closest_marker("claim")
    if pack is None or marker is None or not marker.args:
        raise pytest.UsageError(
            f"{request.node.nodeid}: the 'claim' fixture needs @pytest.mark.claim('<id>') and "
            f"a pack loaded by its conftest (pytest_procthread.claims.hooks.use_pack)"
        )
    from ..settings import resolve
    from .machine import machine_share
    from .verdicts import ClaimCheck

    cid = marker.args[0]
    if cid not in pack.claims:
        raise pytest.UsageError(f"{request.node.nodeid}: unknown claim {cid!r}")
    facts = runtime_facts().as_dict()
    callspec = getattr(request.node, "callspec", None)
    params = callspec.params if callspec is not None else {}
    facts["start_method"] = params.get("start_method", facts["default_start_method"])
    check = ClaimCheck(
        pack.claims[cid], _variant(request.node), facts, pack.expectations,
        lambda record: request.node.user_properties.append((RECORD_KEY, record)),
    )
    measured = pack.claims[cid].kind == "measured"
    with machine_share(request.config, exclusive=measured,
                       timeout=resolve(request.config).timeout) as had_machine:
        if not had_machine:
            check.note(machine="ran without the machine to itself (lock not had in time)")
        yield check


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if item.config.stash.get(_PACK, None) is None:
        return report
    from .verdicts import ClaimCheck

    check = getattr(item, "funcargs", {}).get("claim")
    if (
        report.when == "call" and report.passed and isinstance(check, ClaimCheck)
        and check.verdict is None
    ):
        report.outcome = "failed"
        report.longrepr = (
            f"{item.nodeid}: the check ended without a verdict on claim "
            f"{check.claim.id!r}; call claim.holds(), claim.refuted(), claim.decide(), "
            f"claim.compare(), claim.inconclusive() or claim.unsupported()"
        )
    return report


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for key, value in report.user_properties:
        if key != RECORD_KEY:
            continue
        # Setup skips and call reports carry the record; keep one per test.
        pack = _pack_of_session()
        if pack is not None and isinstance(value, dict):
            pack.records[report.nodeid] = dict(value)
    if report.skipped and report.when == "setup":
        pack = _pack_of_session()
        claim_id = _claim_of_nodeid(report)
        if pack is not None and claim_id and report.nodeid not in pack.records:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else ""
            pack.records[report.nodeid] = {
                "claim": claim_id, "variant": _variant_of_nodeid(report.nodeid),
                "verdict": "unsupported", "expected": "", "as_expected": True,
                "figure": str(reason).replace("Skipped: ", ""), "evidence": {},
            }
    if report.failed and report.when in ("setup", "call"):
        pack = _pack_of_session()
        if pack is not None and report.nodeid not in pack.records:
            claim_id = _claim_of_nodeid(report)
            if claim_id:
                pack.records[report.nodeid] = {
                    "claim": claim_id, "variant": _variant_of_nodeid(report.nodeid),
                    "verdict": "error", "expected": "", "as_expected": False,
                    "figure": f"the check itself failed ({report.when}): "
                    f"{str(report.longrepr).splitlines()[-1][:200] if report.longrepr else ''}",
                    "evidence": {},
                }


_CONFIG: list[pytest.Config] = []


def pytest_configure(config: pytest.Config) -> None:
    _CONFIG.append(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    if config in _CONFIG:
        _CONFIG.remove(config)


def _pack_of_session() -> Optional[Pack]:
    return _CONFIG[-1].stash.get(_PACK, None) if _CONFIG else None


def _claim_of_nodeid(report: pytest.TestReport) -> str:
    for key, value in report.user_properties:
        if key == CLAIM_KEY:
            return str(value)
    return ""


def _variant_of_nodeid(nodeid: str) -> str:
    if nodeid.endswith("]") and "[" in nodeid:
        return nodeid[nodeid.rindex("[") + 1 : -1]
    return "-"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    pack = config.stash.get(_PACK, None)
    if pack is None:
        return
    chosen = chosen_start_methods(config)
    if chosen is not None:
        from ..matrix import start_method_of

        keep = [i for i in items if start_method_of(_variant(i)) in ("", *chosen)]
        drop = [i for i in items if start_method_of(_variant(i)) not in ("", *chosen)]
        if drop:
            config.hook.pytest_deselected(items=drop)
            items[:] = keep
    for item in items:
        marker = item.get_closest_marker("claim")
        inside = pack.directory in Path(str(item.path)).parents
        if inside and (marker is None or not marker.args):
            raise pytest.UsageError(
                f"{item.nodeid}: every check of the pack names its claim with "
                f"@pytest.mark.claim('<id>')"
            )
        if marker is None or not marker.args:
            continue
        if marker.args[0] not in pack.claims:
            raise pytest.UsageError(
                f"{item.nodeid}: unknown claim {marker.args[0]!r}; add it to "
                f"{pack.directory / 'claims.toml'} or use one of: {', '.join(pack.claims)}"
            )
        # So that a check that errors out still lands on its claim's row.
        item.user_properties.append((CLAIM_KEY, marker.args[0]))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    config = terminalreporter.config
    pack = config.stash.get(_PACK, None)
    if pack is None or hasattr(config, "workerinput") or config.option.collectonly:
        return
    from ..report import render_table

    facts = run_facts(config)
    terminalreporter.section(f"procthread claims (pack {pack.version})")
    for line in render_table(pack.claims, pack.records, facts):
        terminalreporter.line(line)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    pack = config.stash.get(_PACK, None)
    if pack is None:
        return
    from ..report import build_report, write_report
    from .machine import remove_lock_files

    remove_lock_files(config)  # only a pack's checks take the machine lock
    path = config.getoption("procthread_report", None)
    if not path or hasattr(config, "workerinput"):
        return
    report = build_report(pack.version, pack.claims, pack.records, run_facts(config))
    write_report(Path(path), report)
