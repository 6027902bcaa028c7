"""Merging claims reports of many platforms into one table: claims down, platforms across.

A platform is one column: OS, implementation and version, build flags, start method. A
check that does not depend on the start method counts for every start method of its run.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .report import SCHEMA, SCHEMA_VERSION

START_METHODS = ("fork", "forkserver", "spawn")
SYMBOL = {"holds": "holds", "refuted": "refuted", "inconclusive": "inconclusive",
          "unsupported": "unsupported", "error": "ERROR", "not run": "-"}


class MergeError(ValueError):
    """Reports that cannot be merged; the message says which and why."""


def load_reports(paths: Sequence[Path]) -> list[dict[str, Any]]:
    reports = []
    for path in paths:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise MergeError(f"{path}: not a readable JSON report ({exc})") from None
        if data.get("schema") != SCHEMA:
            raise MergeError(f"{path}: not a pytest-procthread claims report")
        data["_path"] = str(path)
        reports.append(data)
    if not reports:
        raise MergeError("no reports given")
    first = reports[0]
    for report in reports[1:]:
        for key, what in (("schema_version", "schema version"), ("pack_version", "pack version")):
            if report.get(key) != first.get(key):
                raise MergeError(
                    f"cannot merge {report['_path']} ({what} {report.get(key)}) with "
                    f"{first['_path']} ({what} {first.get(key)}): run the same pack version "
                    f"on every platform, or merge them separately"
                )
    if first.get("schema_version") != SCHEMA_VERSION:
        raise MergeError(
            f"{first['_path']}: schema version {first.get('schema_version')}, this tool reads "
            f"version {SCHEMA_VERSION}"
        )
    return reports


def start_method_of(variant: str) -> str:
    for token in variant.split("-"):
        if token in START_METHODS:
            return token
    return ""


def platform_label(runtime: dict[str, Any], method: str) -> str:
    gil = "" if not runtime.get("free_threaded_build") else (
        " GIL on" if runtime.get("gil_enabled") else " GIL off")
    return f"{runtime['system']} {runtime['python']}{gil} {method}"


def short_figure(figure: str) -> str:
    match = re.search(r"= ([0-9.]+(?:e[-+]?\d+)?x) \[95% CI ([^,\]]+)", figure)
    return f"{match.group(1)} [{match.group(2)}]" if match else ""


def _cell(results: list[dict[str, Any]]) -> dict[str, Any]:
    if not results:
        return {"verdict": "not run", "figure": "", "unexpected": False, "detail": ""}
    verdicts = sorted({r["verdict"] for r in results})
    verdict = verdicts[0] if len(verdicts) == 1 else "mixed: " + "/".join(
        f"{v} {sum(r['verdict'] == v for r in results)}" for v in verdicts)
    figures = [short_figure(str(r.get("figure", ""))) for r in results]
    return {
        "verdict": verdict,
        "figure": "; ".join(f for f in figures if f),
        "unexpected": any(not r.get("as_expected", True) for r in results),
        "detail": " | ".join(str(r.get("figure", "")) for r in results),
    }


def build_matrix(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Rows (claims) x columns (platforms), with summary rows."""
    columns: list[dict[str, Any]] = []
    for report in reports:
        runtime = report["runtime"]
        methods = sorted(runtime.get("start_methods", []),
                         key=lambda m: START_METHODS.index(m) if m in START_METHODS else 9)
        for method in methods:
            columns.append({"label": platform_label(runtime, method), "report": report,
                            "method": method, "runtime": runtime})
    claims = [(c["id"], c["statement"], c.get("beyond_documents", False))
              for c in reports[0]["claims"]]
    rows = []
    for cid, statement, beyond in claims:
        cells = []
        for column in columns:
            entry = next(c for c in column["report"]["claims"] if c["id"] == cid)
            results = [
                r for r in entry["results"]
                if r["verdict"] != "not run"
                and start_method_of(r.get("variant", "-")) in ("", column["method"])
            ]
            cells.append(_cell(results))
        rows.append({"claim": cid, "statement": statement, "beyond": beyond, "cells": cells})
    summary = {
        "holds everywhere": [r["claim"] for r in rows
                             if all(c["verdict"] == "holds" for c in r["cells"])],
        "refuted everywhere": [r["claim"] for r in rows
                               if all(c["verdict"] == "refuted" for c in r["cells"])],
        "differs by platform": [r["claim"] for r in rows
                                if len({c["verdict"] for c in r["cells"]}) > 1],
    }
    # Counted per result, not per cell: a check that does not depend on the start method
    # shows in every column of its run.
    unexpected = sum(
        1 for report in reports for claim in report["claims"] for result in claim["results"]
        if not result.get("as_expected", True)
    )
    return {
        "pack_version": reports[0]["pack_version"],
        "schema_version": reports[0]["schema_version"],
        "columns": [c["label"] for c in columns],
        "rows": rows,
        "summary": summary,
        "unexpected": unexpected,
    }


def _text(cell: dict[str, Any]) -> str:
    text = str(SYMBOL.get(cell["verdict"], cell["verdict"]))
    if cell["figure"]:
        text += f" {cell['figure']}"
    if cell["unexpected"]:
        text = f"**{text} (unexpected)**"
    return text


def to_markdown(matrix: dict[str, Any]) -> str:
    head = ["claim", *matrix["columns"]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in matrix["rows"]:
        name = f"`{row['claim']}`" + (" (beyond)" if row["beyond"] else "")
        lines.append("| " + " | ".join([name, *(_text(c) for c in row["cells"])]) + " |")
    lines.append("")
    for title, ids in matrix["summary"].items():
        lines.append(f"- **{title}** ({len(ids)}): {', '.join(ids) if ids else 'none'}")
    lines.append(f"- **unexpected verdicts**: {matrix['unexpected']}")
    return "\n".join(lines) + "\n"


_COLOURS = {"holds": "#d8f0d8", "refuted": "#f6d6d6", "inconclusive": "#f3ecc8",
            "unsupported": "#e4e4e4", "not run": "#ffffff"}


def to_html(matrix: dict[str, Any]) -> str:
    def cell(c: dict[str, Any]) -> str:
        colour = _COLOURS.get(c["verdict"], "#f0e0f0")
        border = "border:3px solid #c00;" if c["unexpected"] else ""
        return (f'<td style="background:{colour};{border}" title="{html.escape(c["detail"])}">'
                f"{html.escape(_text(c).replace('**', ''))}</td>")

    head = "".join(f"<th>{html.escape(c)}</th>" for c in matrix["columns"])
    body = "".join(
        f'<tr><th title="{html.escape(r["statement"])}">{html.escape(r["claim"])}'
        f'{" (beyond)" if r["beyond"] else ""}</th>{"".join(cell(c) for c in r["cells"])}</tr>'
        for r in matrix["rows"]
    )
    summary = "".join(
        f"<li><b>{html.escape(t)}</b> ({len(ids)}): {html.escape(', '.join(ids) or 'none')}</li>"
        for t, ids in matrix["summary"].items()
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>pytest-procthread claims "
        f"matrix (pack {html.escape(str(matrix['pack_version']))})</title><style>"
        "body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}"
        "td,th{border:1px solid #999;padding:3px 6px;font-size:13px;text-align:left}"
        "</style></head><body>"
        f"<h1>Process and thread claims, pack {html.escape(str(matrix['pack_version']))}</h1>"
        "<p>Hover a claim for its statement, a cell for the figures that decided it.</p>"
        f"<table><tr><th>claim</th>{head}</tr>{body}</table><ul>{summary}"
        f"<li><b>unexpected verdicts</b>: {matrix['unexpected']}</li></ul></body></html>\n"
    )


def render(matrix: dict[str, Any], fmt: str) -> str:
    if fmt == "markdown":
        return to_markdown(matrix)
    if fmt == "html":
        return to_html(matrix)
    if fmt == "json":
        return json.dumps(matrix, indent=1) + "\n"
    raise MergeError(f"unknown format {fmt!r}; use markdown, html or json")
