"""A child's process tree: what is below it, and stopping it together with all of that.

Also the one probe of whether this system has pidfds (Linux 5.3+, CPython), which the
direct fork path and the warden rest on.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # imported where used: a run that never needs it does not load it
    import psutil


@functools.cache
def pidfd_works() -> bool:
    """Whether ``os.pidfd_open`` works here: the kernel may be older than the Python build."""
    if not hasattr(os, "pidfd_open"):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return False
    return True


def descendants(pid: int) -> list[psutil.Process]:
    """The process tree below ``pid``, taken now (children are re-parented once it dies)."""
    import psutil
    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.Error:
        return []


def stop_processes(procs: list[psutil.Process], grace: float) -> list[psutil.Process]:
    """Terminate, wait up to ``grace``, then kill and wait again; returns any survivors."""
    import psutil
    live = []
    for proc in procs:
        try:
            proc.terminate()
            live.append(proc)
        except psutil.Error:
            pass
    alive = _wait_ended(live, grace)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            pass
    return _wait_ended(alive, grace)


def _wait_ended(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait up to ``timeout`` for ``procs`` to end; returns those still running.

    A process that ended but that nobody has reaped yet is a zombie, which psutil still
    counts as running: a grandchild whose parent died first belongs to init, and an init
    that reaps late or never (as in many containers) would make every wait here last its
    whole timeout. A zombie has ended: it counts as stopped.
    """
    import psutil
    deadline = time.monotonic() + timeout
    alive = list(procs)
    while alive:
        remaining = deadline - time.monotonic()
        _, alive = psutil.wait_procs(alive, timeout=max(0.0, min(remaining, 0.05)))
        alive = [proc for proc in alive if not _ended(proc)]
        if remaining <= 0:
            break
    return alive


def _ended(proc: psutil.Process) -> bool:
    import psutil
    try:
        return bool(proc.status() == psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return True


def stop_child_tree(
    pid: int,
    wait_root: Callable[[float], bool],
    *,
    dump_first: bool,
    grace: float = 2.0,
) -> None:
    """Stop a direct child (reaped through ``wait_root``) and all of its descendants.

    With ``dump_first`` the child first gets SIGTERM, on which its faulthandler dumps every
    thread's stack and then lets the signal end it; only then come terminate and kill.
    ``wait_root(seconds)`` must wait for the child through its owner (multiprocessing),
    because reaping it here would hide its exit status from that owner.
    """
    import psutil
    below = descendants(pid)
    try:
        root = psutil.Process(pid)
    except psutil.Error:
        root = None
    if root is not None:
        if dump_first and sys.platform != "win32":
            try:
                root.terminate()
            except psutil.Error:
                pass
            if not wait_root(grace):
                _kill_quietly(root)
                wait_root(grace)
        else:
            _kill_quietly(root)
            wait_root(grace)
    stop_processes(below, grace)


def _kill_quietly(proc: psutil.Process) -> None:
    import psutil
    try:
        proc.kill()
    except psutil.Error:
        pass
