"""Session-wide check that a test run left no process, thread or descriptor behind.

Turned on with ``--procthread-check-leaks``. It compares what this process has at the
start of the session with what it still has at the end, after every fixture is torn down;
helpers that multiprocessing keeps for the whole life of the interpreter (the forkserver,
the resource tracker and their pipes) are not counted against the tests.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Snapshot:
    children: dict[int, str] = field(default_factory=dict)
    threads: dict[int, str] = field(default_factory=dict)
    fds: dict[int, str] = field(default_factory=dict)


def _multiprocessing_helpers() -> tuple[set[int], set[int]]:
    """Pids and descriptors of multiprocessing's own long-lived helpers (and of this
    library's warden, see ``process.warden``)."""
    pids: set[int] = set()
    fds: set[int] = set()
    try:
        from multiprocessing import forkserver, resource_tracker

        server = getattr(forkserver, "_forkserver", None)
        for name in ("_forkserver_alive_fd", "_forkserver_pid"):
            value = getattr(server, name, None)
            if isinstance(value, int):
                (fds if name.endswith("fd") else pids).add(value)
        tracker: Any = getattr(resource_tracker, "_resource_tracker", None)
        if isinstance(getattr(tracker, "_fd", None), int):
            fds.add(tracker._fd)
        if isinstance(getattr(tracker, "_pid", None), int):
            pids.add(tracker._pid)
    except ImportError:
        pass
    # Shared ctypes (RawArray, Value) live in heap arenas that multiprocessing keeps open
    # until the interpreter exits, even once every object in them is freed.
    try:
        from multiprocessing import heap

        shared_heap = getattr(heap.BufferWrapper, "_heap", None)
        for arena in getattr(shared_heap, "_arenas", []):
            if isinstance(getattr(arena, "fd", None), int) and arena.fd >= 0:
                fds.add(arena.fd)
    except ImportError:
        pass
    from .process.warden import own_fds  # only when leaks are checked

    fds |= own_fds()  # this library's warden, kept for the life of the process
    return pids, fds


def _describe_fd(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return "?"


def _open_fds() -> dict[int, str]:
    import psutil
    if os.path.isdir("/proc/self/fd"):
        found = {}
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            target = _describe_fd(fd)
            if target != "?":  # the listing's own descriptor is gone already
                found[fd] = target
        return found
    try:
        return {f.fd: f.path for f in psutil.Process().open_files()}
    except psutil.Error:
        return {}


def take() -> Snapshot:
    import psutil
    me = psutil.Process()
    helper_pids, helper_fds = _multiprocessing_helpers()
    children = {}
    for child in me.children(recursive=True):
        if child.pid in helper_pids:
            continue
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
            children[child.pid] = " ".join(child.cmdline())[:160]
        except psutil.Error:
            continue
    threads = {
        t.ident: t.name for t in threading.enumerate() if t.ident is not None and t.is_alive()
    }
    open_fds = _open_fds()
    # mmap keeps its own duplicate of an arena's descriptor: same file, other number.
    helper_files = {open_fds[fd] for fd in helper_fds if fd in open_fds}
    fds = {
        fd: what for fd, what in open_fds.items()
        if fd not in helper_fds and what not in helper_files
    }
    return Snapshot(children, threads, fds)


def settle(before: Snapshot, grace: float = 2.0) -> Snapshot:
    """Take the closing snapshot, first giving things that are ending a bounded moment."""
    import gc
    import time

    import psutil

    gc.collect()  # descriptors whose objects are already unreachable close now
    deadline = time.monotonic() + grace
    for thread in threading.enumerate():
        if thread.ident not in before.threads and thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))
    now = take()
    fresh = []
    for pid in now.children:
        if pid not in before.children:
            try:
                fresh.append(psutil.Process(pid))
            except psutil.Error:
                pass
    if fresh:
        psutil.wait_procs(fresh, timeout=max(0.0, deadline - time.monotonic()))
        now = take()
    return now


def compare(before: Snapshot, after: Snapshot) -> list[str]:
    """One line per thing present at the end that was not there at the start."""
    problems = []
    for pid, cmd in sorted(after.children.items()):
        if pid not in before.children:
            problems.append(f"process {pid} still alive: {cmd}")
    for ident, name in sorted(after.threads.items()):
        if ident not in before.threads:
            problems.append(f"thread {name!r} (ident {ident}) still running")
    for fd, what in sorted(after.fds.items()):
        if before.fds.get(fd) != what:
            problems.append(f"file descriptor {fd} still open: {what}")
    return problems
