"""`python -m pytest_procthread matrix`: many reports, one table."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from pytest_procthread.__main__ import README_END, README_START, main
from pytest_procthread.matrix.merge import claim_cells


def _report(python: str, verdict_spawn: str, pack: str = "1.0") -> dict[str, Any]:
    return {
        "schema": "pytest-procthread/claims-report", "schema_version": 1, "pack_version": pack,
        "runtime": {"system": "Linux", "python": python, "free_threaded_build": False,
                    "gil_enabled": True, "start_methods": ["spawn", "fork"]},
        "claims": [
            {"id": "c1", "statement": "one", "beyond_documents": False, "results": [
                {"variant": "fork", "verdict": "holds", "as_expected": True,
                 "figure": "a / b = 3.5x [95% CI 3.1-3.9, 8 pairs] (1 ms vs 0.3 ms)"},
                {"variant": "spawn", "verdict": verdict_spawn,
                 "as_expected": verdict_spawn == "holds", "figure": "f"},
            ]},
            {"id": "c2", "statement": "two", "beyond_documents": True, "results": [
                {"variant": "-", "verdict": "refuted", "as_expected": True, "figure": "x"},
            ]},
        ],
        "unexpected": 0,
    }


def _write(tmp_path: Path, name: str, data: dict[str, Any]) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_markdown_merges_platforms(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _write(tmp_path, "a.json", _report("cpython-3.12", "holds"))
    b = _write(tmp_path, "b.json", _report("pypy-3.9", "refuted"))
    assert main(["matrix", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0]
    # One column per runtime: its start methods are named in the cells that differ by them.
    assert header == "| claim | Linux cpython-3.12 | Linux pypy-3.9 |"
    assert ("| `c1`: one | fork: holds 3.5x [3.1-3.9]<br>spawn: holds | "
            "fork: holds 3.5x [3.1-3.9]<br>spawn: **UNEXPECTED refuted** |") in out
    # Measured once per runtime: one figure, no start method named.
    assert "| `c2` (beyond the documents): two | refuted (expected) | refuted (expected) |" in out
    assert "**refuted everywhere** (1): c2" in out
    assert "**differs by platform** (1): c1" in out
    assert "**unexpected verdicts**: 1 (c1 on Linux pypy-3.9 (spawn))" in out
    assert "UNEXPECTED: a verdict the expectations do not allow" in out
    assert main(["matrix", str(a), str(b), "--fail-on-unexpected"]) == 1


def test_refuses_different_pack_versions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = _write(tmp_path, "a.json", _report("cpython-3.12", "holds", pack="1.0"))
    b = _write(tmp_path, "b.json", _report("cpython-3.13", "holds", pack="2.0"))
    assert main(["matrix", str(a), str(b)]) == 2
    err = capsys.readouterr().err
    assert "cannot merge" in err and "pack version 2.0" in err and "pack version 1.0" in err


def test_refuses_other_schema_and_non_reports(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    other = copy.deepcopy(_report("cpython-3.12", "holds"))
    other["schema_version"] = 99
    a = _write(tmp_path, "a.json", _report("cpython-3.12", "holds"))
    b = _write(tmp_path, "b.json", other)
    assert main(["matrix", str(a), str(b)]) == 2
    assert "schema version 99" in capsys.readouterr().err
    junk = _write(tmp_path, "junk.json", {"hello": 1})
    assert main(["matrix", str(junk)]) == 2
    assert "not a pytest-procthread claims report" in capsys.readouterr().err


def test_html_is_one_self_contained_file(tmp_path: Path) -> None:
    a = _write(tmp_path, "a.json", _report("cpython-3.12", "holds"))
    out = tmp_path / "m.html"
    assert main(["matrix", str(a), "--format", "html", "-o", str(out)]) == 0
    page = out.read_text()
    assert page.startswith("<!doctype html>") and "</html>" in page
    assert "http" not in page and "<script" not in page and "<link" not in page
    assert "Linux cpython-3.12" in page and '<span class="statement">one</span>' in page
    assert "<style>" in page and "td.t-unexpected" in page


def test_json_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _write(tmp_path, "a.json", _report("cpython-3.12", "holds"))
    assert main(["matrix", str(a), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["columns"] == ["Linux cpython-3.12 fork", "Linux cpython-3.12 spawn"]
    assert data["summary"]["holds everywhere"] == ["c1"]
    assert data["runtimes"] == [{"label": "Linux cpython-3.12", "start_methods": ["fork", "spawn"]}]
    c1, c2 = (row["groups"][0]["cells"] for row in data["rows"])
    assert [(c["start_methods"], c["scope"]) for c in c1] == [(["fork"], "fork"),
                                                              (["spawn"], "spawn")]
    assert [(c["start_methods"], c["scope"], c["verdict"]) for c in c2] == [
        (["fork", "spawn"], "every start method", "refuted")]


def test_readme_section_is_replaced(tmp_path: Path) -> None:
    a = _write(tmp_path, "a.json", _report("cpython-3.12", "holds"))
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{README_START}\nold table\n{README_END}\noutro\n")
    assert main(["readme", str(a), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "old table" not in text and "| `c1`: one |" in text
    assert text.startswith("intro\n") and text.endswith("outro\n")


def _r(variant: str, verdict: str = "holds") -> dict[str, Any]:
    return {"variant": variant, "verdict": verdict, "as_expected": True, "figure": ""}


def test_a_cell_covers_the_start_methods_its_checks_ran_under() -> None:
    three = ["fork", "forkserver", "spawn"]

    def shape(results: list[dict[str, Any]], methods: list[str] = three) -> list[Any]:
        return [(c["start_methods"], c["scope"], c["verdict"])
                for c in claim_cells({"results": results}, methods)]

    # Measured once: one cell across the runtime.
    assert shape([_r("-", "refuted")]) == [(three, "every start method", "refuted")]
    # Checked under one start method by design: one cell that says which.
    assert shape([_r("fork")]) == [(three, "fork only", "holds")]
    # Per start method; a method with no check is "not run", not borrowed from another.
    assert shape([_r("fork-pipe"), _r("spawn-pipe", "refuted")]) == [
        (["fork"], "fork", "holds"), (["forkserver"], "forkserver", "not run"),
        (["spawn"], "spawn", "refuted")]
    # A check that names no method counts under each method beside those that do.
    assert shape([_r("fork-queue"), _r("-")]) == [
        (["fork"], "fork", "holds"), (["forkserver"], "forkserver", "holds"),
        (["spawn"], "spawn", "holds")]
    assert shape([_r("spawn")], ["spawn"]) == [(["spawn"], "spawn", "holds")]
    assert shape([{"variant": "-", "verdict": "not run", "as_expected": True}]) == [
        (three, "every start method", "not run")]
