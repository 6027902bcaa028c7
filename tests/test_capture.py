"""The child's output and result files (process.capture): framing, cut-short messages, cleanup."""

from __future__ import annotations

import os

import pytest

from pytest_procthread.process import capture as captures


def _frame(data: bytes, long_header: bool = False) -> bytes:
    if long_header:
        return (-1).to_bytes(4, "big", signed=True) + len(data).to_bytes(8, "big") + data
    return len(data).to_bytes(4, "big", signed=True) + data


def _have_memory_files() -> bool:
    fd = captures.new_memory_file("probe")
    if fd is None:
        return False
    os.close(fd)
    return True


needs_memory_files = pytest.mark.skipif(
    not _have_memory_files(), reason="no memory files (memfd) here"
)


@needs_memory_files
@pytest.mark.parametrize("long_header", [False, True])
def test_a_whole_message_is_read_back(long_header: bool) -> None:
    fd = captures.new_memory_file("result")
    assert fd is not None
    try:
        os.write(fd, _frame(b"payload" * 1000, long_header))
        assert captures.read_frame(fd) == b"payload" * 1000
    finally:
        os.close(fd)


@needs_memory_files
@pytest.mark.parametrize("cut", [0, 2, 4, 10, 100])
def test_a_message_cut_short_reads_as_none(cut: int) -> None:
    """A child that dies while writing its result leaves a partial frame: no result, never
    a garbled one."""
    fd = captures.new_memory_file("result")
    assert fd is not None
    try:
        os.write(fd, _frame(b"x" * 200)[:cut])
        assert captures.read_frame(fd) is None
    finally:
        os.close(fd)


@needs_memory_files
def test_a_memory_capture_is_reachable_by_path_and_gone_after_discard() -> None:
    capture = captures.new_capture("out", lambda: pytest.fail("no directory needed"))
    assert capture.fd is not None
    with open(capture.path, "a", encoding="utf-8") as f:  # what a spawned child does
        f.write("from the child\n")
    capture.append("a note\n")
    assert capture.read_text() == "from the child\na note\n"
    fd = capture.fd
    capture.discard()
    with pytest.raises(OSError):
        os.fstat(fd)
    capture.discard()  # idempotent


def test_without_memory_files_a_disk_file_in_the_scratch_directory(
    tmp_path: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(captures, "_MEMORY_FILES", False)
    capture = captures.new_capture("err", lambda: str(tmp_path))
    assert capture.fd is None and os.path.dirname(capture.path) == str(tmp_path)
    capture.append("text\n")
    assert capture.read_text() == "text\n"
    capture.discard()
    assert not os.path.exists(capture.path)
