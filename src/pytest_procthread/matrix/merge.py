"""Merging claims reports of many platforms into one table: claims down, runtimes across.

This module owns what a cell of the table means. A runtime (OS, implementation and version,
build flags, GIL state) is one report; its start methods are its sub-columns. A claim whose
checks name no start method was measured once on that runtime and gets one cell for all
its start methods, never that one figure copied into each; a claim checked under one start
method only gets one cell that says which. Everything else gets a cell per start method.
How the cells are drawn belongs to ``markdown`` and ``page``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..report import SCHEMA, SCHEMA_VERSION

START_METHODS = ("fork", "forkserver", "spawn")
EVERY_METHOD = "every start method"  # the scope of a cell measured once per runtime


class MergeError(ValueError):
    """Reports that cannot be merged; the message says which and why."""


def load_reports(paths: Sequence[Path]) -> list[dict[str, Any]]:
    reports = []
    for path in paths:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise MergeError(f"{path}: not a readable JSON report ({exc})") from None
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
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
    """The start method a check's variant names ("fork-pipe" -> "fork"), or ""."""
    for token in variant.split("-"):
        if token in START_METHODS:
            return token
    return ""


def runtime_label(runtime: dict[str, Any]) -> str:
    gil = "" if not runtime.get("free_threaded_build") else (
        " GIL on" if runtime.get("gil_enabled") else " GIL off")
    return f"{runtime['system']} {runtime['python']}{gil}"


def short_figure(figure: str) -> str:
    """The ratio and its interval out of a measured claim's figure, or ""."""
    match = re.search(r"= ([0-9.]+(?:e[-+]?\d+)?x) \[95% CI ([^,\]]+)", figure)
    return f"{match.group(1)} [{match.group(2)}]" if match else ""


def _methods(runtime: dict[str, Any]) -> list[str]:
    order = {m: i for i, m in enumerate(START_METHODS)}
    return sorted(runtime.get("start_methods", []), key=lambda m: order.get(m, len(order)))


def _cell(results: list[dict[str, Any]], methods: list[str], scope: str) -> dict[str, Any]:
    """One cell: the verdict of these results, over the start-method columns it covers."""
    cell: dict[str, Any] = {"start_methods": methods, "scope": scope, "verdict": "not run",
                            "figure": "", "unexpected": False, "expected": "", "detail": ""}
    if not results:
        return cell
    verdicts = sorted({r["verdict"] for r in results})
    cell["verdict"] = verdicts[0] if len(verdicts) == 1 else "mixed: " + "/".join(
        f"{v} {sum(r['verdict'] == v for r in results)}" for v in verdicts)
    cell["figure"] = "; ".join(f for f in (short_figure(str(r.get("figure", "")))
                                           for r in results) if f)
    cell["unexpected"] = any(not r.get("as_expected", True) for r in results)
    cell["expected"] = " / ".join(sorted({str(r["expected"]) for r in results
                                          if r.get("expected")}))
    cell["detail"] = " | ".join(str(r.get("figure", "")) for r in results)
    return cell


def claim_cells(entry: dict[str, Any], methods: list[str]) -> list[dict[str, Any]]:
    """The cells of one claim on one runtime, from left to right."""
    results = [r for r in entry.get("results", []) if r["verdict"] != "not run"]
    named = {start_method_of(str(r.get("variant", "-"))) for r in results}
    if named == {""}:
        return [_cell(results, methods, EVERY_METHOD)]
    if len(named) == 1 and len(methods) > 1:
        only = named.pop()
        return [_cell(results, methods, f"{only} only")]
    if not results:
        return [_cell([], methods, EVERY_METHOD)]
    return [
        _cell([r for r in results
               if start_method_of(str(r.get("variant", "-"))) in ("", method)],
              [method], method)
        for method in methods
    ]


def build_matrix(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Rows (claims) x runtimes (each with its start methods), with summary lists."""
    runtimes: list[dict[str, Any]] = [{"label": runtime_label(r["runtime"]),
                 "start_methods": _methods(r["runtime"]) or ["-"]} for r in reports]
    rows = []
    for claim in reports[0]["claims"]:
        groups = []
        for report, runtime in zip(reports, runtimes):
            entry: dict[str, Any] = next(
                (c for c in report["claims"] if c["id"] == claim["id"]), {})
            groups.append({"runtime": runtime["label"],
                           "cells": claim_cells(entry, runtime["start_methods"])})
        rows.append({"claim": claim["id"], "statement": claim.get("statement", ""),
                     "source": list(claim.get("source", [])),
                     "beyond": claim.get("beyond_documents", False), "groups": groups})
    verdicts = {row["claim"]: [c["verdict"] for g in row["groups"] for c in g["cells"]]
                for row in rows}
    summary = {
        "holds everywhere": [cid for cid, vs in verdicts.items() if set(vs) == {"holds"}],
        "refuted everywhere": [cid for cid, vs in verdicts.items() if set(vs) == {"refuted"}],
        "differs by platform": [cid for cid, vs in verdicts.items() if len(set(vs)) > 1],
    }
    surprises = [
        f"{row['claim']} on {group['runtime']}"
        + ("" if cell["scope"] == EVERY_METHOD else f" ({cell['scope']})")
        for row in rows for group in row["groups"] for cell in group["cells"]
        if cell["unexpected"]
    ]
    # Counted per result: a runtime's one check of a method-independent claim counts once.
    unexpected = sum(
        1 for report in reports for claim in report["claims"] for result in claim["results"]
        if not result.get("as_expected", True)
    )
    return {
        "pack_version": reports[0]["pack_version"],
        "schema_version": reports[0]["schema_version"],
        "runtimes": runtimes,
        "columns": [f"{r['label']} {m}" for r in runtimes for m in r["start_methods"]],
        "rows": rows,
        "summary": summary,
        "unexpected": unexpected,
        "unexpected_cells": surprises,
    }
