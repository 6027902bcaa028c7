"""A failed ``assert a == b`` in a fresh child, explained as pytest explains it locally.

In the child the assertion rewriter's comparison hook records the failed comparison and
where it was (:func:`install_recorder`, :func:`comparison_for`); the test process asks its
own ``pytest_assertrepr_compare`` hooks about it (:func:`explain`), with its plugins and
its verbosity, and puts what they say into the AssertionError that came back.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, Optional

import pytest

_comparisons = threading.local()


def _record(op: str, left: Any, right: Any) -> None:
    """Installed as the rewriter's comparison hook in a fresh child: remembers the failed
    comparison and where it was, so the test process can explain it with its own hooks."""
    frame = sys._getframe(2)  # this <- _call_reprcompare <- the assert
    _comparisons.last = (frame.f_code.co_filename, frame.f_lineno, op, left, right)
    return None


def install_recorder() -> None:
    try:
        from _pytest.assertion import util
    except ImportError:
        return
    util._reprcompare = _record


def comparison_for(exc: BaseException) -> Optional[tuple[str, Any, Any]]:
    """The comparison recorded at the line where ``exc`` (an AssertionError) was raised."""
    last = getattr(_comparisons, "last", None)
    if last is None or not isinstance(exc, AssertionError):
        return None
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None or (tb.tb_frame.f_code.co_filename, tb.tb_lineno) != last[:2]:
        return None
    return last[2], last[3], last[4]


def explain(item: pytest.Item, exc: BaseException, comparison: Any) -> None:
    """Insert what ``pytest_assertrepr_compare`` says about a failed comparison into the
    message of the AssertionError that came back from the child."""
    op, left, right = comparison
    try:
        results = item.ihook.pytest_assertrepr_compare(
            config=item.config, op=op, left=left, right=right
        )
    except Exception:
        return
    lines = next((list(r) for r in results if r), None)
    if not lines or len(lines) < 2:
        return
    verbose = item.config.get_verbosity() if hasattr(item.config, "get_verbosity") else 0
    detail = [str(line) for line in lines[1:]]
    if verbose < 2 and len(detail) > 8:
        hidden = len(detail) - 6
        detail = [*detail[:6],
                  f"...Full output truncated ({hidden} lines hidden), use '-vv' to show"]
    message = str(exc.args[0]) if exc.args else ""
    first, _, rest = message.partition("\n")
    # pytest's own explanation replaces the operands' "where" lines: drop them here too.
    rest_lines = [line for line in rest.splitlines() if not line.lstrip().startswith("+")]
    exc.args = ("\n".join([first, *("  " + line for line in detail), *rest_lines]),)
