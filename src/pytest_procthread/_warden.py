"""The warden: one small process that stops this process's fork children once it is gone.

A child must end when the test process ends, however it ends (``kill -9`` included), and
take with it everything it started. A child can watch for that itself, with a thread
blocked on a pipe from its parent, and spawn and forkserver children do. In a fork child
that thread is the largest single cost: measured here, a fork child of a pytest process
without it ends 0.77 ms sooner, and ``isolated_process.run(noop)`` goes from 1.46x to 1.30x
of raw multiprocessing. It also shows up in the child's thread count, which the
conformance pack's census has to subtract.

So on Linux a fork child does not watch: it writes its pid into a pipe to the warden as
it starts, and closes its copy of the pipe. The warden holds a pidfd of the test process
and one of every child; when the test process is gone it kills each child still alive and
every process that child started. A pidfd names one process, never a later one with the
same pid, so the warden never kills a stranger.

The warden is started once per process, on the first fork child, through a double fork,
so it is never among the test process's children (a test that checks its own children
does not see it); it runs ``python -I -S`` with nothing imported but ``os``, ``select``
and ``signal``. Where there is no pidfd (macOS, older kernels, PyPy) there is no warden,
and fork children watch with a thread as the others do; a child whose write to the
warden fails does the same.
"""

from __future__ import annotations

import os
import select
import sys
from typing import Any, Optional

# Runs in the warden: stdlib only, Python 3.9+, no site (-I -S).
_WARDEN = r"""
import os, select, signal, sys

def descendants(root):
    parents = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open("/proc/%s/stat" % name, "rb") as f:
                    stat = f.read()
                ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            parents.setdefault(ppid, []).append(int(name))
    found, todo = [], [root]
    while todo:
        for kid in parents.get(todo.pop(), ()):
            found.append(kid)
            todo.append(kid)
    return found

def stop(pidfd, pid):
    try:
        signal.pidfd_send_signal(pidfd, 0)  # still this child: its pid names no stranger
    except OSError:
        return
    tree = descendants(pid)  # before the child dies: then its children move to init
    try:
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    except OSError:
        pass
    for kid in tree:
        try:
            os.kill(kid, signal.SIGKILL)
        except OSError:
            pass

REST = 50  # ms

def main(fd, parent_pid):
    warden = os.fork()  # the double fork: the test process reaps the first stage at once
    if warden:
        os.write(1, b"%d\n" % warden)
        os._exit(0)
    null = os.open(os.devnull, os.O_RDWR)
    for std in (0, 1, 2):
        os.dup2(null, std)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        parent = os.pidfd_open(parent_pid)
    except OSError:
        parent = None
    kids = {}
    pending = [b""]

    def enlist(data):
        lines = (pending[0] + data).split(b"\n")
        pending[0] = lines.pop()
        for line in lines:
            try:
                kids[os.pidfd_open(int(line))] = int(line)
            except (OSError, ValueError):
                continue  # ended already

    def prune():
        # Checked now and then, never watched: a child's end would wake this process,
        # and that wake-up on another CPU is paid by the ending child.
        check = select.poll()
        for kid in kids:
            check.register(kid, select.POLLIN)
        for kid, _ in check.poll(0):
            os.close(kid)
            del kids[kid]

    waiting = select.poll()
    waiting.register(fd, select.POLLIN)
    resting = select.poll()
    if parent is not None:
        waiting.register(parent, select.POLLIN)
        resting.register(parent, select.POLLIN)
    done = parent is None
    while not done:
        for ready, _ in waiting.poll():
            if ready == fd:
                data = os.read(fd, 65536)
                if data:
                    enlist(data)
                else:
                    done = True
            else:
                done = True
        if done:
            break
        prune()
        # A rest in which children enlist without waking this process (the writer pays
        # for that wake-up too); the end of the test process still ends it at once.
        done = bool(resting.poll(REST))
    os.set_blocking(fd, False)  # children that wrote before the parent ended
    try:
        while True:
            data = os.read(fd, 65536)
            if not data:
                break
            enlist(data)
    except BlockingIOError:
        pass
    for kid, pid in kids.items():
        stop(kid, pid)

main(int(sys.argv[1]), int(sys.argv[2]))
"""

START_WAIT = 10.0  # the first stage only forks; a bound, never reached in practice


class _Warden:
    def __init__(self, pid: int, pidfd: int, pipe: int) -> None:
        self.owner = os.getpid()
        self.pid = pid
        self.pidfd = pidfd
        self.pipe = pipe

    def alive(self) -> bool:
        poller = select.poll()
        poller.register(self.pidfd, select.POLLIN)
        return not poller.poll(0)

    def close(self) -> None:
        for fd in (self.pipe, self.pidfd):
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
    one: an interpreter's start-up (about 15 ms) then overlaps with test collection instead
    of delaying the first fork child. :func:`pipe_for_child` waits for it."""
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
    if not (sys.platform.startswith("linux") and hasattr(os, "pidfd_open")):
        return False
    import signal

    if not hasattr(signal, "pidfd_send_signal"):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return False
    return True


def _launch() -> Optional[tuple[Any, int]]:
    """Start the warden's first stage; the stage and the write end of the warden's pipe."""
    import subprocess  # here: a fresh child imports this module, and never starts a warden

    read_end, write_end = os.pipe()
    try:
        stage = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _WARDEN, str(read_end), str(os.getpid())],
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
        pid = int(out.split()[0])
        pidfd = os.pidfd_open(pid)
    except (subprocess.TimeoutExpired, ValueError, IndexError, OSError):
        stage.kill()
        stage.wait()
        os.close(write_end)
        return None
    return _Warden(pid, pidfd, write_end)


def pipe_for_child() -> Optional[int]:
    """This process's warden's pipe, for a fork child to enlist in (starting the warden
    the first time); None where there is none, and the child must watch for itself."""
    global _warden, _unavailable
    if _pending is not None:
        settle()
    warden = _warden
    if warden is not None and warden.owner == os.getpid() and warden.alive():
        return warden.pipe
    if warden is not None and warden.owner == os.getpid():
        warden.close()  # it died (someone killed it): start another
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


def enlist(pipe: int) -> bool:
    """In a fork child: ask the parent's warden to stop this child with its parent.

    False if the warden cannot hear it (the child must watch for itself)."""
    try:
        os.write(pipe, b"%d\n" % os.getpid())
    except OSError:
        return False
    finally:
        try:
            os.close(pipe)
        except OSError:
            pass
    return True


def own_fds() -> set[int]:
    """Descriptors this process keeps for its warden, for the whole session."""
    warden = _warden
    if warden is None or warden.owner != os.getpid():
        return set()
    return {warden.pipe, warden.pidfd}


def warden_pid() -> Optional[int]:
    warden = _warden
    return None if warden is None or warden.owner != os.getpid() else warden.pid
