"""Memory: what threads share and what processes keep to themselves.

What a child runs is defined inside the check: it then travels by value (cloudpickle), so
that a spawn or forkserver child need not import this module, and pytest with it.
"""

from __future__ import annotations

import mmap
import threading
from typing import Any

import pytest

from pytest_procthread.claims.verdicts import ClaimCheck
from pytest_procthread.process import ProcessRunner
from pytest_procthread.thread import ThreadRunner

WAIT = 30.0
BOARD: dict[str, Any] = {"written_by": "parent"}
BUFFER_SIZE = 8 << 20  # large enough that a copy of it shows in the child's memory
PAGE = mmap.PAGESIZE
PARENT_BYTE = 0xAB
CHILD_BYTE = 0x01


@pytest.mark.claim("threads-share-writes")
def test_threads_see_each_others_writes(sibling_thread: ThreadRunner, claim: ClaimCheck) -> None:
    board: dict[str, Any] = {}
    written = threading.Event()

    def writer() -> int:
        board["value"] = 42
        written.set()
        return id(board)

    def reader() -> tuple[Any, int]:
        if not written.wait(10):
            raise TimeoutError("the writer never wrote")
        return board.get("value"), id(board)

    reading = sibling_thread.start(reader)
    writing = sibling_thread.start(writer)
    wrote_id = writing.join().unwrap()
    seen, read_id = reading.join().unwrap()
    same_object = read_id == wrote_id == id(board)  # one object, not copies
    claim.decide(
        seen == 42 and same_object,
        f"the reading thread saw {seen!r}; same object in both threads: {same_object}",
    )


@pytest.mark.claim("process-memory-isolated")
def test_a_child_process_write_stays_in_the_child(procs: ProcessRunner, claim: ClaimCheck) -> None:
    """The child writes to a module global, to the object it was given, and to every page
    of a large buffer that under fork it shares with the parent until it writes
    (copy-on-write); the parent sees none of it."""

    def write_everywhere(given: dict[str, Any]) -> dict[str, Any]:
        import psutil

        buffer = given["buffer"]
        found_parents_bytes = buffer[0] == PARENT_BYTE and buffer[-1] == PARENT_BYTE
        private_before = psutil.Process().memory_full_info().uss
        buffer[::PAGE] = bytes([CHILD_BYTE]) * len(range(0, len(buffer), PAGE))
        private_after = psutil.Process().memory_full_info().uss
        given["items"].append("child")
        given["items"][0] = "overwritten by the child"
        # Under fork this is the module's own global, inherited; otherwise the copy of it
        # that travelled with this function.
        BOARD["written_by"] = "child"
        return {
            "board": BOARD["written_by"],
            "items": list(given["items"]),
            "pages_written": buffer.count(CHILD_BYTE),
            "found_parents_bytes": found_parents_bytes,
            "private_growth": private_after - private_before,
        }

    BOARD["written_by"] = "parent"
    buffer = bytearray([PARENT_BYTE]) * BUFFER_SIZE
    given = {"items": ["parent's first", "parent's second"], "buffer": buffer}
    outcome = procs.run(write_everywhere, given)
    child = outcome.unwrap()
    pages = len(range(0, BUFFER_SIZE, PAGE))
    assert child["pages_written"] == pages, f"the child's own writes did not take: {child}"
    assert child["items"][0] == "overwritten by the child", child
    assert child["board"] == "child", child
    board_kept = BOARD["written_by"] == "parent"
    items_kept = given["items"] == ["parent's first", "parent's second"]
    buffer_kept = buffer.count(PARENT_BYTE) == BUFFER_SIZE
    # Under fork the buffer is the parent's own pages until the child writes them, so the
    # child's private memory grows by about the buffer's size as it writes (copy-on-write);
    # otherwise it arrived as a pickled copy, private from the start.
    growth = child["private_growth"] / (1 << 20)
    how = (
        f"inherited at fork; the child's private memory grew by {growth:.1f} MiB as it wrote"
        if outcome.start_method == "fork" else "sent to the child as a pickled copy"
    )
    claim.decide(
        board_kept and items_kept and buffer_kept,
        f"the child rewrote a global, the object it was given and all {pages} pages of an "
        f"{BUFFER_SIZE >> 20} MiB buffer ({how}); the parent's are unchanged: global "
        f"{board_kept}, object {items_kept}, buffer {buffer_kept} ({outcome.start_method})",
        child=child, parent_board=BOARD["written_by"], parent_items=given["items"],
    )


@pytest.mark.claim("faulty-thread-corrupts-shared-data")
def test_a_thread_that_dies_half_way_leaves_shared_data_broken(
    sibling_thread: ThreadRunner, claim: ClaimCheck
) -> None:
    """Two accounts always hold 100 between them. A transfer takes from one, then gives to
    the other; the faulty thread dies between the two steps, inside the very lock that
    guards them. Threads that were waiting for the lock then read the accounts."""
    total = 100
    accounts = {"savings": 60, "checking": 40}
    lock = threading.Lock()
    half_way = threading.Event()
    fees: dict[str, int] = {}  # the bug: the transfer's fee was never filled in

    def faulty_transfer(amount: int) -> None:
        with lock:
            accounts["savings"] -= amount
            half_way.set()
            accounts["checking"] += amount - fees["transfer"]  # KeyError: dies here

    def read_total() -> int:
        if not half_way.wait(WAIT):
            raise TimeoutError("the transfer never started")
        with lock:  # the lock was released as the faulty thread died, not held forever
            return accounts["savings"] + accounts["checking"]

    readers = [sibling_thread.start(read_total) for _ in range(2)]
    faulty = sibling_thread.start(faulty_transfer, 25).join()
    seen = [reader.join().unwrap() for reader in readers]
    error = faulty.exception
    assert error is not None, "the faulty thread did not die"
    broken = [value for value in seen if value != total]
    claim.decide(
        len(broken) == len(seen),
        f"the faulty thread died of {type(error).__name__} between the two steps; "
        f"{len(broken)} of {len(seen)} threads then read a total of {seen} (the invariant is "
        f"{total})",
        accounts_after=dict(accounts), error=repr(error),
    )
