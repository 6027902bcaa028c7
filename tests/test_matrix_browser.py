"""The matrix page as a browser draws it: Debian's chromium, headless, reads the laid-out table.

The page is rendered from reports that hold each kind of cell, with tests/examples/matrix/
probe.js added to a copy of it; the probe writes what the browser laid out (spans, boxes,
computed colours, visible text) into the page, and ``--dump-dom`` hands it back. Without
chromium the tests skip, except where PROCTHREAD_REQUIRE_BROWSER=1 (``.ci/run`` sets it):
there a missing browser is a failure.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pytest_procthread.matrix import build_matrix, render

EXAMPLES = Path(__file__).parent / "examples" / "matrix"
PROBE = EXAMPLES / "probe.js"
PHONE = EXAMPLES / "phone.html"  # a 390 px wide frame
BROWSER_TIMEOUT = 120


def _browser() -> str:
    for name in (os.environ.get("PROCTHREAD_CHROMIUM", ""), "chromium", "chromium-browser"):
        found = shutil.which(name) if name else None
        if found:
            return found
    why = "no chromium on PATH (Debian: apt-get install chromium; or set PROCTHREAD_CHROMIUM)"
    if os.environ.get("PROCTHREAD_REQUIRE_BROWSER") == "1":
        pytest.fail(f"PROCTHREAD_REQUIRE_BROWSER=1 but {why}")
    pytest.skip(why)


def _result(variant: str, verdict: str, expected: str, figure: str = "") -> dict[str, Any]:
    return {"variant": variant, "verdict": verdict, "expected": expected,
            "as_expected": verdict in expected.split(" or ") or verdict == "unsupported",
            "figure": figure}


RATIO = "threads / processes = 2.5x [95% CI 2.1-2.9, 8 pairs] (4 ms vs 1.6 ms)"


def _report(python: str, methods: list[str], surprise: bool) -> dict[str, Any]:
    spawn_verdict = "refuted" if surprise else "holds"
    claims = [
        {"id": "per-method", "statement": "Each start method gives the child a pid of its own.",
         "source": ["D §1 Definition (Process)"], "results": [
             _result(m, spawn_verdict if m == "spawn" else "holds", "holds") for m in methods]},
        {"id": "measured-once", "statement": "Threads exchange small messages faster.",
         "source": ["D §5 Communication"],
         "results": [_result("-", "refuted", "holds or refuted", RATIO)]},
        {"id": "one-method", "statement": "Only the main thread runs signal handlers.",
         "source": [], "beyond_documents": True,
         "results": [_result(methods[0], "holds", "holds")]},
        {"id": "never-ran", "statement": "A claim no check of this run decided.", "source": [],
         "results": [{"variant": "-", "verdict": "not run", "expected": "",
                      "as_expected": True, "figure": "no check ran"}]},
    ]
    return {"schema": "pytest-procthread/claims-report", "schema_version": 1,
            "pack_version": "1.0", "claims": claims, "unexpected": int(surprise),
            "runtime": {"system": "Linux", "python": python, "free_threaded_build": False,
                        "gil_enabled": True, "start_methods": methods}}


REPORTS = [_report("cpython-3.12", ["spawn", "fork", "forkserver"], surprise=True),
           _report("pypy-3.10", ["fork", "spawn"], surprise=False)]


def _render_and_probe(tmp_path: Path, phone: bool) -> dict[str, Any]:
    page = render(build_matrix(REPORTS), "html")
    (tmp_path / "matrix.html").write_text(
        page.replace("</body>", f"<script>{PROBE.read_text()}</script></body>"), encoding="utf-8")
    target = tmp_path / "matrix.html"
    if phone:
        target = tmp_path / "phone.html"
        shutil.copy(PHONE, target)
    command = [
        _browser(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars",
        "--window-size=1280,900", "--virtual-time-budget=10000", "--dump-dom", target.as_uri(),
    ]
    # Its own session, so that a browser stuck past the bound goes with all its helpers.
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True) as browser:
        try:
            out, err = browser.communicate(timeout=BROWSER_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(browser.pid, signal.SIGKILL)
            browser.communicate()
            pytest.fail(f"chromium did not render the page within {BROWSER_TIMEOUT} s")
    found = re.findall(r'<pre id="probe">(.*?)</pre>', out, re.S)
    assert found, f"the probe wrote nothing (chromium exit {browser.returncode}): {err[-2000:]}"
    seen: dict[str, Any] = json.loads(html.unescape(found[-1]))
    return seen


def _row(seen: dict[str, Any], claim: str) -> dict[str, Any]:
    return next(r for r in seen["rows"] if r["claim"] == claim)


@pytest.fixture(scope="module")
def wide(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _render_and_probe(tmp_path_factory.mktemp("wide"), phone=False)


@pytest.fixture(scope="module")
def narrow(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _render_and_probe(tmp_path_factory.mktemp("narrow"), phone=True)


def test_runtimes_are_column_groups_of_their_start_methods(wide: dict[str, Any]) -> None:
    assert [(g["label"], g["span"]) for g in wide["groups"]] == [
        ("Linux cpython-3.12", 3), ("Linux pypy-3.10", 2)]
    assert wide["methods"] == ["fork", "forkserver", "spawn", "fork", "spawn"]
    row = _row(wide, "per-method")
    assert [c["span"] for c in row["cells"]] == [1, 1, 1, 1, 1]


def test_a_method_independent_figure_is_shown_once_per_runtime(wide: dict[str, Any]) -> None:
    for claim in ("measured-once", "one-method", "never-ran"):
        row = _row(wide, claim)
        assert [c["span"] for c in row["cells"]] == [3, 2], claim
        for cell, group in zip(row["cells"], wide["groups"]):
            # Drawn across the whole group, not only counted as spanning it.
            assert abs(cell["box"]["left"] - group["box"]["left"]) <= 2, (claim, cell, group)
            assert abs(cell["box"]["right"] - group["box"]["right"]) <= 2, (claim, cell, group)
    once = _row(wide, "measured-once")
    assert sum(c["text"].count("2.5x [2.1-2.9]") for c in once["cells"]) == 2
    assert all("every start method" in c["text"] for c in once["cells"])
    assert [c["text"].split("\n")[-1] for c in _row(wide, "one-method")["cells"]] == [
        "spawn only", "fork only"]


def test_expected_refutation_and_surprise_differ_in_colour_and_words(
    wide: dict[str, Any]
) -> None:
    per_method = _row(wide, "per-method")["cells"]
    holds, surprise = per_method[0], per_method[2]
    expected = _row(wide, "measured-once")["cells"][0]
    assert holds["text"] == "holds"
    assert surprise["text"].startswith("UNEXPECTED refuted")
    assert "(expected holds)" in surprise["text"]
    assert "refuted 2.5x [2.1-2.9] (expected)" in expected["text"]
    assert len({holds["colour"], surprise["colour"], expected["colour"]}) == 3
    legend = {item["text"].split(":")[0]: item["colour"] for item in wide["legend"]}
    assert legend["holds"] == holds["colour"]
    assert legend["refuted, as expected"] == expected["colour"]
    assert legend["UNEXPECTED"] == surprise["colour"]
    assert legend["not run"] == _row(wide, "never-ran")["cells"][0]["colour"]


def test_each_claim_statement_is_visible_text(wide: dict[str, Any]) -> None:
    for claim, statement in [("per-method", "Each start method gives the child a pid of its "
                              "own."), ("one-method", "Only the main thread runs signal "
                                                      "handlers.")]:
        row = _row(wide, claim)
        assert statement in row["header"].replace("\n", " ") and row["statementShown"]
    assert "D §1 Definition (Process)" in _row(wide, "per-method")["header"]
    assert "beyond the documents" in _row(wide, "one-method")["header"]


def test_on_a_phone_the_table_scrolls_in_its_box_and_keeps_the_claims(
    narrow: dict[str, Any]
) -> None:
    assert narrow["viewport"] == 390
    assert narrow["pageWidth"] <= narrow["viewport"], "the page itself scrolls sideways"
    assert narrow["scroller"]["scroll"] > narrow["scroller"]["client"]
    scrolled = narrow["scrolled"]
    assert scrolled["scrollLeft"] > 0
    claim = scrolled["claim"]
    assert claim["left"] >= 0 and claim["right"] <= narrow["viewport"] / 2, claim
    assert scrolled["statementShown"]
