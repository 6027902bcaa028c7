"""Where ``requires`` skips a test: at collection, and again at setup if the GIL changed.

Collection decides every requirement (what ``--collect-only`` and plugins see as a
``skip`` marker). A free-threaded build may re-enable the GIL after that, when a test
imports an extension, so a test that asks for ``gil=`` is decided again as it is about to
run, from the GIL then: its collection skip is replaced, or lifted, before pytest's
skipping plugin reads it (both hooks are ``tryfirst``; ours is registered later, so it
runs first).
"""

from __future__ import annotations

from typing import Optional

import pytest

from ..gil import GilState, GilWatch
from ..options import REQUIRES_MARKER
from ..runtime import RuntimeFacts
from .requires import unmet

_DECIDED = pytest.StashKey[tuple[str, ...]]()  # the reasons found at collection
_SKIP = pytest.StashKey[pytest.MarkDecorator]()  # the skip marker collection added


def asks_gil(item: pytest.Item) -> bool:
    return any("gil" in m.kwargs for m in item.iter_markers(REQUIRES_MARKER))


def _mark(item: pytest.Item, reasons: list[str], replaced: Optional[pytest.MarkDecorator]
          ) -> None:
    if replaced is not None:
        # Only the very mark we added (a user's equal skip stays); keywords keep its
        # name, which no decision reads.
        item.own_markers[:] = [m for m in item.own_markers if m is not replaced.mark]
        del item.stash[_SKIP]
    if reasons:
        skip = pytest.mark.skip(reason="; ".join(reasons))
        item.add_marker(skip)
        item.stash[_SKIP] = skip


def skip_unmet(item: pytest.Item, reasons: list[str], gil: GilState, watch: GilWatch
               ) -> None:
    """At collection: skip ``item`` for ``reasons`` (decided with the GIL as ``gil``)."""
    item.stash[_DECIDED] = tuple(reasons)
    _mark(item, reasons, None)
    if asks_gil(item):
        watch.decided(item.nodeid, gil, skipped=bool(reasons))


def decide_again(item: pytest.Item, facts: RuntimeFacts, watch: GilWatch) -> None:
    """At setup, before the skip marks are read: decide ``requires`` again from the GIL
    now, if the test asks for ``gil=``."""
    if not asks_gil(item):
        return  # nothing else it asks for changes during a run
    gil = watch.state("setup", item.nodeid)
    reasons = [r for m in item.iter_markers(REQUIRES_MARKER)
               for r in unmet(m, facts, item.nodeid, gil)]
    watch.decided(item.nodeid, gil, skipped=bool(reasons))
    if tuple(reasons) != item.stash.get(_DECIDED, ()):
        item.stash[_DECIDED] = tuple(reasons)
        _mark(item, reasons, item.stash.get(_SKIP, None))
