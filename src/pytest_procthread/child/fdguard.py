"""File descriptors that must stay in this process and never leak into a forked child.

A forked child inherits every descriptor. If it kept the write end of another child's
lifeline, or the parent end of an ``ipc_pipe``, the other side would never see EOF when
this process dies or closes its end. Python has no close-on-fork flag, so right after
every ``os.fork()`` the child points those numbers at /dev/null: the pipe is released,
while the number stays taken, so that a Connection object copied into the child and
closed later closes /dev/null and never a descriptor the child opened since.

Every process of ours that forks uses it: the test process, and a warm template.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Collection, Iterator

_parent_only: set[int] = set()
_spared: set[int] = set()  # for the forks made in a ``sparing`` block


def keep_in_parent(fd: int) -> None:
    _parent_only.add(fd)


def release(fd: int) -> None:
    _parent_only.discard(fd)


@contextlib.contextmanager
def sparing(fds: Collection[int]) -> Iterator[None]:
    """Forks made in this block keep these parent-only descriptors: the child is to act
    as this process on them (an ``--isolated`` body under fork uses ``ipc_pipe.parent``),
    and keeps them from its own children in turn."""
    _spared.update(fds)
    try:
        yield
    finally:
        _spared.difference_update(fds)


def _close_in_child() -> None:
    fds = [fd for fd in _parent_only if fd not in _spared]
    _parent_only.intersection_update(_spared)
    _spared.clear()
    if not fds:
        return
    null = os.open(os.devnull, os.O_RDWR)
    try:
        for fd in fds:
            try:
                os.dup2(null, fd)
            except OSError:
                pass
    finally:
        os.close(null)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_in_child)
