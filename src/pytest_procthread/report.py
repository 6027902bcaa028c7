"""The claims table at the end of a run, and the same as a versioned JSON report.

Built only from what test reports carry (their user_properties), never from process
state, so that a run under pytest-xdist gives the same table as a serial run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .claims.manifest import Claim

SCHEMA = "pytest-procthread/claims-report"
SCHEMA_VERSION = 1
VARIANT_ORDER = {"fork": 0, "forkserver": 1, "spawn": 2, "-": 3}
MARK = {"holds": "holds", "refuted": "REFUTED", "inconclusive": "inconclusive",
        "unsupported": "unsupported", "error": "ERROR", "not run": "not run"}


def _variant_key(variant: str) -> tuple[int, str]:
    head = variant.split("-")[0]
    return (VARIANT_ORDER.get(head, 4), variant)


def ordered_rows(
    claims: dict[str, Claim], records: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """One row per (claim, variant, check), in manifest order; claims with no row say so."""
    by_claim: dict[str, list[dict[str, Any]]] = {cid: [] for cid in claims}
    for nodeid, record in records.items():
        by_claim.setdefault(record["claim"], []).append({**record, "test": nodeid})
    rows: list[dict[str, Any]] = []
    for cid, found in by_claim.items():
        if not found:
            rows.append({"claim": cid, "variant": "-", "verdict": "not run", "expected": "",
                         "as_expected": True, "figure": "no check ran", "test": ""})
            continue
        found.sort(key=lambda r: (_variant_key(r["variant"]), r["test"]))
        rows.extend(found)
    return rows


def render_table(
    claims: dict[str, Claim], records: dict[str, dict[str, Any]], facts: dict[str, Any],
    width: int = 160,
) -> list[str]:
    rows = ordered_rows(claims, records)
    lines = [
        f"runtime: {facts['system']} {facts['machine']}, {facts['python']} "
        f"({facts['python_version_text']}), GIL {'on' if facts['gil_enabled'] else 'off'}, "
        f"start methods {'/'.join(facts['start_methods'])} (default "
        f"{facts['default_start_method']}), {facts['usable_cpus']} usable CPUs",
    ]
    id_width = max((len(r["claim"]) + len(r["variant"]) + 3 for r in rows), default=20)
    for row in rows:
        label = f"{row['claim']} [{row['variant']}]"
        expected = "" if row["as_expected"] else f"  (UNEXPECTED: expected {row['expected']})"
        text = f"{label:<{id_width}} {MARK.get(row['verdict'], row['verdict']):<12} "
        figure = " ".join(str(row["figure"]).split())
        remaining = max(30, width - len(text) - len(expected))
        if len(figure) > remaining:
            figure = figure[: remaining - 3] + "..."
        lines.append(f"{text}{figure}{expected}")
    unexpected = sum(1 for r in rows if not r["as_expected"])
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["verdict"]] = counts.get(row["verdict"], 0) + 1
    summary = ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
    lines.append(f"{len(rows)} checks of {len(claims)} claims: {summary}; {unexpected} unexpected")
    return lines


def build_report(
    pack_version: str, claims: dict[str, Claim], records: dict[str, dict[str, Any]],
    facts: dict[str, Any],
) -> dict[str, Any]:
    rows = ordered_rows(claims, records)
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "pack_version": pack_version,
        "runtime": facts,
        "claims": [
            {
                "id": claim.id,
                "statement": claim.statement,
                "source": list(claim.source),
                "kind": claim.kind,
                "relation": claim.relation,
                "margin": claim.margin,
                "beyond_documents": claim.beyond,
                "results": [
                    {k: v for k, v in row.items() if k != "claim"}
                    for row in rows if row["claim"] == claim.id
                ],
            }
            for claim in claims.values()
        ],
        "unexpected": sum(1 for r in rows if not r["as_expected"]),
    }


def write_report(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1, sort_keys=False, default=str) + "\n",
                    encoding="utf-8")
