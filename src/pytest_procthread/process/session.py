"""What lives for a pytest session and ends with it.

A module that starts something meant to last the session (the runner: warm templates, the
warden's start, scratch directories, children's coverage data) registers its ending here
when it is loaded; the plugin calls :func:`end` at session finish. A session that started
no child loaded none of those modules, and ends nothing.
"""

from __future__ import annotations

from typing import Callable

_endings: list[Callable[[], None]] = []


def on_end(ending: Callable[[], None]) -> None:
    """Call ``ending`` at the end of every session from now on (once, however often
    registered)."""
    if ending not in _endings:
        _endings.append(ending)


def end() -> None:
    """End what the session started, in the order it was registered."""
    for ending in list(_endings):
        ending()
