"""Which tests are isolated, and how the ``isolated`` marker is written."""

from __future__ import annotations

import inspect
import warnings
from typing import Any, Optional

import pytest

from ..options import ISOLATED_MARKER as MARKER
from ..settings import resolve
from .sidecar import warning_sink

MARKER_KWARGS = ("start_method", "timeout")
WARNING_SINK = pytest.StashKey[Any]()


def marker_of(item: pytest.Item) -> Optional[pytest.Mark]:
    return item.get_closest_marker(MARKER)


def wanted(item: pytest.Item) -> bool:
    """Whether the body of ``item`` runs in a child: the marker or ``--isolated``."""
    return marker_of(item) is not None or bool(
        item.config.getoption("procthread_isolated", False)
    )


def validate_marker(item: pytest.Item) -> None:
    """Raise ValueError, naming the test, if the ``isolated`` marker is used wrongly."""
    marker = marker_of(item)
    if marker is None:
        return
    if marker.args:
        raise ValueError(
            f"marker @pytest.mark.{MARKER} on {item.nodeid} takes keywords only "
            f"(start_method=..., timeout=...); got {marker.args!r}"
        )
    unknown = sorted(set(marker.kwargs) - set(MARKER_KWARGS))
    if unknown:
        raise ValueError(
            f"unknown argument {unknown[0]!r} in marker @pytest.mark.{MARKER} on "
            f"{item.nodeid}; it takes {' and '.join(MARKER_KWARGS)}"
        )
    try:
        resolve(item.config, marker=marker)
    except ValueError as exc:
        raise ValueError(f"{exc} (on {item.nodeid})") from None


def note_warning_sink(item: pytest.Item) -> None:
    """As an isolated test is set up, before its fixtures: where warnings go now. Under
    fork the child sends back what reaches that sink, and leaves alone what a catcher
    entered by a fixture (``recwarn``) takes."""
    item.stash[WARNING_SINK] = warning_sink()


def refuse_async(item: pytest.Function) -> None:
    fn = item.obj
    if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
        pytest.fail(
            f"{item.nodeid} is an async function: pytest-procthread runs plain test "
            f"functions in threads and child processes, not coroutines. Call "
            f"asyncio.run(...) inside a plain test function instead.",
            pytrace=False,
        )


def warn_returned(item: pytest.Item, returned_type: Optional[str]) -> None:
    """What pytest does when a test function returns something other than None."""
    if returned_type is None:
        return
    code = getattr(getattr(item, "obj", None), "__code__", None)
    warnings.warn_explicit(
        pytest.PytestReturnNotNoneWarning(
            f"Test functions should return None, but {item.nodeid} returned "
            f"{returned_type}.\nDid you mean to use `assert` instead of `return`?"
        ),
        category=pytest.PytestReturnNotNoneWarning,
        filename=getattr(code, "co_filename", "<test>"),
        lineno=getattr(code, "co_firstlineno", 0),
    )
