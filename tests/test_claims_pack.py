"""The conformance machinery: manifest, verdict -> outcome, table, JSON report, xdist."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_procthread.claims.expectations import expected_verdict, load_expectations
from pytest_procthread.claims.manifest import load_claims
from pytest_procthread.claims.stats import Paired, decide_ratio, median_ci
from pytest_procthread.runtime import runtime_facts

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PACK = ROOT / "conformance"
INNER_FLAGS = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest")

MINI_CLAIMS = """
pack_version = "9.9.9"

[[claim]]
id = "alpha"
statement = "Alpha holds."
source = ["doc.md §1"]
kind = "semantic"

[[claim]]
id = "beta"
statement = "Beta is refuted on purpose."
source = ["doc.md §2"]
kind = "semantic"

[[claim]]
id = "gamma"
statement = "Gamma is measured."
source = ["doc.md §3"]
kind = "measured"
relation = "greater"
margin = 0.5

[[claim]]
id = "lonely"
statement = "No check for this one."
source = ["doc.md §4"]
kind = "semantic"
"""

MINI_EXPECTATIONS = """
[[expect]]
claim = "beta"
verdict = "refuted"
reason = "beta is false by construction"
"""

MINI_CONFTEST = """
from pathlib import Path
from pytest_procthread.claims.hooks import use_pack

def pytest_configure(config):
    use_pack(config, Path(__file__).parent)
"""

MINI_CHECKS = """
import pytest

@pytest.mark.claim("alpha")
def test_alpha_holds(claim):
    claim.holds("alpha figure 1", seen=1)

@pytest.mark.claim("beta")
def test_beta_refuted_as_expected(claim):
    claim.refuted("beta figure 2")

@pytest.mark.claim("alpha")
def test_alpha_refuted_unexpectedly(claim):
    claim.decide(False, "alpha figure 3", detail="it went the other way")

@pytest.mark.claim("gamma")
def test_gamma_inconclusive(claim):
    claim.inconclusive("gamma figure 4")

@pytest.mark.claim("gamma")
def test_gamma_unsupported(claim):
    claim.unsupported("needs two CPUs")

@pytest.mark.claim("gamma")
def test_gamma_measured(claim):
    claim.compare(lambda: 3.0, lambda: 1.0, a_label="slow", b_label="fast", budget=0.2)

@pytest.mark.claim("alpha")
def test_no_verdict(claim):
    pass
"""


def _mini_pack(pytester: pytest.Pytester, checks: str = MINI_CHECKS) -> None:
    pytester.makefile(".toml", claims=MINI_CLAIMS, expectations=MINI_EXPECTATIONS)
    pytester.makeconftest(MINI_CONFTEST)
    pytester.makepyfile(test_checks=checks)


def test_verdicts_become_pytest_outcomes(pytester: pytest.Pytester) -> None:
    _mini_pack(pytester)
    result = pytester.runpytest_subprocess(*INNER_FLAGS, "-rA")
    result.assert_outcomes(passed=2, failed=2, skipped=2, xfailed=1)
    out = result.stdout.str()
    assert "alpha [-] REFUTED here, expected holds" in out
    assert "it went the other way" in out  # the evidence is in the failure
    assert "beta [-] refuted, as expected: beta is false by construction; beta figure 2" in out
    assert "gamma [-] inconclusive: gamma figure 4" in out
    assert "unsupported here: needs two CPUs" in out
    assert "ended without a verdict on claim 'alpha'" in out


def test_claims_table_lists_every_claim(pytester: pytest.Pytester) -> None:
    _mini_pack(pytester)
    result = pytester.runpytest_subprocess(*INNER_FLAGS)
    out = result.stdout.str()
    assert "procthread claims (pack 9.9.9)" in out
    facts = runtime_facts()
    assert f"runtime: {facts.system} {facts.machine}, {facts.python}" in out
    result.stdout.re_match_lines([
        r"alpha \[-\] +holds +alpha figure 1$",
        r"alpha \[-\] +REFUTED +alpha figure 3 +\(UNEXPECTED: expected holds\)$",
        r"beta \[-\] +REFUTED +beta figure 2$",
        r"gamma \[-\] +holds +slow / fast = 3x",
        r"lonely \[-\] +not run +no check ran$",
    ], consecutive=False)


def _report(pytester: pytest.Pytester, *extra: str) -> dict[str, Any]:
    path = pytester.path / "out" / "report.json"
    pytester.runpytest_subprocess(*INNER_FLAGS, f"--procthread-report={path}", *extra)
    return dict(json.loads(path.read_text()))


def test_json_report_schema(pytester: pytest.Pytester) -> None:
    _mini_pack(pytester)
    report = _report(pytester)
    assert report["schema"] == "pytest-procthread/claims-report"
    assert report["schema_version"] == 1
    assert report["pack_version"] == "9.9.9"
    assert report["runtime"]["python"] == runtime_facts().python
    by_id = {c["id"]: c for c in report["claims"]}
    assert list(by_id) == ["alpha", "beta", "gamma", "lonely"]
    gamma = {r["test"].split("::")[-1]: r for r in by_id["gamma"]["results"]}
    measured = gamma["test_gamma_measured"]
    assert measured["verdict"] == "holds"
    samples = measured["evidence"]["samples"]
    assert samples["a"] and len(samples["a"]) == len(samples["b"]) == samples["pairs"]
    assert samples["ratio_median"] == 3.0
    assert by_id["lonely"]["results"][0]["verdict"] == "not run"
    assert report["unexpected"] == 2  # the unexpected refutation and the missing verdict
    assert by_id["alpha"]["source"] == ["doc.md §1"]


def test_report_is_the_same_under_xdist(pytester: pytest.Pytester) -> None:
    _mini_pack(pytester)
    serial = _report(pytester)
    parallel = _report(pytester, "-n", "2")

    def verdicts(report: dict[str, Any]) -> list[tuple[str, str, str, bool, str]]:
        return [
            (c["id"], r["test"], r["verdict"], r["as_expected"], r["figure"].split(" [")[0])
            for c in report["claims"] for r in c["results"]
        ]

    assert verdicts(serial) == verdicts(parallel)


def test_unknown_claim_is_a_usage_error(pytester: pytest.Pytester) -> None:
    _mini_pack(pytester, checks="""
import pytest

@pytest.mark.claim("no-such-claim")
def test_x(claim):
    claim.holds("x")
""")
    result = pytester.runpytest_subprocess(*INNER_FLAGS)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "unknown claim 'no-such-claim'" in result.stderr.str()


def test_check_without_claim_marker_is_a_usage_error(pytester: pytest.Pytester) -> None:
    _mini_pack(pytester, checks="def test_unmarked():\n    pass\n")
    result = pytester.runpytest_subprocess(*INNER_FLAGS)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "names its claim with @pytest.mark.claim" in result.stderr.str()


def test_bad_manifest_names_file_and_claim(tmp_path: Path) -> None:
    (tmp_path / "claims.toml").write_text(
        '[[claim]]\nid = "x"\nstatement = "s"\nsource = ["d"]\nkind = "measured"\n'
    )
    with pytest.raises(ValueError, match=r"claims.toml: measured claim 'x' needs relation"):
        load_claims(tmp_path / "claims.toml")


def test_expectations_conditions(tmp_path: Path) -> None:
    path = tmp_path / "expectations.toml"
    path.write_text(
        '[[expect]]\nclaim = "c"\nverdict = "refuted"\nreason = "r1"\n'
        '[expect.when]\ngil_enabled = true\nusable_cpus = ">=2"\n'
        '[[expect]]\nclaim = "c"\nverdict = "inconclusive"\nreason = "r2"\n'
        '[expect.when]\npython_version = "<3.10"\nstart_method = ["spawn", "forkserver"]\n'
    )
    keys = {"gil_enabled", "usable_cpus", "python_version", "start_method"}
    found = load_expectations(path, {"c"}, keys)
    facts = {"gil_enabled": True, "usable_cpus": 4, "python_version": (3, 12, 1),
             "start_method": "fork"}
    assert expected_verdict(found, "c", facts) == ("refuted", "r1")
    facts.update(gil_enabled=False, python_version=(3, 9, 18), start_method="spawn")
    assert expected_verdict(found, "c", facts) == ("inconclusive", "r2")
    facts.update(start_method="fork")
    assert expected_verdict(found, "c", facts) == ("holds", "")
    with pytest.raises(ValueError, match="unknown condition"):
        load_expectations(path, {"c"}, {"gil_enabled"})


def test_an_expectation_may_allow_either_verdict(pytester: pytest.Pytester) -> None:
    """A measured claim that goes either way by the machine: both verdicts are as expected,
    anything else still is not, and a verdict outside the list is refused when loaded."""
    pytester.makefile(".toml", claims=MINI_CLAIMS, expectations="""
[[expect]]
claim = "gamma"
verdict = ["holds", "refuted"]
reason = "it depends on the machine"
""")
    pytester.makeconftest(MINI_CONFTEST)
    pytester.makepyfile(test_checks="""
import pytest

@pytest.mark.claim("gamma")
def test_gamma_holds(claim):
    claim.compare(lambda: 3.0, lambda: 1.0, a_label="slow", b_label="fast", budget=0.2)

@pytest.mark.claim("gamma")
def test_gamma_refuted(claim):
    claim.compare(lambda: 1.0, lambda: 3.0, a_label="fast", b_label="slow", budget=0.2)

@pytest.mark.claim("beta")
def test_beta_refuted_unexpectedly(claim):
    claim.refuted("beta figure")
""")
    result = pytester.runpytest_subprocess(*INNER_FLAGS, "-rA")
    result.assert_outcomes(passed=1, xfailed=1, failed=1)
    out = result.stdout.str()
    assert "gamma [-] refuted, as expected: it depends on the machine" in out
    assert "beta [-] REFUTED here, expected holds" in out
    bad = pytester.path / "bad.toml"
    bad.write_text('[[expect]]\nclaim = "gamma"\nverdict = ["holds", "maybe"]\nreason = "r"\n')
    with pytest.raises(ValueError, match=r"verdict .* is not one of"):
        load_expectations(bad, {"gamma"}, set())
    either = load_expectations(pytester.path / "expectations.toml", {"gamma"}, set())
    expected = ("holds or refuted", "it depends on the machine")
    assert expected_verdict(either, "gamma", {}) == expected


def test_median_ci_and_decision() -> None:
    assert median_ci(list(range(1, 11))) == (2, 9)
    assert median_ci(list(range(1, 101))) == (40, 61)
    assert median_ci([1.0, 2.0]) == (1.0, 2.0)
    clear = Paired("a", "b", a=[3.0] * 10, b=[1.0] * 10)
    assert decide_ratio(clear, "greater", 1.5) == "holds"
    assert decide_ratio(clear, "less", 0.5) == "refuted"
    noisy = Paired("a", "b", a=[0.5, 3.0] * 5, b=[1.0] * 10)
    assert decide_ratio(noisy, "greater", 1.5) is None


# -- the real pack ------------------------------------------------------------------------


def test_every_claim_of_the_pack_has_a_check(pytester: pytest.Pytester) -> None:
    named: list[str] = []

    class Recorder:
        def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
            for item in items:
                marker = item.get_closest_marker("claim")
                if marker is not None:
                    named.append(marker.args[0])

    result = pytester.inline_run("--collect-only", "-q", str(PACK), *INNER_FLAGS,
                                 plugins=[Recorder()])
    assert result.ret == pytest.ExitCode.OK  # a check naming an unknown claim fails here
    with open(PACK / "claims.toml", "rb") as f:
        declared = [c["id"] for c in tomllib.load(f)["claim"]]
    without_check = [cid for cid in declared if cid not in named]
    assert not without_check, f"claims with no check: {without_check}"
    assert set(named) <= set(declared)


def test_pack_expectations_are_valid() -> None:
    from pytest_procthread.claims.hooks import fact_keys

    claims = load_claims(PACK / "claims.toml")
    for expectation in load_expectations(PACK / "expectations.toml", set(claims), fact_keys()):
        assert expectation.reason
