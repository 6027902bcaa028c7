"""The ``spawn`` and ``forkserver`` start path: ``multiprocessing.Process``, a fresh
interpreter for each child, which unpickles the call (see ``wire.pickling``) and runs
``child.main.child_main``.

The child's ends of its pipes go as bare descriptors on POSIX (``child.spec.FdRef``),
as Connections on Windows. A forkserver is asked to preload the child's modules, so that
its children do not each import them again.
"""

from __future__ import annotations

import multiprocessing
import sys
from typing import Any, Optional

from ..child import fdguard
from ..child.lifeline import tree_mark
from ..child.main import child_main
from ..child.spec import ChildSpec, FdRef
from ..errors import NotPicklableError
from .launch import Launched, LaunchRequest
from .warden import pipe_for_child

# Imported once by a forkserver server rather than by each of its children: our child's
# entry point, and ctypes (which the child uses to unbuffer C stdio).
_FORKSERVER_PRELOAD = ("ctypes", child_main.__module__)
_forkserver_preload_checked = False


class MpChild:
    """A ``multiprocessing.Process`` as a ``launch.ChildProcess``."""

    done: Optional[int] = None
    lost = ""

    def __init__(self, process: Any) -> None:
        self._process = process
        self.pid: int = process.pid
        self.sentinel = process.sentinel

    @property
    def exitcode(self) -> Optional[int]:
        code: Optional[int] = self._process.exitcode
        return code

    def is_alive(self) -> bool:
        return bool(self._process.is_alive())

    def join(self, timeout: Optional[float] = None) -> None:
        self._process.join(timeout)

    def note_done(self) -> bool:
        return False

    def close(self) -> None:
        try:
            self._process.close()
        except ValueError:  # still running: it is killed first, never left so
            pass


def start_with_multiprocessing(request: LaunchRequest) -> Launched:
    """Start the child of ``request`` with ``multiprocessing`` and its start method."""
    method = request.start_method
    ctx: Any = multiprocessing.get_context(method)
    if method == "forkserver":
        _preload_in_forkserver(ctx, measured=request.coverage is not None)
    out, err = request.captures
    result_r, result_w = ctx.Pipe(duplex=False)
    lifeline_r, lifeline_w = ctx.Pipe(duplex=False)
    fdguard.keep_in_parent(lifeline_w.fileno())
    windows = sys.platform == "win32"
    warden_pipe = None if windows else pipe_for_child()
    spec = ChildSpec(
        name=request.name, start_method=method,
        result_conn=result_w if windows else FdRef(result_w.fileno()),
        lifeline_conn=lifeline_r if windows else FdRef(lifeline_r.fileno()),
        stdout_path=out.path, stderr_path=err.path, timeout=request.timeout,
        payload=request.payload, externals=request.externals, coverage=request.coverage,
        outside=None if warden_pipe is None else (FdRef(warden_pipe), tree_mark()),
    )
    try:
        process = ctx.Process(target=child_main, args=(spec,), name=f"procthread:{request.name}")
        process.start()
    except Exception as exc:
        fdguard.release(lifeline_w.fileno())
        for conn in (result_r, lifeline_w):
            conn.close()
        if isinstance(exc, (TypeError, RuntimeError, AttributeError)) or "pickl" in str(exc):
            raise NotPicklableError(
                f"cannot send the call's multiprocessing objects to a child started with "
                f"{method!r}: {type(exc).__name__}: {exc}. Create queues, locks and values "
                f"from isolated_process.context (the same start method), not another one.",
                what="a multiprocessing object", start_method=method,
            ) from exc
        raise
    finally:
        result_w.close()
        lifeline_r.close()
    return Launched(MpChild(process), result_r, None, lifeline_w)


def _preload_in_forkserver(ctx: Any, measured: bool) -> None:
    """Add our child's modules to the forkserver preload list, if no server runs yet; and
    coverage, if it measures this process (each child would import it: see child.coverage).

    Uses the public ``set_forkserver_preload()``, which replaces the whole list; to keep
    the modules someone else asked for (default ``["__main__"]``) the current list, and
    whether a server already runs, can only be read from multiprocessing's private
    ``forkserver._forkserver`` state. That read is guarded: if the private names ever
    change, nothing is altered, and children import the modules themselves as before.
    Once a server runs its preloads are fixed, so a running server is left alone too.
    """
    global _forkserver_preload_checked
    if _forkserver_preload_checked:
        return
    _forkserver_preload_checked = True
    try:
        from multiprocessing import forkserver

        server = getattr(forkserver, "_forkserver", None)
        modules = getattr(server, "_preload_modules", None)
        if (
            not isinstance(modules, list)
            or not hasattr(server, "_forkserver_pid")
            or getattr(server, "_forkserver_pid", None) is not None
        ):
            return
        wanted = (*_FORKSERVER_PRELOAD, "coverage") if measured else _FORKSERVER_PRELOAD
        missing = [name for name in wanted if name not in modules]
        if missing:
            ctx.set_forkserver_preload([*modules, *missing])
    except Exception:
        pass
