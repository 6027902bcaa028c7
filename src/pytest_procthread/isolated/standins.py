"""Stand-ins, in an isolated child, for the fixtures that cannot work there as they are.

``record_property`` and its kind record calls that the test process makes again on the
real fixture; ``capsys``/``capfd`` and their binary kinds read the child's own fd 1 and 2;
in a fresh child (spawn, forkserver) ``caplog`` keeps the child's records, and
``monkeypatch`` is a new one. Each is built in the test process and sent to the child.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NamedTuple, Optional, Union

import pytest

from ..child.spec import current_output_paths

if TYPE_CHECKING:
    from .sidecar import Sidecar

# Fixtures whose value is a callable that records data for the report: in the child a
# stand-in records the calls, and the test process makes them again on the real one.
RECORDING_FIXTURES = ("record_property", "record_xml_attribute", "record_testsuite_property")
# Capture fixtures: in the child a stand-in reads the child's own fd 1 and 2.
CAPTURE_FIXTURES = {"capsys": False, "capfd": False, "capsysbinary": True, "capfdbinary": True}


class RecordedCalls:
    """In the child, stands in for ``record_property`` and its kind: keeps the calls, which
    the test process then makes on the real fixture."""

    def __init__(self, fixture: str) -> None:
        self.fixture = fixture
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        self.sink: Optional[Sidecar] = None  # in the child: where each call is written

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        self.calls.append((args, kwargs))
        if self.sink is not None:
            self.sink.put("call", (self.fixture, args, kwargs))

    def __repr__(self) -> str:
        return f"<{self.fixture} of an isolated test: {len(self.calls)} calls recorded>"


class CaptureResult(NamedTuple):
    out: Any
    err: Any


class ChildCapture:
    """In the child, stands in for ``capsys``/``capfd``: ``readouterr()`` returns what the
    child wrote to fd 1 and 2 since the last call, and takes it out of the test's captured
    output, as the real fixtures do. Both kinds capture at the descriptor level here."""

    def __init__(self, fixture: str, binary: bool) -> None:
        self.fixture = fixture
        self.binary = binary

    def readouterr(self) -> CaptureResult:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        paths = current_output_paths()
        if paths is None:
            empty: Any = b"" if self.binary else ""
            return CaptureResult(empty, empty)
        out, err = (_take_output(fd, path) for fd, path in zip((1, 2), paths))
        if self.binary:
            return CaptureResult(out, err)
        return CaptureResult(
            out.decode("utf-8", "backslashreplace"), err.decode("utf-8", "backslashreplace")
        )

    @contextlib.contextmanager
    def disabled(self) -> Any:
        """Kept for compatibility; a child has no terminal, so output stays captured."""
        yield

    def __repr__(self) -> str:
        return f"<{self.fixture} of an isolated test (reads the child's fd 1 and 2)>"


def _take_output(fd: int, path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read()
        os.ftruncate(fd, 0)  # fd is in append mode: later writes start from 0 again
    except OSError:
        return b""
    return data


class ChildLogHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Keeps the records and their text, as pytest's capture handler does."""

    def __init__(self) -> None:
        super().__init__(io.StringIO())
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        super().emit(record)

    def clear(self) -> None:
        self.records.clear()
        self.stream = io.StringIO()


Level = Union[int, str]


class ChildLogCapture:
    """In a fresh child, stands in for ``caplog`` (whose value holds the test item and
    cannot travel): the same reading API, over the records made in the child's body, at
    the level and in the format of the real one. The records also reach the real ``caplog``
    in the test process, after the body (see ``sidecar``)."""

    def __init__(self, level: int, fmt: Optional[str], datefmt: Optional[str]) -> None:
        self._level = level
        self._fmt = fmt
        self._datefmt = datefmt
        self._handler: Optional[ChildLogHandler] = None

    def start(self) -> None:
        """In the child, before the body: attach to the root logger."""
        handler = ChildLogHandler()
        handler.setLevel(self._level)
        handler.setFormatter(logging.Formatter(self._fmt, self._datefmt))
        logging.getLogger().addHandler(handler)
        self._handler = handler

    @property
    def handler(self) -> ChildLogHandler:
        if self._handler is None:
            self.start()
        assert self._handler is not None
        return self._handler

    def get_records(self, when: str) -> list[logging.LogRecord]:
        """The child runs only the call phase: setup's and teardown's records are in the
        test process's ``caplog``."""
        return list(self.records) if when == "call" else []

    @property
    def text(self) -> str:
        return str(self.handler.stream.getvalue())

    @property
    def records(self) -> list[logging.LogRecord]:
        return self.handler.records

    @property
    def record_tuples(self) -> list[tuple[str, int, str]]:
        return [(r.name, r.levelno, r.getMessage()) for r in self.records]

    @property
    def messages(self) -> list[str]:
        return [r.getMessage() for r in self.records]

    def clear(self) -> None:
        self.handler.clear()

    def set_level(self, level: Level, logger: Optional[str] = None) -> None:
        """As ``caplog.set_level``; nothing to restore, the child ends with the body."""
        logger_obj = logging.getLogger(logger)
        logger_obj.setLevel(level)
        self.handler.setLevel(level)
        _enable(level, logger_obj)

    @contextlib.contextmanager
    def at_level(self, level: Level, logger: Optional[str] = None) -> Iterator[None]:
        logger_obj = logging.getLogger(logger)
        saved = logger_obj.level, self.handler.level, logger_obj.manager.disable
        logger_obj.setLevel(level)
        self.handler.setLevel(level)
        _enable(level, logger_obj)
        try:
            yield
        finally:
            logger_obj.setLevel(saved[0])
            self.handler.setLevel(saved[1])
            logging.disable(saved[2])

    @contextlib.contextmanager
    def filtering(self, filter_: logging.Filter) -> Iterator[None]:
        if filter_ in self.handler.filters:
            yield
            return
        self.handler.addFilter(filter_)
        try:
            yield
        finally:
            self.handler.removeFilter(filter_)

    def __repr__(self) -> str:
        return "<caplog of an isolated test (records made in the child)>"


def _enable(level: Level, logger: logging.Logger) -> None:
    """What ``caplog`` does when ``logging.disable`` hides the level asked for."""
    number = logging.getLevelName(level) if isinstance(level, str) else level
    if not isinstance(number, int):
        logging.disable(logging.NOTSET)
    elif not logger.isEnabledFor(number):
        logging.disable(max(number - 10, logging.NOTSET))


def _log_capture(caplog: Any) -> ChildLogCapture:
    handler = getattr(caplog, "handler", None)
    formatter = getattr(handler, "formatter", None)
    return ChildLogCapture(
        level=getattr(handler, "level", logging.NOTSET),
        fmt=getattr(formatter, "_fmt", None),
        datefmt=getattr(formatter, "datefmt", None),
    )


def stand_ins(kwargs: dict[str, Any], inherited: bool) -> dict[str, Any]:
    """``kwargs`` with the stand-ins in place of the fixtures that need one.

    ``inherited`` is True under fork, where the child gets a copy of every value (and
    ``caplog``'s copy works there). Elsewhere ``monkeypatch`` becomes a fresh one: what the
    test process patched does not exist in a fresh child anyway, and the body's own patches
    die with the child.
    """
    swapped = dict(kwargs)
    for name in kwargs:
        if name in RECORDING_FIXTURES:
            swapped[name] = RecordedCalls(name)
        elif name in CAPTURE_FIXTURES:
            swapped[name] = ChildCapture(name, CAPTURE_FIXTURES[name])
        elif inherited:
            continue
        elif name == "monkeypatch":
            swapped[name] = pytest.MonkeyPatch()
        elif name == "caplog" and isinstance(kwargs[name], pytest.LogCaptureFixture):
            swapped[name] = _log_capture(kwargs[name])
    return swapped
