"""The warden's program: run as ``python -I -S warden_program.py FD PARENT_PID TOKEN``.

The warden stops a test process's fork children once the test process is gone, however
it ended (see ``process.warden``, which starts it). Run by path, in isolated mode, with
nothing imported but ``os``, ``select``, ``signal`` and ``sys``: it starts in about an
interpreter's start-up and holds no more than a few pidfds.

1. It forks once more and the first stage exits; the warden forks its standby and prints
   both pids: the warden is then nobody's child in the test process's tree.
2. It holds a pidfd of the test process and reads, from ``FD``, the pid of each child
   that enlists, holding a pidfd of each (a pidfd names one process, never a later one
   with the same pid, so the warden never kills a stranger).
3. When the test process ends, or closes ``FD``, it kills each child still alive and
   every process that child started: those below it in the tree, and those that left
   the tree (``setsid``, a double fork: re-parented to init) but still carry ``TOKEN``
   in ``PROCTHREAD_TREE``, which every child puts in the environment its own children
   inherit (see ``child.lifeline.mark_tree``).

A ``kill -9`` of the warden alone must not leave the children unwatched: the warden
forks a standby, which reads a copy of every enlistment and watches the warden as well
as the test process; if the warden ends first, the standby reads ``FD`` in its place.
"""

from __future__ import annotations

import os
import select
import signal
import sys

REST_MS = 50
TREE_VAR = b"PROCTHREAD_TREE"
SCAN_ROUNDS = 5  # a process killed in one round may have forked just before: look again


def parent_of(stat: bytes) -> int:
    """The parent pid in the text of ``/proc/<pid>/stat`` (the name may hold spaces and
    parentheses: the fields after it start after its last ``)``)."""
    return int(stat[stat.rindex(b")") + 2:].split()[1])


def read_parents(proc: str = "/proc") -> dict[int, list[int]]:
    """Every process's children, by parent pid, read from ``proc`` now."""
    parents: dict[int, list[int]] = {}
    for name in os.listdir(proc):
        if name.isdigit():
            try:
                with open(f"{proc}/{name}/stat", "rb") as f:
                    ppid = parent_of(f.read())
            except (OSError, ValueError, IndexError):
                continue
            parents.setdefault(ppid, []).append(int(name))
    return parents


def descendants(root: int, parents: dict[int, list[int]]) -> list[int]:
    """Every process below ``root`` in the tree ``parents``."""
    found: list[int] = []
    todo = [root]
    while todo:
        for kid in parents.get(todo.pop(), ()):
            found.append(kid)
            todo.append(kid)
    return found


def stop(pidfd: int, pid: int) -> None:
    """Kill the child of ``pidfd`` and, with it, every process it started."""
    try:
        signal.pidfd_send_signal(pidfd, 0)  # still this child: its pid names no stranger
    except OSError:
        return
    tree = descendants(pid, read_parents())  # before the child dies: then its kids go to init
    try:
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    except OSError:
        pass
    for kid in tree:
        try:
            os.kill(kid, signal.SIGKILL)
        except OSError:
            pass


def marked(token: bytes, proc: str = "/proc") -> list[int]:
    """Pidfds of the processes whose environment carries ``token`` in ``TREE_VAR``. The
    pidfd is opened before the environment is read: it then names that process, never a
    later one with its pid."""
    found: list[int] = []
    me = os.getpid()
    prefix = TREE_VAR + b"="
    for name in os.listdir(proc):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            pidfd = os.pidfd_open(int(name))
        except OSError:
            continue
        try:
            with open(f"{proc}/{name}/environ", "rb") as f:
                env = f.read()  # empty for a zombie: it has ended already
        except OSError:
            env = b""
        if any(entry.startswith(prefix) and token in entry[len(prefix):].split()
               for entry in env.split(b"\0")):
            found.append(pidfd)
        else:
            os.close(pidfd)
    return found


def stop_marked(token: bytes) -> None:
    """Kill every process that carries ``token``, however it left the tree."""
    if not token:
        return
    for _ in range(SCAN_ROUNDS):
        pidfds = marked(token)
        if not pidfds:
            return
        for pidfd in pidfds:
            try:
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            except OSError:
                pass
            os.close(pidfd)


class Roll:
    """The enlisted children: pidfd -> pid, from the lines read off the pipe."""

    def __init__(self) -> None:
        self.kids: dict[int, int] = {}
        self._pending = b""

    def enlist(self, data: bytes) -> None:
        lines = (self._pending + data).split(b"\n")
        self._pending = lines.pop()
        for line in lines:
            try:
                self.kids[os.pidfd_open(int(line))] = int(line)
            except (OSError, ValueError):
                continue  # ended already

    def prune(self) -> None:
        """Forget the children that have ended. Checked now and then, never watched: a
        child's end would wake this process, and that wake-up on another CPU is paid by
        the ending child."""
        check = select.poll()
        for kid in self.kids:
            check.register(kid, select.POLLIN)
        for kid, _ in check.poll(0):
            os.close(kid)
            del self.kids[kid]

    def drain(self, fd: int) -> None:
        """What children wrote before the parent ended."""
        os.set_blocking(fd, False)
        try:
            while True:
                data = os.read(fd, 65536)
                if not data:
                    break
                self.enlist(data)
        except BlockingIOError:
            pass


def watch(fd: int, parent: int, roll: Roll, forward: int = -1) -> None:
    """Until the test process (``parent``, a pidfd) ends or closes ``fd``: enlist, and
    copy each enlistment to ``forward`` (the standby), if any."""
    waiting = select.poll()
    waiting.register(fd, select.POLLIN)
    waiting.register(parent, select.POLLIN)
    resting = select.poll()
    resting.register(parent, select.POLLIN)
    while True:
        for ready, _ in waiting.poll():
            if ready != fd:
                return
            data = os.read(fd, 65536)
            if not data:
                return
            roll.enlist(data)
            if forward >= 0:
                try:
                    os.write(forward, data)
                except OSError:  # the standby is gone (or full, never in practice)
                    pass
        roll.prune()
        # A rest in which children enlist without waking this process (the writer pays
        # for that wake-up too); the end of the test process still ends it at once.
        if resting.poll(REST_MS):
            return


def ended(pidfd: int) -> bool:
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return bool(poller.poll(0))


def stand_by(fd: int, forwarded: int, parent: int, token: bytes) -> None:
    """The standby: keep a roll from the warden's copies (``forwarded`` ends with the
    warden); if the warden ends before the test process, read ``fd`` in its place. Then
    stop what it knows of, as the warden does."""
    roll = Roll()
    watch(forwarded, parent, roll)
    roll.drain(forwarded)
    if not ended(parent):  # the warden is gone, the test process is not: take over
        watch(fd, parent, roll)
        roll.drain(fd)
    finish(roll, token)


def finish(roll: Roll, token: bytes) -> None:
    for kid, pid in roll.kids.items():
        stop(kid, pid)
    stop_marked(token)


def detach() -> None:
    null = os.open(os.devnull, os.O_RDWR)
    for std in (0, 1, 2):
        os.dup2(null, std)
    os.close(null)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def main(fd: int, parent_pid: int, token: bytes) -> None:
    if os.fork():  # the double fork: the test process reaps the first stage at once
        os._exit(0)
    try:
        parent = os.pidfd_open(parent_pid)
    except OSError:
        parent = -1  # the test process is gone already: stop what enlisted before it ended
    forwarded, forward = os.pipe()
    standby = os.fork()
    if standby == 0:
        detach()
        os.close(forward)
        if parent >= 0:
            stand_by(fd, forwarded, parent, token)
        os._exit(0)
    os.close(forwarded)
    os.set_blocking(forward, False)  # a copy is never worth blocking the warden for
    try:
        os.write(1, b"%d %d\n" % (os.getpid(), standby))
    except OSError:
        pass  # the test process died as it started a replacement: what enlisted is read below
    detach()
    roll = Roll()
    if parent >= 0:
        watch(fd, parent, roll, forward)
    roll.drain(fd)
    finish(roll, token)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), os.fsencode(sys.argv[3] if len(sys.argv) > 3 else ""))
