"""The ``ipc_pipe`` fixture: a bounded pipe between a test and its isolated children."""

from __future__ import annotations

import errno
import hashlib
import multiprocessing
import os
import pickle
import time
from typing import Any

import psutil
import pytest

from pytest_procthread import ProcThreadError
from pytest_procthread.ipc import IpcPipe, PipeEnd
from pytest_procthread.wire import framing

# Inner runs: no cache files, and no hypothesis plugin, whose start-up costs ~0.7 s a run.
QUIET = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest")

START_METHODS = [m for m in ("fork", "forkserver", "spawn")
                 if m in multiprocessing.get_all_start_methods()]
WAIT = 20.0
BIG = 100 * 1024 * 1024


# -- targets (module level, so that every start method can import them) -----------------


def echo_objects(end: PipeEnd) -> int:
    """Echo objects until None; a callable is called with 7 and its result sent instead."""
    count = 0
    while True:
        obj = end.recv(timeout=WAIT)
        if obj is None:
            end.send(lambda x: x * 3)  # a lambda back, through cloudpickle
            return count
        count += 1
        end.send(obj(7) if callable(obj) else obj)


def echo_bytes(end: PipeEnd, times: int) -> str:
    for _ in range(times):
        end.send_bytes(end.recv_bytes(timeout=WAIT), timeout=WAIT)
    return "echoed"


def send_after_go(end: PipeEnd) -> bool:
    assert end.recv(timeout=WAIT) == "go"
    end.send("here")
    return end.poll(0)


def return_at_once(end: PipeEnd) -> str:
    return end.name


def big_round_trip(end: PipeEnd) -> str:
    data = end.recv_bytes(timeout=WAIT)
    digest = hashlib.sha256(data).hexdigest()
    assert len(data) == BIG
    end.send_bytes(data[::-1], timeout=WAIT)
    return digest


def send_one(end: PipeEnd, size: int) -> int:
    end.send_bytes(_pattern(size), timeout=WAIT)
    return size


def recv_until_eof(end: PipeEnd) -> str:
    try:
        end.recv(timeout=WAIT / 2)
    except EOFError as exc:
        return f"EOF: {exc}"
    except TimeoutError as exc:
        return f"still open: {exc}"
    return "got a message"


def _pattern(size: int) -> bytes:
    block = bytes(range(256)) * 4096  # 1 MiB, not all one byte value
    return (block * (size // len(block) + 1))[:size]


# -- in one process ----------------------------------------------------------------------


def test_ends_and_names(ipc_pipe: IpcPipe) -> None:
    assert isinstance(ipc_pipe.parent, PipeEnd)
    assert isinstance(ipc_pipe.child, PipeEnd)
    assert ipc_pipe.parent.name == "ipc_pipe.parent"
    assert ipc_pipe.child.name == "ipc_pipe.child"
    assert not ipc_pipe.parent.closed and not ipc_pipe.child.closed
    assert "ipc_pipe.parent fd" in repr(ipc_pipe.parent)


def test_both_directions_in_one_process(ipc_pipe: IpcPipe) -> None:
    ipc_pipe.parent.send({"a": [1, 2.5, "three"], "b": None})
    assert ipc_pipe.child.recv(timeout=WAIT) == {"a": [1, 2.5, "three"], "b": None}
    ipc_pipe.child.send_bytes(b"")
    ipc_pipe.child.send_bytes(b"\x00raw")
    assert ipc_pipe.parent.recv_bytes(timeout=WAIT) == b""
    assert ipc_pipe.parent.recv_bytes(timeout=WAIT) == b"\x00raw"


def test_recv_with_nothing_sent_times_out_quickly(ipc_pipe: IpcPipe) -> None:
    for end in (ipc_pipe.parent, ipc_pipe.child):
        started = time.monotonic()
        with pytest.raises(TimeoutError) as info:
            end.recv(timeout=0.2)
        elapsed = time.monotonic() - started
        assert 0.15 <= elapsed < 2.0
        assert f"{end.name}.recv()" in str(info.value)
        assert "0.2 s" in str(info.value)
    assert ipc_pipe.parent.poll(0) is False
    assert ipc_pipe.parent.poll(0.05) is False


def test_default_timeout_comes_from_the_fixture_settings(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import time, pytest

        def test_it(ipc_pipe):
            assert ipc_pipe.parent.timeout == ipc_pipe.child.timeout == 0.3
            started = time.monotonic()
            with pytest.raises(TimeoutError, match="within 0.3 s"):
                ipc_pipe.parent.recv()
            assert time.monotonic() - started < 5
        """
    )
    pytester.runpytest("--procthread-timeout=0.3", *QUIET).assert_outcomes(
        passed=1
    )


def test_timed_out_recv_keeps_the_part_that_arrived(ipc_pipe: IpcPipe) -> None:
    message = _pattern(300_000)
    # Write the wire format by hand: the header and part of the body, the rest later.
    raw = framing.frame(message)
    fd = ipc_pipe.child.fileno()
    first = 100_000
    os.write(fd, raw[:first])
    with pytest.raises(TimeoutError, match=r"bytes of a message arrived and are kept"):
        ipc_pipe.parent.recv_bytes(timeout=0.1)
    # Part of a message is not a message: poll does not claim one.
    assert ipc_pipe.parent.poll(0) is False
    rest = memoryview(raw)[first:]
    while rest:
        try:
            rest = rest[os.write(fd, rest):]
        except BlockingIOError:
            # The socket buffer is full: take some of it in, still without completing.
            with pytest.raises(TimeoutError):
                ipc_pipe.parent.recv_bytes(timeout=0.05)
    assert ipc_pipe.parent.recv_bytes(timeout=WAIT) == message
    # Nothing is left over: the next message starts clean.
    ipc_pipe.child.send("next")
    assert ipc_pipe.parent.recv(timeout=WAIT) == "next"


def test_large_message_received_through_many_timeouts(
    isolated_process: Any, ipc_pipe: IpcPipe
) -> None:
    size = 32 * 1024 * 1024
    handle = isolated_process.options(start_method=START_METHODS[0]).start(
        send_one, ipc_pipe.child, size
    )
    partial = 0
    deadline = time.monotonic() + WAIT
    while True:
        assert time.monotonic() < deadline
        try:
            data = ipc_pipe.parent.recv_bytes(timeout=0.001)
            break
        except TimeoutError as exc:
            partial += "arrived and are kept" in str(exc)
    # However many receives timed out in the middle of it, the message is whole.
    assert len(data) == size
    assert data == _pattern(size)
    assert handle.join(WAIT).value == size


def test_poll_sees_a_complete_message_already_read(ipc_pipe: IpcPipe) -> None:
    ipc_pipe.child.send_bytes(b"one")
    ipc_pipe.child.send_bytes(b"two")
    assert ipc_pipe.parent.recv_bytes(timeout=WAIT) == b"one"
    # Both messages were likely read at once; the second waits in the end's buffer.
    assert ipc_pipe.parent.poll(0) is True
    assert ipc_pipe.parent.recv_bytes(timeout=WAIT) == b"two"
    assert ipc_pipe.parent.poll(0) is False


def test_send_to_a_side_that_never_reads_times_out(ipc_pipe: IpcPipe) -> None:
    data = bytes(16 * 1024 * 1024)  # far more than a socket buffer holds
    started = time.monotonic()
    with pytest.raises(TimeoutError) as info:
        ipc_pipe.parent.send_bytes(data, timeout=0.3)
    elapsed = time.monotonic() - started
    assert 0.25 <= elapsed < 3.0
    text = str(info.value)
    assert "ipc_pipe.parent.send_bytes()" in text
    assert f"of {len(framing.frame(data))} bytes in time" in text
    # The message was cut, so the end cannot be used any more.
    assert ipc_pipe.parent.closed
    with pytest.raises(OSError, match=r"ipc_pipe\.parent is closed"):
        ipc_pipe.parent.send_bytes(b"more")


def test_send_that_timed_out_before_sending_anything_keeps_the_end(ipc_pipe: IpcPipe) -> None:
    # Small messages nobody reads fill the socket buffer; the one that finds no room at
    # all was not cut, so the stream is still in step and the end stays open.
    sent = 0
    with pytest.raises(TimeoutError) as info:
        for sent in range(1, 1_000_000):
            ipc_pipe.child.send_bytes(sent.to_bytes(4, "big"), timeout=0.05)
    assert "took only 0 of 8 bytes" in str(info.value)
    assert "can still be used" in str(info.value)
    assert not ipc_pipe.child.closed
    assert ipc_pipe.parent.recv_bytes(timeout=WAIT) == (1).to_bytes(4, "big")
    ipc_pipe.child.send_bytes(b"after", timeout=WAIT)
    for number in range(2, sent):
        assert ipc_pipe.parent.recv_bytes(timeout=WAIT) == number.to_bytes(4, "big")
    assert ipc_pipe.parent.recv_bytes(timeout=WAIT) == b"after"


def test_closed_end_raises_os_error_naming_it(ipc_pipe: IpcPipe) -> None:
    ipc_pipe.parent.close()
    ipc_pipe.parent.close()  # twice is harmless
    assert ipc_pipe.parent.closed
    assert "closed" in repr(ipc_pipe.parent)
    calls: list[Any] = [
        lambda: ipc_pipe.parent.send(1),
        lambda: ipc_pipe.parent.send_bytes(b"x"),
        lambda: ipc_pipe.parent.recv(),
        lambda: ipc_pipe.parent.recv_bytes(timeout=1),
        lambda: ipc_pipe.parent.poll(),
        lambda: ipc_pipe.parent.fileno(),
    ]
    for call in calls:
        with pytest.raises(OSError) as info:
            call()
        assert info.value.errno == errno.EBADF
        assert "ipc_pipe.parent is closed" in str(info.value)
    # The other end sees the close as EOF, with a message that says so.
    with pytest.raises(EOFError, match=r"ipc_pipe.child.recv\(\): the other end was closed"):
        ipc_pipe.child.recv(timeout=WAIT)
    with pytest.raises(BrokenPipeError, match=r"ipc_pipe\.child\.send_bytes"):
        ipc_pipe.child.send_bytes(b"x" * 1000, timeout=WAIT)


def test_eof_in_the_middle_of_a_message_says_what_was_lost(ipc_pipe: IpcPipe) -> None:
    # The count is of bytes on the wire: the 4-byte header and 10 bytes of the body.
    os.write(ipc_pipe.child.fileno(), framing.header(1000) + b"x" * 10)
    ipc_pipe.child.close()
    with pytest.raises(EOFError, match="14 bytes of an unfinished message were lost"):
        ipc_pipe.parent.recv_bytes(timeout=WAIT)


def test_multiprocessing_objects_cannot_be_sent(ipc_pipe: IpcPipe) -> None:
    a, b = multiprocessing.Pipe()
    try:
        with pytest.raises(ProcThreadError, match="multiprocessing objects"):
            ipc_pipe.parent.send({"conn": a})
    finally:
        a.close()
        b.close()


def test_an_end_holding_part_of_a_message_cannot_be_handed_over(ipc_pipe: IpcPipe) -> None:
    os.write(ipc_pipe.parent.fileno(), framing.header(50) + b"12345")
    with pytest.raises(TimeoutError):
        ipc_pipe.child.recv_bytes(timeout=0.05)
    with pytest.raises(ProcThreadError, match="holds 9 bytes of a message not yet received"):
        pickle.dumps(ipc_pipe.child)


def test_fixture_closes_both_ends_at_teardown(pytester: pytest.Pytester) -> None:
    class Keep:
        def __init__(self) -> None:
            self.pipes: list[IpcPipe] = []

        @pytest.fixture
        def keep(self) -> Any:
            return self.pipes.append

    keeper = Keep()
    pytester.makepyfile(
        """
        def test_open(ipc_pipe, keep):
            keep(ipc_pipe)
            ipc_pipe.parent.send("x")
            assert ipc_pipe.child.recv(timeout=10) == "x"

        def test_fails_with_pipe(ipc_pipe, keep):
            keep(ipc_pipe)
            assert False, "failing on purpose"
        """
    )
    fds_before = psutil.Process().num_fds()
    result = pytester.inline_run(*QUIET, plugins=[keeper])
    result.assertoutcome(passed=1, failed=1)
    assert len(keeper.pipes) == 2
    for pipe in keeper.pipes:
        assert pipe.parent.closed and pipe.child.closed
    assert psutil.Process().num_fds() <= fds_before


def test_ipc_pipe_used_directly_as_a_context_manager() -> None:
    with IpcPipe(timeout=WAIT, name="mine") as pipe:
        assert pipe.parent.name == "mine.parent"
        pipe.child.send(3)
        assert pipe.parent.recv() == 3
    assert pipe.parent.closed and pipe.child.closed


# -- with an isolated child, under every start method ------------------------------------

start_methods = pytest.mark.parametrize("method", START_METHODS)


@start_methods
def test_objects_both_ways_including_lambdas(
    isolated_process: Any, ipc_pipe: IpcPipe, method: str
) -> None:
    handle = isolated_process.options(start_method=method).start(echo_objects, ipc_pipe.child)
    # Handing the child end over closes the test's copy of it.
    assert ipc_pipe.child.closed
    parent = ipc_pipe.parent
    for obj in ({"k": (1, 2)}, [b"bytes", 3.5], "text"):
        parent.send(obj)
        assert parent.recv(timeout=WAIT) == obj
    offset = 5
    parent.send(lambda x: x + offset)  # a closure: only cloudpickle can send it
    assert parent.recv(timeout=WAIT) == 12
    parent.send(None)
    tripled = parent.recv(timeout=WAIT)
    assert tripled(4) == 12
    outcome = handle.join(WAIT)
    assert outcome.value == 4, outcome.describe()
    assert outcome.start_method == method


@start_methods
def test_bytes_and_poll(isolated_process: Any, ipc_pipe: IpcPipe, method: str) -> None:
    runner = isolated_process.options(start_method=method)
    handle = runner.start(echo_bytes, ipc_pipe.child, 2)
    for data in (b"", b"\xff" * 70_000):
        ipc_pipe.parent.send_bytes(data)
        assert ipc_pipe.parent.poll(WAIT) is True
        assert ipc_pipe.parent.recv_bytes(timeout=WAIT) == data
    assert handle.join(WAIT).value == "echoed"

    with IpcPipe(timeout=WAIT) as pipe:
        handle = runner.start(send_after_go, pipe.child)
        assert pipe.parent.poll(0) is False
        pipe.parent.send("go")
        assert pipe.parent.poll(WAIT) is True
        assert pipe.parent.recv(timeout=WAIT) == "here"
        assert handle.join(WAIT).value is False


@start_methods
def test_recv_after_the_child_exited_is_eof(
    isolated_process: Any, ipc_pipe: IpcPipe, method: str
) -> None:
    outcome = isolated_process.options(start_method=method).run(return_at_once, ipc_pipe.child)
    assert outcome.value == "ipc_pipe.child"
    assert ipc_pipe.child.closed
    started = time.monotonic()
    with pytest.raises(EOFError) as info:
        ipc_pipe.parent.recv(timeout=WAIT)
    assert time.monotonic() - started < WAIT / 2
    assert "ipc_pipe.parent.recv(): the other end was closed (its process ended" in str(info.value)


@start_methods
def test_child_sees_eof_when_the_parent_closes_its_end(
    isolated_process: Any, ipc_pipe: IpcPipe, method: str
) -> None:
    # Under fork the child inherits every descriptor; the parent end must not be among
    # those it keeps open, or it would wait for itself.
    handle = isolated_process.options(start_method=method).start(recv_until_eof, ipc_pipe.child)
    ipc_pipe.parent.close()
    outcome = handle.join(WAIT)
    assert outcome.value.startswith("EOF: ipc_pipe.child.recv(): the other end was closed"), (
        outcome.describe()
    )


@start_methods
def test_hundred_megabytes_both_ways(
    isolated_process: Any, ipc_pipe: IpcPipe, method: str
) -> None:
    data = _pattern(BIG)
    handle = isolated_process.options(start_method=method).start(big_round_trip, ipc_pipe.child)
    ipc_pipe.parent.send_bytes(data, timeout=WAIT)
    back = ipc_pipe.parent.recv_bytes(timeout=WAIT)
    assert len(back) == BIG
    assert back == data[::-1]
    outcome = handle.join(WAIT)
    assert outcome.value == hashlib.sha256(data).hexdigest(), outcome.describe()
