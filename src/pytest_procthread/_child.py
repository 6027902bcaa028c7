"""What runs first in every isolated child: capture, crash handlers, lifeline, the call.

Kept to the standard library (psutil and cloudpickle load only when needed) because under
``spawn`` every import here is paid again by every child.
"""

from __future__ import annotations

import faulthandler
import io
import os
import pickle
import signal
import sys
import threading
from typing import Any, Callable, Optional

from . import _wire

RESULT_VERSION = 1
LIFELINE_EXIT_CODE = 70  # EX_SOFTWARE: our own "parent is gone" exit


class ChildSpec:
    """Everything the child needs, small and picklable by multiprocessing.

    A plain class with ``__slots__``, not a dataclass: importing dataclasses pulls in
    inspect (and more), a few milliseconds in every spawn and forkserver child.
    """

    _FIELDS = (
        "name", "start_method", "result_conn", "lifeline_conn", "stdout_path", "stderr_path",
        "timeout", "direct_call", "payload", "externals", "quiet_lifeline", "capture_fds",
        "warden",
    )
    __slots__ = (
        "capture_fds", "direct_call", "externals", "lifeline_conn", "name", "payload",
        "quiet_lifeline", "result_conn", "start_method", "stderr_path", "stdout_path", "timeout",
        "warden",
    )

    def __init__(
        self,
        name: str,
        start_method: str,
        result_conn: Any,
        lifeline_conn: Any,
        stdout_path: str,
        stderr_path: str,
        timeout: float,
        # Under fork the call is inherited as objects; otherwise it arrives pickled.
        direct_call: Optional[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = None,
        payload: bytes = b"",
        externals: Optional[list[Any]] = None,
        # A lifeline watcher that the threading module does not list (a bare OS thread), so
        # a test body in the child sees the threads it would see without isolation; it also
        # starts without waiting for the new thread to run.
        quiet_lifeline: bool = False,
        # Under fork, where the output files are memory files: the child's inherited copies
        # of them, to dup2() onto fd 1 and 2 instead of opening the paths.
        capture_fds: Optional[tuple[int, int]] = None,
        # Under fork on Linux: the parent's warden pipe and the parent's pid (see _warden);
        # the child enlists there instead of starting a lifeline watcher.
        warden: Optional[tuple[int, int]] = None,
    ) -> None:
        self.name = name
        self.start_method = start_method
        self.result_conn = result_conn
        self.lifeline_conn = lifeline_conn
        self.stdout_path = stdout_path
        self.stderr_path = stderr_path
        self.timeout = timeout
        self.direct_call = direct_call
        self.payload = payload
        self.externals: list[Any] = [] if externals is None else externals
        self.quiet_lifeline = quiet_lifeline
        self.capture_fds = capture_fds
        self.warden = warden

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._FIELDS)
        return f"ChildSpec({fields})"


class FdRef:
    """One end of a pipe handed to the child as a bare descriptor (POSIX only).

    multiprocessing hands it over exactly as it hands over a ``Connection`` (``DupFd``),
    but rebuilding it in the child needs neither ``multiprocessing.connection`` nor what
    that imports (tempfile, shutil, random, bz2, lzma): several milliseconds in every spawn
    and forkserver child. Windows keeps passing ``Connection`` objects, whose handles
    multiprocessing duplicates (``DupHandle``); the child accepts either.
    """

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __repr__(self) -> str:
        return f"FdRef({self.fd})"

    def __reduce__(self) -> Any:
        from multiprocessing import reduction

        return (_rebuild_fd, (reduction.DupFd(self.fd),))


def _rebuild_fd(dup: Any) -> FdRef:
    return FdRef(dup.detach())


def _send_bytes(conn: Any, data: bytes) -> None:
    """``conn.send_bytes(data)``, for a Connection or an FdRef (same framing on the wire)."""
    if not isinstance(conn, FdRef):
        conn.send_bytes(data)
        return
    if data is RETURNED_NONE:  # most results: framed once, at import
        parts: tuple[bytes, ...] = (_RETURNED_NONE_FRAMED,)
    else:
        header = _header(len(data))
        parts = (header + data,) if len(data) <= 16384 else (header, data)
    for part in parts:
        written = os.write(conn.fd, part)
        if written < len(part):  # a short write, on a full pipe
            view = memoryview(part)[written:]
            while view:
                view = view[os.write(conn.fd, view):]


def _header(n: int) -> bytes:
    # The framing of multiprocessing.connection.Connection._send_bytes.
    if n > 0x7FFFFFFF:
        return (-1).to_bytes(4, "big", signed=True) + n.to_bytes(8, "big")
    return n.to_bytes(4, "big", signed=True)


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


def _text_streams() -> tuple[io.TextIOWrapper, io.TextIOWrapper]:
    """New unbuffered text streams on fd 1 and fd 2."""
    return tuple(  # type: ignore[return-value]
        io.TextIOWrapper(
            io.FileIO(fd, "w", closefd=False), encoding="utf-8", errors="backslashreplace",
            write_through=True,
        )
        for fd in (1, 2)
    )


_SPARE_STREAMS: Optional[tuple[int, tuple[io.TextIOWrapper, io.TextIOWrapper]]] = None


def _spare_streams() -> Optional[tuple[io.TextIOWrapper, io.TextIOWrapper]]:
    """A forked child's ``sys.stdout`` and ``sys.stderr``, made by the parent.

    Made once per parent process and never used there: each forked child gets its own
    copy with the rest of the memory, and building them in the child costs it a copy of
    every memory page that building touches.
    """
    global _SPARE_STREAMS
    pid = os.getpid()
    if _SPARE_STREAMS is None or _SPARE_STREAMS[0] != pid:
        try:
            _SPARE_STREAMS = (pid, _text_streams())
        except (OSError, ValueError):  # fd 1 or 2 closed here: the child makes its own
            return None
    return _SPARE_STREAMS[1]


def _redirect_output(
    stdout_path: str, stderr_path: str, inherited: Optional[tuple[int, int]] = None,
    streams: Optional[tuple[io.TextIOWrapper, io.TextIOWrapper]] = None,
) -> None:
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


def _unbuffer_c_stdio() -> None:
    # The same for C-level writes (printf, puts, an extension's fprintf): the C library
    # buffers its stdout when it is a file, and that buffer is lost on a crash and on
    # os._exit, which is how multiprocessing ends a forked child even when all went well.
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


# True once this process's C stdout and stderr are unbuffered; a fork child inherits both
# the streams and the flag.
_c_stdio_unbuffered = False


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
    """Do in the parent, once, what every forked child would otherwise do for itself.

    Importing ctypes and looking up the C library's streams costs a forked child about
    3 ms, more than the fork itself; done here once, every fork child inherits it. The
    streams are made unbuffered here too, as the child needs them (two ctypes calls cost a
    fork child about 0.1 ms of copied pages). In the test process that only means C-level
    output is written as it is printed: under pytest's capture it lands in the section of
    the test that printed it rather than whenever the buffer fills.
    """
    _unbuffer_c_stdio()
    _spare_streams()
    try:
        import resource  # noqa: F401  (suppress_crash_reports imports it in the child)
    except ImportError:
        pass


_current_spec: Optional[ChildSpec] = None


def current_output_paths() -> Optional[tuple[str, str]]:
    """In an isolated child: the files its fd 1 and fd 2 write to; elsewhere None."""
    spec = _current_spec
    return None if spec is None else (spec.stdout_path, spec.stderr_path)


def _parent_module(name: str) -> Any:
    """A module of this package that the test process imported before it forked this
    child: looked up, not imported (an import statement run in a fork child walks the
    import system, and every page that walk writes to is copied). Kept out of this
    module's imports because spawn and forkserver children, which never use them, would
    import them too."""
    return sys.modules[f"{__package__}.{name}"]


def _enlist(pipe: int) -> bool:
    return bool(_parent_module("_warden").enlist(pipe))  # only fork children have one


def _install_crash_handlers(timeout: float, cores_off: bool = False) -> None:
    # fd 2 is the child's captured stderr by now; a number, not sys.stderr, spares the
    # Python calls on the stream (half the cost in a fork child), and a dump still lands
    # there if the target replaces sys.stderr.
    faulthandler.enable(file=2, all_threads=True)
    if hasattr(faulthandler, "register") and hasattr(signal, "SIGTERM"):
        # On SIGTERM: dump every thread's stack, then die of SIGTERM as usual. The parent
        # sends it on timeout, so the dump is complete before the process is gone.
        try:
            faulthandler.register(signal.SIGTERM, file=2, all_threads=True, chain=True)
        except (RuntimeError, ValueError, OSError):
            pass
    elif sys.platform == "win32":
        # No signals to ask for a dump from outside: arm a dump at the deadline instead.
        faulthandler.dump_traceback_later(timeout, exit=False, file=sys.stderr)
    if not cores_off:  # a fork child may start with them off (see _fork)
        suppress_crash_reports()


def _end_with_parent() -> None:
    try:
        sys.stderr.write("procthread: the parent process is gone; this child stops now\n")
    except Exception:
        pass
    try:
        import psutil

        kids = psutil.Process().children(recursive=True)
        for kid in kids:
            try:
                kid.kill()
            except psutil.Error:
                pass
    except Exception:
        pass
    os._exit(LIFELINE_EXIT_CODE)


_quiet_watchers = 0  # lifeline watchers started here as bare OS threads


def helper_threads_here() -> int:
    """OS threads that pytest-procthread itself runs in this process and that ``threading``
    does not list: an isolated child's lifeline watcher. 0 outside isolated children, and
    in fork children on Linux, which the warden watches instead (see ``_warden``)."""
    return _quiet_watchers if _current_spec is not None else 0


def _watch_lifeline(conn: Any, quiet: bool = False) -> None:
    def watch() -> None:
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
        _end_with_parent()

    global _quiet_watchers
    if quiet:
        import _thread

        _thread.start_new_thread(watch, ())
        _quiet_watchers += 1
    else:
        threading.Thread(target=watch, name="procthread-lifeline", daemon=True).start()


def _format_exception(exc: BaseException) -> str:
    import traceback  # only on failure: it pulls in linecache and tokenize

    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def _install_exception_pickling(exc: BaseException) -> None:
    from tblib import pickling_support

    pickling_support.install(exc)
    _carry_tracebacks()
    # tblib rebuilds an exception whose class has its own __init__ but the default
    # __reduce__ without calling that __init__. For built-in classes, that __init__ is what
    # sets SystemExit.code, StopIteration.value...; rebuild those by calling the class.
    import copyreg

    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        cls = type(current)
        home = _real_home(cls)
        if home is not None and home != cls.__module__:
            copyreg.pickle(cls, _reduce_relocated_exception)
        elif cls.__module__ == "builtins" or callable(getattr(current, "derive", None)):
            # Exception groups too: the backport (Python < 3.11) has its own __init__.
            copyreg.pickle(cls, _reduce_builtin_exception)
        todo += [e for e in (current.__cause__, current.__context__) if e is not None]
        todo += [e for e in getattr(current, "exceptions", ()) if isinstance(e, BaseException)]


def _reduce_builtin_exception(exc: BaseException) -> Any:
    from tblib import pickling_support

    reduced: Any = exc.__reduce__()  # a tuple for every built-in exception
    func, args, *state = reduced
    return (
        pickling_support.unpickle_exception,
        (func, args, exc.__cause__, exc.__traceback__, exc.__context__,
         exc.__suppress_context__, getattr(exc, "__notes__", None)),
        *state,
    )


def _real_home(cls: type) -> Optional[str]:
    """The module a class can be imported from. Usually its ``__module__``; but some classes
    misstate it for nicer messages (pytest's Skipped, Failed and Exit say 'builtins'), and
    pickle, which looks a class up by that name, would then fail or copy the class by value."""
    named = sys.modules.get(cls.__module__)
    if named is not None and getattr(named, cls.__qualname__, None) is cls:
        return str(cls.__module__)
    for name, module in list(sys.modules.items()):
        if getattr(module, cls.__name__, None) is cls:
            return name
    return None


def _rebuild_relocated(module: str, qualname: str, *args: Any) -> BaseException:
    import importlib

    cls = importlib.import_module(module)
    for part in qualname.split("."):
        cls = getattr(cls, part)
    return cls(*args)  # type: ignore[operator,no-any-return]


def _reduce_relocated_exception(exc: BaseException) -> Any:
    import functools

    from tblib import pickling_support

    reduced: Any = exc.__reduce__()
    _, args, *state = reduced
    home = _real_home(type(exc)) or type(exc).__module__
    return (
        pickling_support.unpickle_exception,
        (functools.partial(_rebuild_relocated, home, type(exc).__qualname__), args,
         exc.__cause__, exc.__traceback__, exc.__context__, exc.__suppress_context__,
         getattr(exc, "__notes__", None)),
        *state,
    )


def _picklable_exception(exc: BaseException) -> BaseException:
    """The exception itself when it survives a round trip, else a faithful stand-in."""

    _install_exception_pickling(exc)
    try:
        data, externals = _wire.dumps(exc)
        if not externals:
            _wire.loads(data, [])
            return exc
    except Exception:
        pass
    from .errors import RemoteException

    stand_in = RemoteException(
        f"{type(exc).__module__}.{type(exc).__qualname__}", str(exc), _format_exception(exc)
    )
    stand_in.__traceback__ = exc.__traceback__
    _install_exception_pickling(stand_in)
    return stand_in


def _carry_tracebacks() -> None:
    """Tracebacks go as ``_tracebacks`` carries them (source span, arguments, locals,
    ``__tracebackhide__``), not as tblib's bare frames; tblib still rebuilds the exceptions
    around them. After tblib's ``install``, which registers its own reducer each time."""
    import copyreg
    import types

    from . import _tracebacks

    copyreg.pickle(types.TracebackType, _tracebacks.reduce_traceback)


RETURNED_NONE = pickle.dumps(
    {"v": RESULT_VERSION, "status": "returned", "value": None}, pickle.HIGHEST_PROTOCOL
)
_RETURNED_NONE_FRAMED = _header(len(RETURNED_NONE)) + RETURNED_NONE
# Values that plain pickle sends faithfully everywhere, without a look at each object.
_PLAIN_VALUES = (type(None), bool, int, float, str, bytes)


def _send(conn: Any, result: dict[str, Any]) -> None:
    if type(result.get("value")) in _PLAIN_VALUES and "exception" not in result:
        _send_bytes(conn, pickle.dumps(result, pickle.HIGHEST_PROTOCOL))
        return
    try:
        data, externals = _wire.dumps(result)
        if externals:
            raise TypeError(
                f"it holds {len(externals)} multiprocessing object(s), which cannot be sent back"
            )
    except (Exception, SystemExit) as exc:  # a __reduce__ may even call sys.exit()
        from .errors import NotPicklableError

        value = result.get("value")
        message = _wire.describe_unpicklable(
            "the target returned", value, exc,
            "Return plain data (numbers, strings, lists, dicts, dataclasses) instead.",
        )
        error = NotPicklableError(message, what="the return value")
        data, _ = _wire.dumps(
            {"v": RESULT_VERSION, "status": "raised", "exception": error, "traceback": message}
        )
    _send_bytes(conn, data)


# Python 3.9 has no threading.__excepthook__; this module loads with the plugin, before
# pytest wraps the hook around a test, so the hook seen now is the interpreter's own.
_THREAD_EXCEPTHOOK = getattr(threading, "__excepthook__", threading.excepthook)


def keep(*replaced: Any) -> None:
    """In a fork child: hold on to objects of the parent that the child replaces. Freed,
    each would write to its own memory page and to its neighbours' in the collector's
    list (copies of the parent's pages, a few microseconds each); the child ends soon."""
    _kept.extend(replaced)


_kept: list[Any] = []


def _restore_default_hooks() -> None:
    # A forked child inherits the test process's hooks, pytest's among them, which would
    # swallow a thread's unhandled exception instead of printing it to the child's stderr.
    keep(sys.excepthook, threading.excepthook, getattr(sys, "unraisablehook", None))
    sys.excepthook = sys.__excepthook__
    threading.excepthook = _THREAD_EXCEPTHOOK
    if hasattr(sys, "__unraisablehook__"):
        sys.unraisablehook = sys.__unraisablehook__


def child_main(spec: ChildSpec) -> None:
    """Entry point of the child, given to multiprocessing as the process target."""
    __tracebackhide__ = True  # pytest hides this frame when the test re-raises the error
    global _current_spec
    _current_spec = spec
    _restore_default_hooks()
    _redirect_output(
        spec.stdout_path, spec.stderr_path, spec.capture_fds,
        _SPARE_STREAMS[1] if spec.direct_call is not None and _SPARE_STREAMS else None,
    )
    cores_off = spec.start_method == "fork" and _parent_module("_fork").started_without_cores
    _install_crash_handlers(spec.timeout, cores_off)
    if spec.warden is not None and _enlist(spec.warden[0]):
        if os.getppid() != spec.warden[1]:  # gone before the warden could know of this child
            _end_with_parent()
    else:
        _watch_lifeline(spec.lifeline_conn, spec.quiet_lifeline)

    try:
        if spec.direct_call is not None:
            fn, args, kwargs = spec.direct_call
        else:
            fn, args, kwargs = _wire.loads(spec.payload, spec.externals)
    except BaseException as exc:
        message = (
            f"the child could not unpickle the call under start method {spec.start_method!r}: "
            f"{type(exc).__name__}: {exc}. The target and its arguments must be importable "
            f"in a fresh interpreter (define them at module level in an importable module), "
            f"or use start_method='fork'."
        )
        from .errors import ProcThreadError

        error = ProcThreadError(message)
        error.__cause__ = _picklable_exception(exc)
        _send(spec.result_conn, {
            "v": RESULT_VERSION, "status": "raised",
            "exception": _picklable_exception(error), "traceback": _format_exception(exc),
        })
        raise SystemExit(1) from None

    try:
        value = fn(*args, **kwargs)
    except BaseException as exc:
        code = exc.code if isinstance(exc, SystemExit) else 1
        _send(spec.result_conn, {
            "v": RESULT_VERSION, "status": "raised",
            "exception": _picklable_exception(exc), "traceback": _format_exception(exc),
        })
        _flush()
        if isinstance(code, int):
            raise SystemExit(code) from None
        raise SystemExit(1) from None
    if value is None:  # most targets: a message made once, at import
        _send_bytes(spec.result_conn, RETURNED_NONE)
    else:
        _send(spec.result_conn, {"v": RESULT_VERSION, "status": "returned", "value": value})
    _flush()


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
