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

import os

_parent_only: set[int] = set()


def keep_in_parent(fd: int) -> None:
    _parent_only.add(fd)


def release(fd: int) -> None:
    _parent_only.discard(fd)


def _close_in_child() -> None:
    fds = list(_parent_only)
    _parent_only.clear()
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
