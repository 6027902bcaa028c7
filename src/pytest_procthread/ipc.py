"""A pipe between a test and an isolated child, with bounded receives and sends.

Messages are framed as every message of ours is (``wire.framing``, which is also
multiprocessing's framing). On POSIX each end drives its socket itself, non-blocking, so
that ``recv`` and ``send`` wait at most their timeout, even for a 100 MB message, and a
receive that times out in the middle of a message keeps what arrived (the next ``recv``
goes on from there). On Windows the ends are multiprocessing's Connections, where only
``recv`` is bounded.
"""

from __future__ import annotations

import errno
import multiprocessing
import os
import pickle
import select
import sys
import time
from multiprocessing.connection import Connection
from typing import Any, Optional

from .child import fdguard
from .errors import ProcThreadError
from .settings import DEFAULT_TIMEOUT, validate_timeout
from .wire import framing, pickling

_CHUNK = 1 << 20
# What one read asks for: a pipe holds 64 KiB unless enlarged, and a buffer this size
# comes from the C heap. Asking for 1 MiB made every read mmap, mremap and munmap it.
_READ_SIZE = 1 << 16
_POSIX = sys.platform != "win32"


def _rebuild_end(conn: Connection, name: str, timeout: float) -> PipeEnd:
    return PipeEnd(conn, name, timeout)


class PipeEnd:
    """One end of an :class:`IpcPipe`. Picklable into children under every start method."""

    __procthread_external__ = True

    def __init__(self, conn: Connection, name: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._conn: Optional[Connection] = conn
        self.name = name
        self.timeout = timeout
        self._inbox = bytearray()
        self._on_handover: Optional[Any] = None
        self._poller: Any = None
        if _POSIX:
            os.set_blocking(conn.fileno(), False)

    # -- pickling: hand the connection to multiprocessing, which passes the descriptor.
    def __reduce__(self) -> Any:
        from multiprocessing.connection import reduce_connection  # type: ignore[attr-defined]

        if self._inbox:
            raise ProcThreadError(
                f"{self.name} holds {len(self._inbox)} bytes of a message not yet received; "
                f"receive it before sending this end to another process"
            )
        return (_rebuild_end, (_ReducedConnection(reduce_connection(self._live())),
                               self.name, self.timeout))

    def __procthread_handed_over__(self) -> None:
        """Called by the runner once this end is in a started child."""
        if self._on_handover is not None:
            self._on_handover()

    def _live(self) -> Connection:
        if self._conn is None:
            raise OSError(errno.EBADF, f"{self.name} is closed; nothing can be sent or received")
        return self._conn

    @property
    def closed(self) -> bool:
        return self._conn is None

    def fileno(self) -> int:
        return self._live().fileno()

    def close(self) -> None:
        """Close this end; the other end then gets EOFError once it has read what was sent."""
        if self._conn is not None:
            fdguard.release(self._conn.fileno())
            self._conn.close()
            self._conn = None

    def _deadline(self, timeout: Optional[float], what: str) -> float:
        seconds = self.timeout if timeout is None else validate_timeout(timeout, what)
        return time.monotonic() + seconds

    # -- objects
    def send(self, obj: Any, timeout: Optional[float] = None) -> None:
        """Send a picklable object (cloudpickle takes lambdas and closures)."""
        data, externals = pickling.dumps(obj)
        if externals:
            raise ProcThreadError(
                f"{self.name}.send(): the message holds multiprocessing objects "
                f"({', '.join(type(e).__name__ for e in externals)}); pass those as arguments "
                f"of isolated_process.start() instead"
            )
        self.send_bytes(data, timeout)

    def recv(self, timeout: Optional[float] = None) -> Any:
        """Receive one object, waiting at most ``timeout`` seconds."""
        return pickle.loads(self.recv_bytes(timeout))

    # -- bytes
    def send_bytes(self, data: bytes, timeout: Optional[float] = None) -> None:
        """Send one message of bytes, waiting at most ``timeout`` seconds for room."""
        conn = self._live()
        if not _POSIX:
            conn.send_bytes(data)
            return
        deadline: Optional[float] = None
        header = framing.header(len(data))
        parts = ([memoryview(header + data)] if len(data) < _CHUNK
                 else [memoryview(header), memoryview(data)])
        fd = conn.fileno()
        sent = 0
        total = sum(len(p) for p in parts)
        for part in parts:
            while part:
                try:
                    n = os.write(fd, part[:_CHUNK])
                except BlockingIOError:
                    if deadline is None:
                        deadline = self._deadline(timeout, f"{self.name}.send_bytes()")
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or not select.select([], [fd], [], remaining)[1]:
                        if sent:
                            # Part of the message is in the pipe: the stream is out of step.
                            self.close()
                            state = "this end is now closed because the message was cut"
                        else:
                            state = "nothing was sent, so this end can still be used"
                        raise TimeoutError(
                            f"{self.name}.send_bytes(): the other side took only {sent} of "
                            f"{total} bytes in time (is it receiving?); {state}"
                        ) from None
                    continue
                except (BrokenPipeError, ConnectionResetError):
                    raise BrokenPipeError(
                        f"{self.name}.send_bytes(): the other end is closed (its process ended "
                        f"or closed it); the message was not delivered"
                    ) from None
                part = part[n:]
                sent += n

    def poll(self, timeout: float = 0.0) -> bool:
        """Whether a message (or EOF) can be received within ``timeout`` seconds."""
        conn = self._live()
        if not _POSIX:
            return bool(conn.poll(timeout))
        if self._complete_message() is not None:
            return True
        ready = select.select([conn.fileno()], [], [], max(0.0, timeout))[0]
        return bool(ready)

    def _complete_message(self) -> Optional[tuple[int, int]]:
        """The size of the first message in the inbox and of its header, once it is whole."""
        if not self._inbox:  # the usual case in a ping-pong: spare the call
            return None
        parsed = framing.parse_header(self._inbox)
        if parsed is None or len(self._inbox) - parsed[1] < parsed[0]:
            return None
        return parsed

    def recv_bytes(self, timeout: Optional[float] = None) -> bytes:
        """Receive one message of bytes, waiting at most ``timeout`` seconds.

        Raises TimeoutError when nothing complete arrived in time (what did arrive is
        kept), EOFError when the other end is closed.
        """
        conn = self._live()
        if not _POSIX:
            what = f"{self.name}.recv()"
            seconds = self.timeout if timeout is None else validate_timeout(timeout, what)
            if not conn.poll(seconds):
                raise TimeoutError(f"{what}: no message within {seconds:g} s")
            try:
                return conn.recv_bytes()
            except EOFError:
                raise EOFError(f"{what}: the other end was closed") from None
        limit: Optional[float] = None
        started = 0.0
        fd = conn.fileno()
        while True:
            whole = self._complete_message()
            if whole is not None:
                size, start = whole
                message = bytes(self._inbox[start:start + size])
                del self._inbox[:start + size]
                return message
            # Wait, then read. In a ping-pong the next message is rarely there yet, and a
            # read that finds nothing raises BlockingIOError: that costs more than the poll
            # (most of all on PyPy, and on CPython before 3.11).
            if limit is None:
                limit = self.timeout if timeout is None else validate_timeout(
                    timeout, f"{self.name}.recv()")
                started = time.monotonic()
                remaining = limit
            else:
                remaining = limit - (time.monotonic() - started)
            if self._poller is None:
                self._poller = select.poll()
                self._poller.register(fd, select.POLLIN)
            if remaining <= 0 or not self._poller.poll(remaining * 1000.0):
                got = f" ({len(self._inbox)} bytes of a message arrived and are kept)" \
                    if self._inbox else ""
                raise TimeoutError(
                    f"{self.name}.recv(): no complete message within {limit:g} s{got}"
                )
            try:
                chunk = os.read(fd, _READ_SIZE)
            except BlockingIOError:  # woken, and another reader took it first
                continue
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                cut = (f"; {len(self._inbox)} bytes of an unfinished message were lost with "
                       f"it" if self._inbox else "")
                raise EOFError(
                    f"{self.name}.recv(): the other end was closed (its process ended or "
                    f"closed it) before a message arrived{cut}"
                )
            self._inbox += chunk

    def __repr__(self) -> str:
        state = "closed" if self._conn is None else f"fd {self._conn.fileno()}"
        return f"<PipeEnd {self.name} {state}>"


class _ReducedConnection:
    """Carries multiprocessing's reduction of a Connection through pickling."""

    def __init__(self, reduced: Any) -> None:
        self.reduced = reduced

    def __reduce__(self) -> Any:
        return self.reduced


class IpcPipe:
    """A duplex pipe: ``parent`` stays with the test, ``child`` goes to an isolated child.

    Handing ``child`` to :meth:`ProcessRunner.start` closes the test's copy of it, so that
    the parent end sees EOF as soon as the child's process ends.
    """

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, name: str = "ipc_pipe") -> None:
        parent_conn, child_conn = multiprocessing.Pipe(duplex=True)
        self.parent = PipeEnd(parent_conn, f"{name}.parent", timeout)
        self.child = PipeEnd(child_conn, f"{name}.child", timeout)
        fdguard.keep_in_parent(parent_conn.fileno())
        self.child._on_handover = self.child.close

    def close(self) -> None:
        self.parent.close()
        self.child.close()

    def __enter__(self) -> IpcPipe:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
