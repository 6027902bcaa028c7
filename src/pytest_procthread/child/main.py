"""The life of every isolated child, in order: ``child_main`` and nothing else.

1. the parent's exception hooks undone (pytest's would swallow a thread's exception);
2. fd 1 and 2 onto the capture files (``stdio``);
3. crash handlers: faulthandler, no core files (``stdio``);
4. the lifeline: enlisted with the warden, or watched (``lifeline``);
5. the call: inherited (fork) or unpickled (``wire.pickling``);
6. the result record, framed on the result pipe or file (``wire.result``).

When coverage.py measures the test process, the child measures itself from step 3 to the
end (``coverage``).
"""

from __future__ import annotations

import os
from typing import Any, Optional

from ..errors import ProcThreadError
from ..wire import pickling, result
from ..wire.framing import write as write_frame
from ..wire.result import RETURNED_NONE, RETURNED_NONE_FRAMED
from .lifeline import end_with_parent, enlist, start_watcher
from .spec import ChildSpec, FdRef, enter
from .stdio import (
    flush,
    inherited_streams,
    install_crash_handlers,
    redirect_output,
    restore_default_hooks,
)

# The steps are imported by name, not reached through their modules: in a fork child each
# object used is written to (its reference count), and each page written is a copy.


def child_main(spec: ChildSpec) -> None:
    """Entry point of the child: run the spec's call and send back its result record."""
    __tracebackhide__ = True  # pytest hides this frame when the test re-raises the error
    enter(spec)
    restore_default_hooks()
    redirect_output(
        spec.stdout_path, spec.stderr_path, spec.capture_fds,
        inherited_streams() if spec.direct_call is not None else None,
    )
    measured = spec.coverage  # None unless coverage.py measures the test process
    if measured is not None:  # before the crash handlers: see child.coverage
        measured.begin()
    try:
        install_crash_handlers(spec.timeout, spec.cores_off)
        if spec.warden is not None and enlist(spec.warden[0]):
            if os.getppid() != spec.warden[1]:  # gone before the warden could know of it
                end_with_parent()
        elif spec.lifeline_conn is not None:  # None: the kernel ends it with its parent
            start_watcher(spec.lifeline_conn, spec.outside)
        try:
            fn, args, kwargs = (spec.direct_call if spec.direct_call is not None
                                else pickling.loads(spec.payload, spec.externals))
        except BaseException as exc:
            _send(spec.result_conn, _unpickling_failed(spec, exc))
            raise SystemExit(1) from None
        try:
            value = fn(*args, **kwargs)
        except BaseException as exc:
            code = exc.code if isinstance(exc, SystemExit) else 1
            _send(spec.result_conn, _raised(exc))
            flush()
            raise SystemExit(code if isinstance(code, int) else 1) from None
        if value is None:  # most targets: a frame made once, at import
            _send_bytes(spec.result_conn, RETURNED_NONE, RETURNED_NONE_FRAMED)
        else:
            _send(spec.result_conn, result.returned(value))
        flush()
    finally:
        if measured is not None:  # before the child says it is done and exits
            measured.finish()


def _raised(exc: BaseException) -> result.Record:
    # Imported here, as tblib with it: only a call that raised needs them, and a spawn
    # child pays for every module it imports.
    from ..wire import exceptions

    return result.raised(exceptions.picklable(exc), exceptions.format_exception(exc))


def _unpickling_failed(spec: ChildSpec, exc: BaseException) -> result.Record:
    from ..wire import exceptions  # as in _raised

    message = (
        f"the child could not unpickle the call under start method {spec.start_method!r}: "
        f"{type(exc).__name__}: {exc}. The target and its arguments must be importable "
        f"in a fresh interpreter (define them at module level in an importable module), "
        f"or use start_method='fork'."
    )
    error = ProcThreadError(message)
    error.__cause__ = exceptions.picklable(exc)
    return result.raised(exceptions.picklable(error), exceptions.format_exception(exc))


def _send(conn: Any, record: result.Record) -> None:
    _send_bytes(conn, result.encode(record))


def _send_bytes(conn: Any, data: bytes, framed: Optional[bytes] = None) -> None:
    """One frame on the result channel: an FdRef (a pipe or a memory file) or, on
    Windows, a Connection (the same framing on the wire)."""
    if isinstance(conn, FdRef):
        write_frame(conn.fd, data, framed)
    else:
        conn.send_bytes(data)
