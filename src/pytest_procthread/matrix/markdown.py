"""The merged table as Markdown: one column per runtime, the claim's statement in its row.

Markdown has no cell spanning columns, so a runtime is one column and a cell lists its
start methods by name ("fork, spawn: holds"); a cell that names none was measured once on
that runtime, for every start method. Wide enough for GitHub's wrapping, narrow enough
for eight runtimes side by side.
"""

from __future__ import annotations

from typing import Any

from .merge import EVERY_METHOD
from .wording import LEGEND, scope_text, verdict_text


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _text(cell: dict[str, Any]) -> str:
    text = verdict_text(cell)
    return f"**{text}**" if cell["unexpected"] else text


def _group_text(cells: list[dict[str, Any]]) -> str:
    if len(cells) == 1 and cells[0]["scope"] == EVERY_METHOD:
        return _text(cells[0])
    if len(cells) == 1:
        scope = scope_text(cells[0])
        return f"{scope}: {_text(cells[0])}" if scope else _text(cells[0])
    # Start methods that came out the same share a line.
    lines: dict[str, list[str]] = {}
    for cell in cells:
        lines.setdefault(_text(cell), []).extend(cell["start_methods"])
    return "<br>".join(f"{', '.join(methods)}: {text}" for text, methods in lines.items())


def _claim_text(row: dict[str, Any]) -> str:
    beyond = " (beyond the documents)" if row["beyond"] else ""
    return f"`{row['claim']}`{beyond}: {row['statement']}"


def to_markdown(matrix: dict[str, Any]) -> str:
    head = ["claim", *(r["label"] for r in matrix["runtimes"])]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in matrix["rows"]:
        cells = [_claim_text(row), *(_group_text(g["cells"]) for g in row["groups"])]
        lines.append("| " + " | ".join(_escape(c) for c in cells) + " |")
    lines += [
        "",
        "A cell that names no start method was measured once on its runtime: the claim does "
        "not depend on the start method. A cell that says \"fork only\" was checked under "
        "that start method alone.",
        "",
    ]
    lines += [f"- {meaning}" for _, meaning in LEGEND]
    lines.append("")
    for title, ids in matrix["summary"].items():
        lines.append(f"- **{title}** ({len(ids)}): {', '.join(ids) if ids else 'none'}")
    where = f" ({'; '.join(matrix['unexpected_cells'])})" if matrix["unexpected_cells"] else ""
    lines.append(f"- **unexpected verdicts**: {matrix['unexpected']}{where}")
    return "\n".join(lines) + "\n"
