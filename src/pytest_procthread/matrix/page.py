"""The merged table as one self-contained HTML page that reads on a phone and on paper.

A runtime is a group of columns, one per start method; a cell measured once for the whole
runtime spans the group. The claim's statement and sources are text in its row, not a
tooltip; the colours have a legend and every colour has words in the cell as well
(``wording``). The style sheet is ``page.css``, inlined: no script, no fetch.
"""

from __future__ import annotations

from html import escape
from importlib.resources import files
from typing import Any

from .wording import LEGEND, scope_text, tone, verdict_text


def _style() -> str:
    return files(__package__).joinpath("page.css").read_text(encoding="utf-8")


def _cell(cell: dict[str, Any], runtime: str) -> str:
    span = len(cell["start_methods"])
    scope = scope_text(cell)
    return (
        f'<td class="t-{tone(cell)}"{f" colspan={span}" if span > 1 else ""} '
        f'data-runtime="{escape(runtime)}" data-scope="{escape(str(cell["scope"]))}" '
        f'title="{escape(cell["detail"])}"><span class="verdict">{escape(verdict_text(cell))}'
        f'</span>{f"<span class=scope>{escape(scope)}</span>" if scope else ""}</td>'
    )


def _claim(row: dict[str, Any]) -> str:
    beyond = '<span class="beyond">beyond the documents</span>' if row["beyond"] else ""
    source = "; ".join(row["source"])
    return (
        f'<th scope="row" class="claim" id="claim-{escape(row["claim"])}">'
        f"<code>{escape(row['claim'])}</code>{beyond}"
        f'<span class="statement">{escape(row["statement"])}</span>'
        f'{f"<span class=source>{escape(source)}</span>" if source else ""}</th>'
    )


def _head(runtimes: list[dict[str, Any]]) -> str:
    groups = "".join(
        f'<th scope="colgroup" colspan={len(r["start_methods"])}>{escape(r["label"])}</th>'
        for r in runtimes
    )
    methods = "".join(f'<th scope="col">{escape(m)}</th>'
                      for r in runtimes for m in r["start_methods"])
    return (f'<thead><tr><th rowspan=2 class="corner">claim</th>{groups}</tr>'
            f"<tr>{methods}</tr></thead>")


def to_html(matrix: dict[str, Any]) -> str:
    pack = escape(str(matrix["pack_version"]))
    legend = "".join(f'<li><span class="swatch t-{t}"></span>{escape(m)}</li>' for t, m in LEGEND)
    body = "".join(
        f"<tr>{_claim(row)}"
        + "".join(_cell(c, g["runtime"]) for g in row["groups"] for c in g["cells"]) + "</tr>"
        for row in matrix["rows"]
    )
    summary = "".join(
        f"<li><b>{escape(t)}</b> ({len(ids)}): {escape(', '.join(ids) or 'none')}</li>"
        for t, ids in matrix["summary"].items()
    )
    where = "; ".join(matrix["unexpected_cells"])
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>pytest-procthread claims matrix (pack {pack})</title>"
        f"<style>{_style()}</style></head><body>"
        f"<h1>Process and thread claims, pack {pack}</h1>"
        '<p class="intro">One row per claim, with its statement and the sections of the '
        "documents it comes from; a group of columns per runtime, one column per start "
        "method. A cell that spans a runtime's start methods was measured once there: the "
        "claim does not depend on the start method. A cell's title has its figures in "
        f'full.</p><ul class="legend">{legend}</ul>'
        f'<div class="scroll"><table>{_head(matrix["runtimes"])}<tbody>{body}</tbody></table>'
        f'</div><h2>Summary</h2><ul class="summary">{summary}'
        f"<li><b>unexpected verdicts</b>: {matrix['unexpected']}"
        f"{f' ({escape(where)})' if where else ''}</li></ul></body></html>\n"
    )
