"""The side channel of an isolated test: what the child hands back besides its result.

The child writes each warning, each log record, each call on a recording fixture
(``record_property`` and its kind) and a failed comparison to a side file as it happens,
one framed record each, so that a crash later in the test loses none of them. The test
process reads the file once the child has ended and makes them again where pytest looks
for them: the warnings summary, the "Captured log" section, live logging, ``--log-file``,
``caplog``, the JUnit report.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import sys
import threading
import warnings
from collections.abc import Iterator
from typing import Any, Optional

import _pytest.logging

from ..child.spec import keep
from ..process.capture import Capture
from ..wire import framing

# The attributes every LogRecord has; anything else came from ``extra=``.
_RECORD_ATTRIBUTES = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


# One lock for every side file of the child (threads of a threads(n) body write at once,
# and a frame must not be cut by another): made at import, never taken in the test process,
# so a fork child finds it free and makes no object of its own.
_PUT_LOCK = threading.Lock()


class Sidecar:
    """The child's end: frames records into the side file (opened at the first record;
    nothing to tell, no file). Made in the test process under fork, so that the child
    only writes to it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.live = True
        self._fd: Optional[int] = None

    def put(self, kind: str, payload: Any) -> None:
        try:
            data = pickle.dumps((kind, payload))
        except Exception:
            return  # plain pickle cannot send it back; the test process gets the rest
        with _PUT_LOCK:
            try:
                if self._fd is None:
                    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_BINARY", 0)
                    self._fd = os.open(self.path, flags, 0o600)
                framing.write(self._fd, data)
            except OSError:
                pass

    def showwarning(
        self, message: Any, category: Any, filename: str, lineno: int,
        file: Any = None, line: Optional[str] = None,
    ) -> None:
        if not self.live:
            return
        try:
            pickle.loads(pickle.dumps((message, category)))
        except Exception:
            message, category = f"{category.__name__}: {message}", UserWarning
        self.put("warning", (message, category, str(filename), int(lineno or 0)))

    def show_message(self, msg: warnings.WarningMessage) -> None:
        self.showwarning(msg.message, msg.category, msg.filename, msg.lineno)

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.close(fd)


# -- warnings ------------------------------------------------------------------------------

def warning_sink() -> Any:
    """In the test process, as an isolated test is set up: where a warning goes now, that
    is pytest's record of the test, before any fixture enters a catcher of its own."""
    return getattr(warnings, "_showwarnmsg_impl", None)


def route_warnings(sidecar: Sidecar, sink: Any, fresh: bool) -> None:
    """In the child: warnings that would reach pytest's record of the test go to the side
    file instead. A catcher a fixture entered (``recwarn``, a fixture's own
    ``catch_warnings(record=True)``) keeps what it catches, as it would without isolation.

    ``sink`` is the test process's record (inherited under fork); ``fresh`` says the child
    is a new interpreter, with no catcher at all.
    """
    current = getattr(warnings, "_showwarnmsg_impl", None)
    keep(current, warnings.showwarning)
    if current is None or getattr(sys.flags, "context_aware_warnings", False):
        # Catchers keep their records elsewhere here; the public hook is what is left.
        warnings.showwarning = sidecar.showwarning
    elif fresh or sink is None or current == sink:
        # Below showwarning, so that catch_warnings(record=True) in the body (pytest.warns)
        # still sees its warnings first, and gives this back when it ends.
        warnings._showwarnmsg_impl = sidecar.show_message  # type: ignore[attr-defined]


def restart_recorders(values: Any) -> None:
    """In a fresh child: a warnings recorder the test process had entered (``recwarn``)
    arrives as a copy that records nothing; enter the copy here, so that it does."""
    for value in values:
        if isinstance(value, warnings.catch_warnings) and getattr(value, "_entered", False):
            value._entered = False  # type: ignore[attr-defined]
            with contextlib.suppress(Exception):
                value.__enter__()


# -- log records ---------------------------------------------------------------------------

class LogRelay(logging.Handler):
    """In the child, on the root logger: sends every record that reaches it to the side
    file, for pytest's handlers in the test process."""

    def __init__(self) -> None:
        super().__init__()
        self.sidecar: Optional[Sidecar] = None
        self.owner = 0  # the test process, where it stays silent (see relay_to_fork_child)

    def emit(self, record: logging.LogRecord) -> None:
        sidecar = self.sidecar
        if sidecar is not None and sidecar.live and os.getpid() != self.owner:
            sidecar.put("log", portable_record(record))


_relay: Optional[LogRelay] = None


@contextlib.contextmanager
def relay_to_fork_child(sidecar: Sidecar) -> Iterator[None]:
    """In the test process, around the fork of an isolated child: the relay on the root
    logger, so that the child starts with it and makes nothing (a handler made in a fork
    child costs some 60 copied pages). In the test process it relays nothing: a record
    logged there meanwhile reaches pytest's handlers as always."""
    global _relay
    if _relay is None:
        _relay = LogRelay()
    relay = _relay
    relay.sidecar, relay.owner = sidecar, os.getpid()
    logging.root.addHandler(relay)
    try:
        yield
    finally:
        logging.root.removeHandler(relay)
        relay.sidecar = None


def portable_record(record: logging.LogRecord) -> dict[str, Any]:
    """The record as plain data: the message merged with its arguments, the exception as
    text, and anything from ``extra=`` that cannot be pickled as its repr."""
    data = dict(record.__dict__)
    data["msg"] = record.getMessage()
    data["args"] = None
    if record.exc_info and not record.exc_text:
        data["exc_text"] = logging.Formatter().formatException(record.exc_info)
    data["exc_info"] = None
    for name, value in list(data.items()):
        if name in _RECORD_ATTRIBUTES and name != "msg":
            continue
        try:
            pickle.dumps(value)
        except Exception:
            data[name] = repr(value)
    return data


def _pytest_handler(handler: logging.Handler) -> bool:
    return type(handler).__module__ == _pytest.logging.__name__


def _capturing(handler: logging.Handler) -> bool:
    return isinstance(handler, _pytest.logging.LogCaptureHandler)


def log_writers() -> tuple[logging.Handler, ...]:
    """In the test process, for a fork child: pytest's handlers on the root logger that
    write out (live logging, ``--log-file``); usually none."""
    return tuple(h for h in logging.root.handlers if _pytest_handler(h) and not _capturing(h))


def relay_logs(sidecar: Sidecar, writers: tuple[logging.Handler, ...], fresh: bool) -> None:
    """In the child: records that reach the root logger go to the test process.

    A fresh child makes its relay. A fork child has it already (``relay_to_fork_child``)
    and has copies of pytest's handlers: those that keep records in memory stay
    (``caplog`` in the body reads its copy); ``writers``, which write out, go, or a
    record would be written twice, once from each side.
    """
    root = logging.root
    if fresh:
        relay = LogRelay()
        relay.sidecar = sidecar
        root.addHandler(relay)
    elif writers:
        keep(root.handlers)
        root.handlers = [h for h in root.handlers if h not in writers]


def logger_levels() -> dict[str, Any]:
    """In the test process, for a fresh child: the levels set on loggers (by ``--log-level``,
    ``caplog.set_level`` in a fixture, the test suite), and ``logging.disable``'s."""
    levels = {"": logging.root.level}
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and logger.level != logging.NOTSET:
            levels[name] = logger.level
    return {"levels": levels, "disable": logging.root.manager.disable}


def set_logger_levels(state: Optional[dict[str, Any]]) -> None:
    if not state:
        return
    for name, level in state["levels"].items():
        logger = logging.getLogger(name or None)
        if logger.level != level:  # setLevel clears every logger's cache
            logger.setLevel(level)
    if logging.root.manager.disable != state["disable"]:
        logging.disable(state["disable"])


# -- the test process's side ---------------------------------------------------------------

def read_sidecar(side: Capture) -> list[tuple[str, Any]]:
    """The records of a side file, in order; a record cut short by a crash ends the list."""
    records = []
    for frame in framing.split(side.read_bytes()):
        with contextlib.suppress(Exception):
            records.append(pickle.loads(frame))
    return records


def _handle_log(data: dict[str, Any]) -> None:
    """Give a record of the child to pytest's handlers on the root logger (the report's,
    caplog's, live logging's, the log file's), each by its own level. The child's other
    handlers have handled it there already."""
    record = logging.makeLogRecord(data)
    for handler in list(logging.getLogger().handlers):
        if _pytest_handler(handler) and record.levelno >= handler.level:
            handler.handle(record)


def replay(side: Capture, funcargs: dict[str, Any]) -> Any:
    """Make in the test process what the child recorded: the calls on the real fixtures,
    the warnings, the log records; return the failed comparison, if any."""
    comparison = None
    for kind, payload in read_sidecar(side):
        if kind == "call":
            fixture, args, kwargs = payload
            record = funcargs.get(fixture)
            if callable(record):
                record(*args, **kwargs)
        elif kind == "warning":
            with contextlib.suppress(Exception):
                warnings.warn_explicit(*payload)
        elif kind == "log":
            with contextlib.suppress(Exception):
                _handle_log(payload)
        elif kind == "comparison":
            comparison = payload
    return comparison
