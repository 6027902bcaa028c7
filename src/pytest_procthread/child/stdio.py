"""A child's output and crash handling: fd 1 and 2 onto its capture files, unbuffered at
both the Python and the C level, faulthandler on every thread, no core files.

Some of this is done once in the process that forks (``prepare_parent_for_fork``), so
that each fork child inherits it instead of doing it: in a fork child every memory page
written is a copy.
"""

from __future__ import annotations

import faulthandler
import io
import os
import signal
import sys
import threading
from typing import Any, Optional

from .spec import keep

Streams = tuple[io.TextIOWrapper, io.TextIOWrapper]


def suppress_crash_reports() -> None:
    """No core files, no Windows error dialogs: a deliberate crash must stay quiet."""
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ImportError, ValueError, OSError):
        pass
    if sys.platform == "win32":
        try:
            import ctypes

            SEM_FAILCRITICALERRORS, SEM_NOGPFAULTERRORBOX, SEM_NOOPENFILEERRORBOX = 0x1, 0x2, 0x8000
            kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
            kernel32.SetErrorMode(
                SEM_FAILCRITICALERRORS | SEM_NOGPFAULTERRORBOX | SEM_NOOPENFILEERRORBOX
            )
        except Exception:
            pass
        try:
            import msvcrt

            for report_type in (0, 1, 2):  # _CRT_WARN, _CRT_ERROR, _CRT_ASSERT
                msvcrt.CrtSetReportMode(report_type, 0)  # type: ignore[attr-defined]
        except Exception:
            pass


def install_crash_handlers(timeout: float, cores_off: bool = False) -> None:
    """faulthandler on fd 2 for every thread, a stack dump on SIGTERM (what the parent
    sends at a timeout), and crash reports off unless the child started with them off."""
    # fd 2 is the child's captured stderr by now; a number, not sys.stderr, spares the
    # Python calls on the stream (half the cost in a fork child), and a dump still lands
    # there if the target replaces sys.stderr.
    faulthandler.enable(file=2, all_threads=True)
    if hasattr(faulthandler, "register") and hasattr(signal, "SIGTERM"):
        # On SIGTERM: dump every thread's stack, then die of SIGTERM as usual, so the dump
        # is complete before the process is gone.
        try:
            faulthandler.register(signal.SIGTERM, file=2, all_threads=True, chain=True)
        except (RuntimeError, ValueError, OSError):
            pass
    elif sys.platform == "win32":
        # No signals to ask for a dump from outside: arm a dump at the deadline instead.
        faulthandler.dump_traceback_later(timeout, exit=False, file=sys.stderr)
    if not cores_off:
        suppress_crash_reports()


# Python 3.9 has no threading.__excepthook__; this module loads with the plugin, before
# pytest wraps the hook around a test, so the hook seen now is the interpreter's own.
_THREAD_EXCEPTHOOK = getattr(threading, "__excepthook__", threading.excepthook)


def restore_default_hooks() -> None:
    """The interpreter's own exception hooks, which print to the child's stderr: a fork
    child inherits the test process's, pytest's among them, which would swallow a
    thread's unhandled exception."""
    keep(sys.excepthook, threading.excepthook, getattr(sys, "unraisablehook", None))
    sys.excepthook = sys.__excepthook__
    threading.excepthook = _THREAD_EXCEPTHOOK
    if hasattr(sys, "__unraisablehook__"):
        sys.unraisablehook = sys.__unraisablehook__


def _text_streams() -> Streams:
    """New unbuffered text streams on fd 1 and fd 2."""
    return tuple(  # type: ignore[return-value]
        io.TextIOWrapper(
            io.FileIO(fd, "w", closefd=False), encoding="utf-8", errors="backslashreplace",
            write_through=True,
        )
        for fd in (1, 2)
    )


_SPARE_STREAMS: Optional[tuple[int, Streams]] = None


def _spare_streams() -> None:
    """Make a forked child's ``sys.stdout`` and ``sys.stderr`` in the parent, once per
    parent process, never used there: each fork child gets its own copy with the rest of
    the memory, where building them would cost it a copy of every page that touches."""
    global _SPARE_STREAMS
    pid = os.getpid()
    if _SPARE_STREAMS is None or _SPARE_STREAMS[0] != pid:
        try:
            _SPARE_STREAMS = (pid, _text_streams())
        except (OSError, ValueError):  # fd 1 or 2 closed here: the child makes its own
            _SPARE_STREAMS = None


def inherited_streams() -> Optional[Streams]:
    """In a fork child: the streams its parent made for it, if it made them."""
    return _SPARE_STREAMS[1] if _SPARE_STREAMS is not None else None


def redirect_output(
    stdout_path: str, stderr_path: str, inherited: Optional[tuple[int, int]] = None,
    streams: Optional[Streams] = None,
) -> None:
    """Point fd 1 and 2 at the child's capture files: the inherited descriptors of the
    files where there are (fork, memory files), else the files opened by path."""
    # fd-level, so C-level writes and crash reports land in the files as well.
    if inherited is not None:
        for target_fd, fd in zip((1, 2), inherited):
            if fd != target_fd:
                os.dup2(fd, target_fd)
                os.close(fd)
    else:
        for target_fd, path in ((1, stdout_path), (2, stderr_path)):
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | getattr(os, "O_BINARY", 0))
            os.dup2(fd, target_fd)
            os.close(fd)
    # Unbuffered text streams: nothing printed is lost if the child crashes right after.
    sys.stdout, sys.stderr = streams if streams is not None else _text_streams()
    _unbuffer_c_stdio()


def flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


# True once this process's C stdout and stderr are unbuffered; a fork child inherits both
# the streams and the flag.
_c_stdio_unbuffered = False


def _unbuffer_c_stdio() -> None:
    # The same for C-level writes (printf, puts, an extension's fprintf): the C library
    # buffers its stdout when it is a file, and that buffer is lost on a crash and on
    # os._exit, which is how a forked child ends even when all went well.
    global _c_stdio_unbuffered
    if _c_stdio_unbuffered:  # so since the parent (see prepare_parent_for_fork)
        return
    found = _c_stdio()
    if found is None:
        return
    setvbuf, streams = found
    unbuffered = 2  # _IONBF on glibc, musl, macOS and the BSDs
    done = True
    for stream in streams:
        try:
            setvbuf(stream, None, unbuffered, 0)
        except Exception:
            done = False
    _c_stdio_unbuffered = done and bool(streams)


_C_STDIO: Optional[tuple[Any, list[int]]] = None
_C_STDIO_LOOKED_UP = False


def _c_stdio() -> Optional[tuple[Any, list[int]]]:
    """The C library's ``setvbuf`` and its ``stdout``/``stderr`` FILE pointers, looked up
    once per process (a forked child inherits the answer: same library, same addresses)."""
    global _C_STDIO, _C_STDIO_LOOKED_UP
    if _C_STDIO_LOOKED_UP:
        return _C_STDIO
    _C_STDIO_LOOKED_UP = True
    if sys.platform == "win32":
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        setvbuf = libc.setvbuf
        setvbuf.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_size_t]
        streams: list[int] = []
        for names in (("stdout", "__stdoutp"), ("stderr", "__stderrp")):
            for name in names:
                try:
                    stream = ctypes.c_void_p.in_dll(libc, name)
                except ValueError:
                    continue
                if stream.value:
                    streams.append(stream.value)
                break
        _C_STDIO = (setvbuf, streams)
    except Exception:
        _C_STDIO = None
    return _C_STDIO


def prepare_parent_for_fork() -> None:
    """Do in the parent, once, what every forked child would otherwise do for itself:
    import ctypes and look up the C library's streams (more than the fork itself costs a
    child), make them unbuffered, make the child's Python streams, import ``resource``.

    In the test process, unbuffered C streams only mean that C-level output is written as
    it is printed: under pytest's capture it lands in the section of the test that printed
    it rather than whenever the buffer fills.
    """
    _unbuffer_c_stdio()
    _spare_streams()
    try:
        import resource  # noqa: F401  (suppress_crash_reports imports it in the child)
    except ImportError:
        pass
