"""The one scratch directory of this process, for children's output files where there are
no memory files (anywhere but Linux).

Made on first use, once per process (a fork child that needs one makes its own), and
shared by every runner: making and removing a directory per test costs a noticeable part
of a fork. Each file in it is removed with its child's outcome; the directory goes at
interpreter exit, or at the end of a pytest session when no runner holds it.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from typing import Optional

_lock = threading.Lock()
_dir: Optional[str] = None
_pid = 0  # the process that made it: a forked child must not remove it
_users = 0  # open runners that hold it


def _directory_locked() -> str:
    global _dir, _pid, _users
    pid = os.getpid()
    if _dir is None or _pid != pid or not os.path.isdir(_dir):
        if _pid != pid:
            _users = 0
            atexit.register(_remove_at_exit)
        _dir = tempfile.mkdtemp(prefix="procthread-")
        _pid = pid
    return _dir


def directory() -> str:
    """The scratch directory, for files removed before the session ends."""
    with _lock:
        return _directory_locked()


def hold() -> str:
    """The scratch directory, held until :func:`release` (an open runner)."""
    global _users
    with _lock:
        path = _directory_locked()
        _users += 1
        return path


def release() -> None:
    global _users
    with _lock:
        if _pid == os.getpid() and _users > 0:
            _users -= 1


def remove_idle() -> None:
    """Remove the directory now if no open runner holds it."""
    global _dir
    with _lock:
        if _dir is not None and _pid == os.getpid() and _users == 0:
            shutil.rmtree(_dir, ignore_errors=True)
            _dir = None


def _remove_at_exit() -> None:
    global _dir
    if _dir is not None and _pid == os.getpid():
        shutil.rmtree(_dir, ignore_errors=True)
        _dir = None
