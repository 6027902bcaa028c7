"""The one framing of every message between our processes.

A child's result, each record of an isolated test's side channel and each message of an
``ipc_pipe`` travel as one frame: a 4-byte big-endian signed length, then the data; data
of 2 GiB or more has -1 there, then an 8-byte unsigned length. It is the framing of
``multiprocessing.connection.Connection.send_bytes``, so a ``Connection`` at the other end
(the result pipe of a spawned child, an ipc end on Windows) reads our frames and we read
its frames.
"""

from __future__ import annotations

import os
import struct
from typing import Optional, Union

_SHORT = struct.Struct("!i")
_LONG = struct.Struct("!Q")
_SHORT_LIMIT = 0x7FFFFFFF
# Below this size a frame is written as one buffer (header and data joined); above it the
# copy that joining makes costs more than a second write.
_JOIN_LIMIT = 16384

Buffer = Union[bytes, bytearray, memoryview]


def header(size: int) -> bytes:
    """The header of a frame of ``size`` bytes of data."""
    if size > _SHORT_LIMIT:
        return _SHORT.pack(-1) + _LONG.pack(size)
    return _SHORT.pack(size)


def frame(data: bytes) -> bytes:
    """``data`` as one frame."""
    return header(len(data)) + data


def parse_header(buf: Buffer, offset: int = 0) -> Optional[tuple[int, int]]:
    """The size of the data of the frame at ``offset`` and the size of its header; None
    while the header is incomplete. ValueError for a header no frame has."""
    available = len(buf) - offset
    if available < _SHORT.size:
        return None
    (size,) = _SHORT.unpack_from(buf, offset)
    if size >= 0:
        return size, _SHORT.size
    if size != -1:
        raise ValueError(f"not a frame header: length {size}")
    if available < _SHORT.size + _LONG.size:
        return None
    (size,) = _LONG.unpack_from(buf, offset + _SHORT.size)
    return size, _SHORT.size + _LONG.size


def split(data: Buffer) -> list[bytes]:
    """The whole frames at the start of ``data``, in order. A frame cut short (its writer
    died while writing it) and anything after it are left out."""
    frames = []
    offset = 0
    while True:
        try:
            parsed = parse_header(data, offset)
        except ValueError:
            break
        if parsed is None:
            break
        size, head = parsed
        start = offset + head
        if start + size > len(data):
            break
        frames.append(bytes(data[start:start + size]))
        offset = start + size
    return frames


def first(data: Buffer) -> Optional[bytes]:
    """The data of the first frame of ``data``; None if there is no whole frame."""
    # Read once per child in the test process: no call that split() would make more.
    if len(data) < _SHORT.size:
        return None
    (size,) = _SHORT.unpack_from(data)
    start = _SHORT.size
    if size == -1 and len(data) >= _SHORT.size + _LONG.size:
        (size,) = _LONG.unpack_from(data, start)
        start += _LONG.size
    if size < 0 or len(data) < start + size:
        return None
    return bytes(data[start:start + size])


def write(fd: int, data: bytes, framed: Optional[bytes] = None) -> None:
    """Write ``data`` as one frame to the blocking descriptor ``fd``, however short the
    writes. ``framed``: the frame itself, made beforehand (a message sent often)."""
    if framed is not None:
        parts: tuple[bytes, ...] = (framed,)
    elif len(data) <= _JOIN_LIMIT:
        parts = (header(len(data)) + data,)
    else:
        parts = (header(len(data)), data)
    for part in parts:
        written = os.write(fd, part)
        if written < len(part):  # a short write, on a full pipe
            view = memoryview(part)[written:]
            while view:
                view = view[os.write(fd, view):]
