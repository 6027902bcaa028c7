"""How a child ends with its parent: a watched lifeline, or the parent's warden.

The parent holds the write end of a pipe whose read end the child has; the parent never
writes, so the child's read returns only when every copy of the write end is closed,
that is when the parent process is gone, however it ended. The child then kills what it
started and exits with ``LIFELINE_EXIT_CODE``.

A fork child on Linux does not watch: it enlists with the warden, a small process that
the parent started and that kills the parent's children once the parent is gone (see
``process.warden``), so that it runs no thread of its own. A child of a warm template
asks the kernel to kill it when the template ends (:func:`death_signal_arming`); the
template itself kills it when the test process is gone.
"""

from __future__ import annotations

import _thread
import os
import sys
from typing import Any, Callable, Optional

from .spec import FdRef

LIFELINE_EXIT_CODE = 70  # EX_SOFTWARE: our own "parent is gone" exit

TREE_VAR = "PROCTHREAD_TREE"
_TREE_VAR = TREE_VAR.encode()  # bytes: putenv() in a fork child then encodes nothing
# The tokens of the sessions whose warden must find this process's descendants, however
# they leave the tree (see child.warden_program); set in the test process before a child
# starts, so that a fork child only hands the bytes to putenv().
_tree_mark = b""

# Lifeline watchers started in this process: (the process, how many). A fork child
# inherits the count of its parent, whose threads it does not have.
_watchers = (0, 0)


def end_with_parent() -> None:
    """Kill this process's descendants and exit: the parent is gone."""
    try:
        sys.stderr.write("procthread: the parent process is gone; this child stops now\n")
    except Exception:
        pass
    try:
        import psutil

        for kid in psutil.Process().children(recursive=True):
            try:
                kid.kill()
            except psutil.Error:
                pass
    except Exception:
        pass
    os._exit(LIFELINE_EXIT_CODE)


def watch(conn: Any) -> None:
    """The watcher thread: wait for the end of the lifeline, then end this process."""
    # The parent never writes: this returns only when its end closes, that is when the
    # parent process is gone. A blocking read is the point, hence no timeout.
    try:
        if isinstance(conn, FdRef):
            while os.read(conn.fd, 1):
                pass
        else:
            conn.recv_bytes()
    except (EOFError, OSError):
        pass
    end_with_parent()


def set_tree_mark(mark: str) -> None:
    """In the test process: the value of ``TREE_VAR`` its children pass on."""
    global _tree_mark
    _tree_mark = mark.encode()


def tree_mark() -> str:
    return _tree_mark.decode()


def mark_tree(mark: bytes) -> None:
    """Put ``mark`` in the environment this process's own children inherit. ``putenv``
    alone (not ``os.environ``): a fork child then writes to no dict of the parent's, and
    code in the child sees the environment it would see without isolation."""
    if mark:
        try:
            os.putenv(_TREE_VAR, mark)
        except (OSError, ValueError):
            pass


def start_watcher(conn: Any, outside: Optional[tuple[Any, str]] = None) -> None:
    """Watch the lifeline ``conn`` (an FdRef, or a Connection on Windows) from a bare OS
    thread: ``threading`` does not list it, so code in the child sees the threads it
    would see without isolation, and it starts without waiting for the new thread.

    ``outside``: the warden's pipe and the tree mark, for a spawn or forkserver child,
    which also enlists with the warden: a thread cannot end a process stuck in C code
    that holds the GIL, the warden can."""
    global _watchers
    if outside is not None:
        mark_tree(outside[1].encode())
        enlist(outside[0].fd)
    _thread.start_new_thread(watch, (conn,))
    pid = os.getpid()
    _watchers = (pid, (_watchers[1] if _watchers[0] == pid else 0) + 1)


def death_signal_arming() -> Optional[Callable[[], bool]]:
    """On Linux: a function that asks the kernel to kill the calling process (SIGKILL)
    once its parent ends (``PR_SET_PDEATHSIG``), True if it could; None elsewhere. Looked
    up in the parent, called in its fork child, which then needs no watcher thread."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes
        import signal

        prctl = ctypes.CDLL(None, use_errno=True).prctl
        prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                          ctypes.c_ulong]
        prctl.restype = ctypes.c_int
    except Exception:
        return None
    parent = os.getpid()
    kill = int(signal.SIGKILL)

    def arm() -> bool:
        # Armed after the parent ended, it would never fire: then it did not work.
        return bool(prctl(1, kill, 0, 0, 0) == 0) and os.getppid() == parent  # 1: PR_SET_PDEATHSIG

    return arm


def helper_threads_here() -> int:
    """OS threads that pytest-procthread itself runs in this process and that ``threading``
    does not list: an isolated child's lifeline watcher. 0 outside isolated children, and
    in fork children on Linux, which the warden watches instead (see ``process.warden``)."""
    return _watchers[1] if _watchers[0] == os.getpid() else 0


def enlist(pipe: int) -> bool:
    """Ask the parent's warden to stop this child with its parent (write this pid to the
    warden's pipe, then close the pipe). False if the warden cannot hear it: the child
    must then watch for itself."""
    try:
        os.write(pipe, b"%d\n" % os.getpid())
    except OSError:
        return False
    else:
        mark_tree(_tree_mark)  # the warden that looks for the mark hears of this child
    finally:
        try:
            os.close(pipe)
        except OSError:
            pass
    return True
