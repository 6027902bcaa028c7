"""Communication: how processes exchange data (IPC) and how threads do (shared memory)."""

from __future__ import annotations

import os
import queue
import socket
import threading
import time
from multiprocessing import shared_memory
from typing import TYPE_CHECKING, Any, Callable, Optional

import pytest

from pytest_procthread.claims.pinning import affinity, pin

if TYPE_CHECKING:  # children started by spawn import this module: keep it light
    from pytest_procthread.claims.verdicts import ClaimCheck
    from pytest_procthread.ipc import IpcPipe, PipeEnd
    from pytest_procthread.process import ProcessRunner
    from pytest_procthread.thread import ThreadRunner

WAIT = 30.0  # bound of every wait in this module, in seconds
MECHANISMS = ("pipe", "socket", "queue", "shared-memory")
HANDOVER_SIZE = 50 << 20  # the object a thread hands to another
SMALL_MESSAGE = b"ping"
ROUND_TRIPS = 50  # small messages per sample
LARGE_PAYLOAD = 16 << 20  # the buffer handed over in the large-payload comparison


def _payload(nonce: bytes) -> bytes:
    """What a child sends: the parent's nonce and the child's own pid, so it cannot be faked."""
    return nonce + b" from pid " + str(os.getpid()).encode()


# -- in the child: write the payload into one IPC mechanism ---------------------------------
def _through_pipe(nonce: bytes, end: PipeEnd) -> None:
    end.send_bytes(_payload(nonce), timeout=WAIT)


def _through_socket(nonce: bytes, sock: socket.socket) -> None:
    sock.settimeout(WAIT)
    sock.sendall(_payload(nonce))
    sock.close()


def _through_queue(nonce: bytes, messages: Any) -> None:
    messages.put(_payload(nonce))
    messages.close()
    messages.join_thread()  # the feeder thread has written it into the queue's pipe


def _through_shared_memory(nonce: bytes, name: str) -> None:
    segment = shared_memory.SharedMemory(name=name)
    try:
        data = _payload(nonce)
        view = segment.buf
        assert view is not None, "the segment is not mapped"
        view[: len(data)] = data
        del view  # a live view would keep close() from unmapping
    finally:
        segment.close()


def _over_pipe(procs: ProcessRunner, pipe: IpcPipe, nonce: bytes) -> tuple[int, bytes]:
    child = procs.start(_through_pipe, nonce, pipe.child)
    received = pipe.parent.recv_bytes(timeout=WAIT)
    child.join().unwrap()
    return child.pid, received


def _over_socket(procs: ProcessRunner, pipe: IpcPipe, nonce: bytes) -> tuple[int, bytes]:
    mine, theirs = socket.socketpair()
    with mine:
        try:
            child = procs.start(_through_socket, nonce, theirs)
        finally:
            theirs.close()  # the child has its own copy; EOF comes when it closes that
        mine.settimeout(WAIT)
        chunks = []
        while True:
            chunk = mine.recv(1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
        child.join().unwrap()
    return child.pid, b"".join(chunks)


def _over_queue(procs: ProcessRunner, pipe: IpcPipe, nonce: bytes) -> tuple[int, bytes]:
    messages = procs.context.Queue()
    try:
        child = procs.start(_through_queue, nonce, messages)
        received = messages.get(timeout=WAIT)
        child.join().unwrap()
    finally:
        messages.close()
        messages.join_thread()
    return child.pid, received


def _over_shared_memory(procs: ProcessRunner, pipe: IpcPipe, nonce: bytes) -> tuple[int, bytes]:
    segment = shared_memory.SharedMemory(create=True, size=256)
    try:
        view = segment.buf
        assert view is not None, "the segment is not mapped"
        view[:] = bytes(len(view))
        child = procs.start(_through_shared_memory, nonce, segment.name)
        child.join().unwrap()  # the child has written and detached
        received = bytes(view).rstrip(b"\0")
        del view  # a live view would keep close() from unmapping
    finally:
        segment.close()
        segment.unlink()
    return child.pid, received


RECEIVERS: dict[str, Callable[[ProcessRunner, IpcPipe, bytes], tuple[int, bytes]]] = {
    "pipe": _over_pipe,
    "socket": _over_socket,
    "queue": _over_queue,
    "shared-memory": _over_shared_memory,
}


@pytest.mark.claim("processes-communicate-through-ipc")
@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_a_child_sends_data_to_its_parent_through_ipc(
    mechanism: str, procs: ProcessRunner, ipc_pipe: IpcPipe, claim: ClaimCheck
) -> None:
    nonce = os.urandom(8).hex().encode()
    pid, received = RECEIVERS[mechanism](procs, ipc_pipe, nonce)
    expected = nonce + b" from pid " + str(pid).encode()
    claim.decide(
        received == expected,
        f"{mechanism}: the parent received {received[:48]!r} "
        f"({'exactly' if received == expected else 'not'} what child {pid} wrote, "
        f"{procs.start_method})",
        mechanism=mechanism, child_pid=pid, expected=expected.decode(),
        received=received.decode(errors="backslashreplace"),
    )


# -- threads ---------------------------------------------------------------------------------
@pytest.mark.claim("threads-communicate-through-memory")
def test_a_thread_hands_another_a_large_object_by_reference(
    sibling_thread: ThreadRunner, claim: ClaimCheck
) -> None:
    mailbox: queue.Queue[bytearray] = queue.Queue()
    touched = threading.Event()

    def receiver() -> tuple[int, float]:
        buffer = mailbox.get(timeout=WAIT)
        got_at = time.perf_counter()
        buffer[0], buffer[len(buffer) // 2], buffer[-1] = 1, 2, 3  # written in place
        touched.set()
        return id(buffer), got_at

    big = bytearray(HANDOVER_SIZE)
    thread = sibling_thread.start(receiver)
    handed_at = time.perf_counter()
    mailbox.put(big)
    assert touched.wait(WAIT), "the receiving thread never got the object"
    seen_by_sender = (big[0], big[len(big) // 2], big[-1])
    received_id, got_at = thread.join().unwrap()
    # Tiny objects through the same queue: the hand-over of 50 MB should cost no more.
    small_ms = _median_handover(sibling_thread, b"x") * 1e3
    big_ms = (got_at - handed_at) * 1e3
    start = time.perf_counter()
    bytes(big)
    copy_ms = (time.perf_counter() - start) * 1e3  # what one copy of it would cost
    same_object = received_id == id(big)
    claim.decide(
        same_object and seen_by_sender == (1, 2, 3),
        f"the receiving thread got the very same {HANDOVER_SIZE >> 20} MB object "
        f"(same id: {same_object}) and its in-place writes {seen_by_sender} were seen by the "
        f"sender; hand-over took {big_ms:.3g} ms (a tiny object: {small_ms:.3g} ms, one copy "
        f"of the buffer: {copy_ms:.3g} ms)",
        same_id=same_object, writes_seen_by_sender=list(seen_by_sender),
        handover_ms=big_ms, tiny_handover_ms=small_ms, one_copy_ms=copy_ms,
    )


def _median_handover(sibling_thread: ThreadRunner, obj: Any, times: int = 5) -> float:
    mailbox: queue.Queue[Any] = queue.Queue()
    got: queue.Queue[float] = queue.Queue()

    def receiver() -> None:
        for _ in range(times):
            mailbox.get(timeout=WAIT)
            got.put(time.perf_counter())

    thread = sibling_thread.start(receiver)
    delays = []
    for _ in range(times):
        start = time.perf_counter()
        mailbox.put(obj)
        delays.append(got.get(timeout=WAIT) - start)
    thread.join().unwrap()
    return sorted(delays)[times // 2]


# -- speed: small messages and large payloads ------------------------------------------------
def _echo_pipe(end: PipeEnd, cpus: Optional[set[int]]) -> int:
    """In the child: send back every message until an empty one."""
    pin(cpus)
    count = 0
    while True:
        message = end.recv_bytes(timeout=WAIT)
        if not message:
            return count
        end.send_bytes(message, timeout=WAIT)
        count += 1


def _echo_queue(
    inbox: queue.Queue[bytes], outbox: queue.Queue[bytes], cpus: Optional[set[int]]
) -> int:
    pin(cpus)
    count = 0
    while True:
        message = inbox.get(timeout=WAIT)
        if not message:
            return count
        outbox.put(message)
        count += 1


def _ack_pipe(end: PipeEnd) -> int:
    """In the child: receive each payload whole and answer with its length."""
    count = 0
    while True:
        payload = end.recv_bytes(timeout=WAIT)
        if payload == b"stop":
            return count
        end.send_bytes(str(len(payload)).encode(), timeout=WAIT)
        count += 1


def _ack_queue(inbox: queue.Queue[Any], outbox: queue.Queue[bytes]) -> int:
    count = 0
    while True:
        payload = inbox.get(timeout=WAIT)
        if payload is None:
            return count
        outbox.put(str(len(payload)).encode())
        count += 1


@pytest.mark.claim("thread-messages-faster-small")
def test_small_message_round_trip_thread_vs_process(
    isolated_process: ProcessRunner, sibling_thread: ThreadRunner, ipc_pipe: IpcPipe,
    claim: ClaimCheck,
) -> None:
    """Ping-pong of a 4-byte message: with a child over ipc_pipe, with a thread over queue.Queue.

    All ends are kept on one CPU (where the OS allows it), so the figure is the cost of the
    exchange itself, not of waking another, idle CPU: on a virtual machine that alone takes
    tens of microseconds, whichever mechanism is used, and it varies with the load.
    """
    mine = affinity()
    cpus = {max(mine)} if mine else None
    child = isolated_process.start(_echo_pipe, ipc_pipe.child, cpus)
    inbox: queue.Queue[bytes] = queue.Queue()
    outbox: queue.Queue[bytes] = queue.Queue()
    thread = sibling_thread.start(_echo_queue, inbox, outbox, cpus)
    parent = ipc_pipe.parent

    def with_process() -> float:
        start = time.perf_counter()
        for _ in range(ROUND_TRIPS):
            parent.send_bytes(SMALL_MESSAGE, timeout=WAIT)
            parent.recv_bytes(timeout=WAIT)
        return (time.perf_counter() - start) / ROUND_TRIPS

    def with_thread() -> float:
        start = time.perf_counter()
        for _ in range(ROUND_TRIPS):
            inbox.put(SMALL_MESSAGE)
            outbox.get(timeout=WAIT)
        return (time.perf_counter() - start) / ROUND_TRIPS

    pin(cpus)
    try:
        claim.compare(
            with_process, with_thread,
            a_label="child process round trip (ipc_pipe)",
            b_label="thread round trip (queue.Queue)",
            budget=0.5, min_pairs=6,
            message_bytes=len(SMALL_MESSAGE), round_trips_per_sample=ROUND_TRIPS,
            pinned_to_cpus=sorted(cpus) if cpus else "not pinned (no per-thread affinity)",
            start_method=isolated_process.start_method,
        )
    finally:
        if mine is not None:
            pin(mine)
        parent.send_bytes(b"", timeout=WAIT)
        inbox.put(b"")
        child.join(timeout=WAIT)
        thread.join(timeout=WAIT)


@pytest.mark.claim("thread-messages-faster-large")
def test_large_payload_handover_thread_vs_process(
    isolated_process: ProcessRunner, sibling_thread: ThreadRunner, ipc_pipe: IpcPipe,
    claim: ClaimCheck,
) -> None:
    child = isolated_process.start(_ack_pipe, ipc_pipe.child)
    inbox: queue.Queue[Any] = queue.Queue()
    outbox: queue.Queue[bytes] = queue.Queue()
    thread = sibling_thread.start(_ack_queue, inbox, outbox)
    parent = ipc_pipe.parent
    payload = os.urandom(1 << 20) * (LARGE_PAYLOAD >> 20)
    expected = str(len(payload)).encode()

    def to_process() -> float:
        start = time.perf_counter()
        parent.send_bytes(payload, timeout=WAIT)
        ack = parent.recv_bytes(timeout=WAIT)
        elapsed = time.perf_counter() - start
        assert ack == expected, f"the child got {ack!r} bytes, not {expected!r}"
        return elapsed

    def to_thread() -> float:
        start = time.perf_counter()
        inbox.put(payload)
        ack = outbox.get(timeout=WAIT)
        elapsed = time.perf_counter() - start
        assert ack == expected, f"the thread got {ack!r} bytes, not {expected!r}"
        return elapsed

    try:
        claim.compare(
            to_process, to_thread,
            a_label=f"{LARGE_PAYLOAD >> 20} MB to a child (ipc_pipe.send_bytes)",
            b_label="to a thread (queue.Queue, by reference)",
            budget=0.5, min_pairs=6,
            payload_bytes=len(payload), start_method=isolated_process.start_method,
        )
    finally:
        parent.send_bytes(b"stop", timeout=WAIT)
        inbox.put(None)
        child.join(timeout=WAIT)
        thread.join(timeout=WAIT)
