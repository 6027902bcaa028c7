"""Memory: what threads share and what processes keep to themselves."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from pytest_procthread.claims.verdicts import ClaimCheck
from pytest_procthread.process import ProcessRunner
from pytest_procthread.thread import ThreadRunner

BOARD: dict[str, Any] = {"written_by": "parent"}


def _write_board() -> tuple[str, int]:
    BOARD["written_by"] = "child"
    return BOARD["written_by"], id(BOARD)


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
    BOARD["written_by"] = "parent"
    outcome = procs.run(_write_board)
    child_saw, _ = outcome.unwrap()
    assert child_saw == "child", "the child's own write did not take"
    claim.decide(
        BOARD["written_by"] == "parent",
        f"the child wrote and read back {child_saw!r}; the parent still sees "
        f"{BOARD['written_by']!r} ({outcome.start_method})",
    )
