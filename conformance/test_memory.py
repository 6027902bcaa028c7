"""Memory: what threads share and what processes keep to themselves."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from pytest_procthread.process import ProcessRunner
from pytest_procthread.thread import ThreadRunner

BOARD: dict[str, Any] = {"written_by": "parent"}


def _write_board() -> tuple[str, int]:
    BOARD["written_by"] = "child"
    return BOARD["written_by"], id(BOARD)


@pytest.mark.claim("threads-share-writes")
def test_threads_see_each_others_writes(
    sibling_thread: ThreadRunner, evidence: dict[str, Any]
) -> None:
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
    assert seen == 42
    assert read_id == wrote_id == id(board)  # one object, not copies
    evidence.update(thread_read=seen, same_object=read_id == wrote_id)


@pytest.mark.claim("threads-share-writes")
def test_a_child_process_write_stays_in_the_child(
    procs: ProcessRunner, evidence: dict[str, Any]
) -> None:
    BOARD["written_by"] = "parent"
    outcome = procs.run(_write_board)
    child_saw, _ = outcome.unwrap()
    assert child_saw == "child"
    assert BOARD["written_by"] == "parent"
    evidence.update(child_saw=child_saw, parent_sees=BOARD["written_by"],
                    start_method=outcome.start_method)
