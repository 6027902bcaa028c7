"""Many platforms' claims reports merged into one table (``python -m pytest_procthread matrix``).

``merge`` reads the reports and decides each cell; ``markdown`` and ``page`` draw the
table, with the words of ``wording``. ``render`` is the one way in for a format name.
"""

from __future__ import annotations

import json
from typing import Any

from .markdown import to_markdown
from .merge import START_METHODS, MergeError, build_matrix, load_reports, start_method_of
from .page import to_html

__all__ = ["START_METHODS", "MergeError", "build_matrix", "load_reports", "render",
           "start_method_of"]

FORMATS = ("markdown", "html", "json")


def render(matrix: dict[str, Any], fmt: str) -> str:
    if fmt == "markdown":
        return to_markdown(matrix)
    if fmt == "html":
        return to_html(matrix)
    if fmt == "json":
        return json.dumps(matrix, indent=1) + "\n"
    raise MergeError(f"unknown format {fmt!r}; use {', '.join(FORMATS)}")
