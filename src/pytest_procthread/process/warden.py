"""The warden, the parent's side: one small process that stops this process's fork
children once this process is gone.

A child must end when the test process ends, however it ends (``kill -9`` included), and
take with it everything it started. A child can watch for that itself, with a thread
blocked on a pipe from its parent (see ``child.lifeline``), and spawn and forkserver
children do. A fork child instead writes its pid into the warden's pipe as it starts
(``child.lifeline.enlist``) and runs no thread: a watcher thread was the largest single
cost of a fork child, and showed in the child's thread count (figures in
benchmarks/README.md).

Spawn and forkserver children enlist too, and keep their watcher thread: a child stuck
in C code that holds the GIL (a catastrophic regex) never runs that thread, and only a
process outside it can stop it. Every child also marks the environment that its own
children inherit with this process's token (``child.lifeline.mark_tree``): the warden
then finds the processes that left the tree (``setsid``, a double fork) by that mark.
A warden killed alone leaves its standby, which has a copy of every enlistment (see
``child.warden_program``). Once both are gone this process starts a new pair and enlists
every live child with it: at once if it is waiting for a child (the handle watches the
pair's pidfds), else at the next child it starts.

The warden runs ``child/warden_program.py`` with ``python -I -S``. It is started through
a double fork, so it is never among the test process's children, once per process: at
session start under ``--isolated`` with fork (:func:`start_soon`, so that its start-up
overlaps test collection), else at the first fork child (:func:`pipe_for_child`). Where
there is no pidfd (macOS, older kernels, PyPy) there is no warden, and fork children
watch with a thread as the others do; so does a child whose write to the warden fails.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import threading
from collections.abc import Collection
from typing import Any, Optional

from ..child import lifeline, warden_program
from .live import live_pids
from .proctree import pidfd_works

START_WAIT = 10.0  # the first stage only forks; a bound, never reached in practice


class _Warden:
    def __init__(self, pid: int, pidfd: int, pipe: int, standby: int) -> None:
        self.owner = os.getpid()
        self.pid = pid
        self.pidfd = pidfd
        self.pipe = pipe
        self.standby = standby  # the standby's pidfd
        self.living = [pidfd, standby]  # the pidfds of the pair not seen to end yet

    def forget(self, ended: Collection[int]) -> bool:
        """Strike the members of the pair that ``ended``; whether one still reads the pipe
        (either one suffices; closing the pipe while one reads would make it stop every
        child)."""
        self.living = [fd for fd in self.living if fd not in ended]
        return bool(self.living)

    def alive(self) -> bool:
        poller = select.poll()
        for fd in self.living:
            poller.register(fd, select.POLLIN)
        return self.forget({fd for fd, _ in poller.poll(0)})

    def close(self) -> None:
        for fd in (self.pipe, self.pidfd, self.standby):
            try:
                os.close(fd)
            except OSError:
                pass


_warden: Optional[_Warden] = None
_unavailable = False
# Started by start_soon() and not waited for yet: (the process that started it, the first
# stage, the write end of the warden's pipe).
_pending: Optional[tuple[int, Any, int]] = None


def start_soon() -> None:
    """Start this process's warden now, in the background, where fork children will need
    one: an interpreter's start-up then overlaps with test collection instead of delaying
    the first fork child. :func:`pipe_for_child` waits for it."""
    global _pending
    if _warden is not None or _pending is not None or _unavailable or not _supported():
        return
    launched = _launch()
    if launched is not None:
        _pending = (os.getpid(), *launched)


def settle() -> None:
    """Wait for a warden started by :func:`start_soon` (its first stage is a child of this
    process until then). Called by :func:`pipe_for_child` and at session end."""
    global _pending, _warden, _unavailable
    pending, _pending = _pending, None
    if pending is None or pending[0] != os.getpid():  # a fork child's copy: not its own
        return
    _warden = _finish(pending[1], pending[2])
    if _warden is None:
        _unavailable = True


def _supported() -> bool:
    return (sys.platform.startswith("linux") and hasattr(signal, "pidfd_send_signal")
            and pidfd_works())


def tree_token() -> str:
    """This process's token, which its children's descendants carry in their environment
    (``PROCTHREAD_TREE``); made once per process, so a replaced warden finds what the
    children started under the one before it."""
    global _token
    if _token[0] != os.getpid():
        _token = (os.getpid(), f"{os.getpid()}-{os.urandom(8).hex()}")
    return _token[1]


_token = (0, "")


def _launch() -> Optional[tuple[Any, int]]:
    """Start the warden's first stage; the stage and the write end of the warden's pipe."""
    import subprocess  # here: only the test process starts a warden

    token = tree_token()
    # A test process that is itself the child of another session keeps that one's token:
    # its children are that session's descendants as well.
    lifeline.set_tree_mark(f"{os.environ.get('PROCTHREAD_TREE', '')} {token}".strip())
    read_end, write_end = os.pipe()
    try:
        stage = subprocess.Popen(
            [sys.executable, "-I", "-S", warden_program.__file__, str(read_end),
             str(os.getpid()), token],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            pass_fds=(read_end,), start_new_session=True,
        )
    except OSError:
        os.close(read_end)
        os.close(write_end)
        return None
    os.close(read_end)
    return stage, write_end


def _finish(stage: Any, write_end: int) -> Optional[_Warden]:
    """Wait for the first stage to name the warden it forked (it then exits)."""
    import subprocess

    try:
        out, _ = stage.communicate(timeout=START_WAIT)
        pid, standby = (int(word) for word in out.split()[:2])
        pidfd = os.pidfd_open(pid)
        try:
            standby_fd = os.pidfd_open(standby)
        except OSError:
            os.close(pidfd)
            raise
    except (subprocess.TimeoutExpired, ValueError, IndexError, OSError):
        stage.kill()
        stage.wait()
        os.close(write_end)
        return None
    return _Warden(pid, pidfd, write_end, standby_fd)


def pipe_for_child() -> Optional[int]:
    """This process's warden's pipe, for a fork child to enlist in (starting the warden
    the first time); None where there is none, and the child must watch for itself."""
    global _warden, _unavailable
    if _pending is not None:
        settle()
    warden = _warden
    if warden is not None and warden.owner == os.getpid():
        if warden.alive():
            return warden.pipe
        _replace(warden)  # it and its standby died (someone killed them)
        return None if _warden is None else _warden.pipe
    _warden = None
    if _unavailable:
        return None
    if not _supported():
        _unavailable = True
        return None
    launched = _launch()
    _warden = None if launched is None else _finish(*launched)
    if _warden is None:
        _unavailable = True  # it could not start here: do not pay for trying again
        return None
    return _warden.pipe


def watched_pidfds() -> list[int]:
    """The pidfds of this process's warden pair that have not ended: a handle waiting for
    a child watches them, and passes those that end to :func:`pidfds_ended`."""
    warden = _warden
    if warden is None or warden.owner != os.getpid():
        return []
    return warden.living


def pidfds_ended(ended: Collection[int]) -> None:
    """Members of the warden pair ended: once both have, start a new pair at once, with
    every live child on its roll, so that the test process ending next is still seen."""
    warden = _warden
    if warden is not None and warden.owner == os.getpid() and not warden.forget(ended):
        _replace(warden)


_replacing = threading.Lock()  # two threads waiting on children may notice together


def _replace(dead: _Warden) -> None:
    global _warden, _unavailable
    with _replacing:
        if _warden is not dead:
            return  # the other thread replaced it
        dead.close()
        _warden = None
        launched = _launch()
        if launched is None:
            _unavailable = True
            return
        stage, pipe = launched
        # On the roll before the new warden has even started: the pipe holds them until it
        # reads, and it reads them also if this process is killed meanwhile.
        lines = b"".join(b"%d\n" % pid for pid in live_pids())
        try:
            os.write(pipe, lines)
        except OSError:
            pass
        _warden = _finish(stage, pipe)
        if _warden is None:
            _unavailable = True


def own_fds() -> set[int]:
    """Descriptors this process keeps for its warden, for the whole session."""
    warden = _warden
    if warden is None or warden.owner != os.getpid():
        return set()
    return {warden.pipe, warden.pidfd, warden.standby}


def warden_pid() -> Optional[int]:
    warden = _warden
    return None if warden is None or warden.owner != os.getpid() else warden.pid


def standby_pid() -> Optional[int]:
    """The standby's pid (see ``child.warden_program``), for tests."""
    warden = _warden
    if warden is None or warden.owner != os.getpid():
        return None
    try:
        with open(f"/proc/self/fdinfo/{warden.standby}") as f:
            for line in f:
                if line.startswith("Pid:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None
