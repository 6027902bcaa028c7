"""``wire.framing``: the one framing of results, side records and ipc messages."""

from __future__ import annotations

import os
import threading
from multiprocessing.connection import Pipe

import pytest

from pytest_procthread.wire import framing


@pytest.mark.parametrize("size", [0, 1, 255, 65536, 0x7FFFFFFF])
def test_short_headers_round_trip(size: int) -> None:
    head = framing.header(size)
    assert len(head) == 4
    assert framing.parse_header(head) == (size, 4)


@pytest.mark.parametrize("size", [0x80000000, 5 * 2**30, 2**63])
def test_long_headers_round_trip(size: int) -> None:
    head = framing.header(size)
    assert len(head) == 12
    assert framing.parse_header(head) == (size, 12)
    assert framing.parse_header(head[:11]) is None  # the length itself is incomplete


def test_an_incomplete_or_impossible_header() -> None:
    assert framing.parse_header(b"") is None
    assert framing.parse_header(b"\x00\x00\x01") is None
    with pytest.raises(ValueError, match="not a frame header"):
        framing.parse_header((-2).to_bytes(4, "big", signed=True))


def test_split_keeps_whole_frames_and_stops_at_a_cut_one() -> None:
    data = framing.frame(b"one") + framing.frame(b"") + framing.frame(b"three")
    assert framing.split(data) == [b"one", b"", b"three"]
    cut = data + framing.frame(b"four")[:-1]
    assert framing.split(cut) == [b"one", b"", b"three"]
    assert framing.split(data + b"\xff\xff\xff\xfe") == [b"one", b"", b"three"]
    assert framing.split(b"") == []


def test_first() -> None:
    assert framing.first(framing.frame(b"x" * 1000) + framing.frame(b"next")) == b"x" * 1000
    assert framing.first(framing.frame(b"abc")[:-1]) is None
    assert framing.first(b"\x00\x00") is None
    assert framing.first((-5).to_bytes(4, "big", signed=True) + b"data") is None


def test_multiprocessing_reads_our_frames_and_we_read_its() -> None:
    reader, writer = Pipe(duplex=False)
    try:
        framing.write(writer.fileno(), b"ours")
        assert reader.recv_bytes() == b"ours"
        writer.send_bytes(b"theirs")
        # A frame as multiprocessing wrote it, read with our reader.
        assert framing.first(os.read(reader.fileno(), 64)) == b"theirs"
    finally:
        reader.close()
        writer.close()


@pytest.mark.parametrize("size", [10, 16384, 16385, 300_000])
def test_write_sends_one_frame_however_large(size: int) -> None:
    """Larger than a pipe holds too: the writes go on as a reader empties the pipe."""
    read_end, write_end = os.pipe()
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    received: list[bytes] = []

    def read_all() -> None:
        while chunk := os.read(read_end, 1 << 16):
            received.append(chunk)

    reader = threading.Thread(target=read_all)
    reader.start()
    try:
        framing.write(write_end, data)
    finally:
        os.close(write_end)
        reader.join(30)
        os.close(read_end)
    assert not reader.is_alive()
    assert framing.split(b"".join(received)) == [data]


def test_a_made_frame_is_written_as_it_is() -> None:
    read_end, write_end = os.pipe()
    try:
        framing.write(write_end, b"ignored", framed=framing.frame(b"made once"))
        assert framing.first(os.read(read_end, 64)) == b"made once"
    finally:
        os.close(read_end)
        os.close(write_end)
