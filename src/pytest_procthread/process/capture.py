"""Where a child's fd 1 and fd 2 go, and its result where it is written to a file: an
anonymous memory file where the OS has them, else a file in the scratch directory.

The child opens the capture by path (in append mode) for all start methods, and the test
process reads it by path, so both kinds look the same to the rest of the plugin. On Linux
the file is a ``memfd`` that this process holds open, reached as ``/proc/<pid>/fd/<n>``:
making one costs microseconds where creating and deleting a file on disk costs about a
hundred, and nothing is left on disk if this process is killed. The path is valid only
while :meth:`Capture.discard` has not run; whoever needs the output later must open the
path before then (an open descriptor keeps the memory file alive).
"""

from __future__ import annotations

import os
import tempfile
from typing import Callable, Optional

from ..wire import framing


class Capture:
    """One output file of one child."""

    __slots__ = ("fd", "path")

    def __init__(self, path: str, fd: Optional[int]) -> None:
        self.path = path
        self.fd = fd  # the memory file held open by this process; None for a disk file

    def read_bytes(self) -> bytes:
        try:
            if self.fd is not None:
                return read_all(self.fd)
            with open(self.path, "rb") as f:
                return f.read()
        except OSError:
            return b""

    def read_text(self, keep: int = 0) -> str:
        """The output as text; with ``keep``, at most its first and last ``keep // 2``
        bytes, the middle replaced by a line that says how much was left out, so that a
        child writing gigabytes does not take as much memory in this process."""
        if keep <= 0:
            return self.read_bytes().decode("utf-8", errors="backslashreplace")
        try:
            if self.fd is not None:
                return _ends(self.fd, keep)
            with open(self.path, "rb") as f:
                return _ends(f.fileno(), keep)
        except OSError:
            return ""

    def append(self, text: str) -> None:
        try:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(text)
        except OSError:
            pass

    def discard(self) -> None:
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)
            return
        try:
            os.unlink(self.path)
        except OSError:
            pass


def _ends(fd: int, keep: int) -> str:
    size = os.fstat(fd).st_size
    if size <= keep:
        return read_all(fd).decode("utf-8", errors="backslashreplace")
    half = keep // 2
    head = os.pread(fd, half, 0)
    tail = os.pread(fd, half, size - half)
    left_out = size - len(head) - len(tail)
    note = (f"\n[pytest-procthread: {left_out:,} bytes of this output left out here; it "
            f"was {size:,} bytes, of which the first and last {half:,} are kept]\n")
    return (head.decode("utf-8", errors="backslashreplace") + note
            + tail.decode("utf-8", errors="backslashreplace"))


def read_all(fd: int) -> bytes:
    # pread leaves the shared file offset alone: children may still be writing at it.
    size = os.fstat(fd).st_size
    if not size:
        return b""
    chunks = []
    offset = 0
    while offset < size:
        chunk = os.pread(fd, size - offset, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _memory_files_work() -> bool:
    """True where a memfd can be made and reopened through /proc in append mode."""
    if not hasattr(os, "memfd_create") or not hasattr(os, "pread"):
        return False
    fd = -1
    try:
        fd = os.memfd_create("procthread-probe", os.MFD_CLOEXEC)
        reopened = os.open(f"/proc/{os.getpid()}/fd/{fd}", os.O_WRONLY | os.O_APPEND)
        try:
            os.write(reopened, b"ok")
        finally:
            os.close(reopened)
        return os.pread(fd, 2, 0) == b"ok"
    except OSError:
        return False
    finally:
        if fd >= 0:
            os.close(fd)


_MEMORY_FILES: Optional[bool] = None


def new_memory_file(kind: str) -> Optional[int]:
    """A new, empty memory file in append mode, or None where there are none."""
    global _MEMORY_FILES
    if _MEMORY_FILES is None:
        _MEMORY_FILES = _memory_files_work()
    if not _MEMORY_FILES:
        return None
    import fcntl

    # Close-on-exec: a program the child execs gets the output through fd 1 and 2, which
    # the child dup2()s, not through this descriptor. Append mode is a property of the
    # open file, so every copy of the descriptor (fd 1 and 2 of a forked child) has it.
    fd = os.memfd_create(f"procthread-{kind}", os.MFD_CLOEXEC)
    fcntl.fcntl(fd, fcntl.F_SETFL, os.O_APPEND)
    return fd


def new_capture(kind: str, scratch_dir: Callable[[], str]) -> Capture:
    """A new, empty capture file; ``scratch_dir`` gives the directory for a disk file."""
    fd = new_memory_file(kind)
    if fd is not None:
        return Capture(f"/proc/{os.getpid()}/fd/{fd}", fd)
    fd, path = tempfile.mkstemp(prefix=f"{kind}-", dir=scratch_dir())
    os.close(fd)
    return Capture(path, None)


def read_frame(fd: int) -> Optional[bytes]:
    """The one frame a child wrote to the memory file ``fd`` (see ``wire.framing``); None
    if it is missing or cut short (the child died while writing it)."""
    return framing.first(read_all(fd))
