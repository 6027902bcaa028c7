"""Fault isolation: what a crash in a thread or in a process takes down with it."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from pytest_procthread import faults
from pytest_procthread.ipc import IpcPipe, PipeEnd
from pytest_procthread.process import ProcessRunner

WORKERS = 3
PROGRESS_MARK = 10_000


def _threads_at_work(counters: Any, end: PipeEnd, fault: str) -> str:
    """In the child: WORKERS threads count in shared memory; then one thread faults."""
    progressed = [threading.Event() for _ in range(WORKERS)]

    def work(i: int) -> None:
        while True:
            counters[i] += 1
            if counters[i] == PROGRESS_MARK:
                progressed[i].set()

    for i in range(WORKERS):
        threading.Thread(target=work, args=(i,), daemon=True).start()
    if not all(e.wait(20) for e in progressed):
        raise TimeoutError("the worker threads did not get going")
    end.send("working")
    end.recv(timeout=20)  # the go-ahead to fault
    before = list(counters)
    faulty = threading.Thread(
        target=faults.segfault if fault == "segfault" else faults.unhandled_exception_in_thread
    )
    faulty.start()
    faulty.join(20)
    # Only reached if the fault spared the process: every worker must still be counting.
    for i in range(WORKERS):
        while counters[i] <= before[i] + PROGRESS_MARK:
            pass
    return "the other threads kept counting"


@pytest.mark.claim("thread-crash-kills-process")
def test_native_crash_in_a_thread_stops_every_thread(
    procs: ProcessRunner, ipc_pipe: IpcPipe, evidence: dict[str, Any]
) -> None:
    counters = procs.context.RawArray("q", WORKERS)
    child = procs.start(_threads_at_work, counters, ipc_pipe.child, "segfault")
    assert ipc_pipe.parent.recv(timeout=30) == "working"
    at_fault = list(counters)
    ipc_pipe.parent.send("go")
    outcome = child.join(timeout=30)
    after_death = list(counters)
    # The workers were counting when the thread faulted...
    assert all(c >= PROGRESS_MARK for c in at_fault), at_fault
    # ...the whole process died of the fault, not of a Python error...
    assert outcome.crashed, outcome.describe() + "\n" + outcome.stderr
    assert not outcome.returned
    # ...and no worker counted on: a fresh process, started after the death, reads the
    # very same counts.
    assert not child.is_alive()
    read_later = procs.run(list, counters).unwrap()
    assert read_later == after_death
    evidence.update(
        outcome=outcome.describe(),
        counts_when_fault_ordered=at_fault,
        counts_at_death=after_death,
        counts_read_later=read_later,
    )
    if outcome.signal is not None:
        assert outcome.signal.name == "SIGSEGV"


@pytest.mark.claim("thread-crash-kills-process")
def test_python_exception_in_a_thread_spares_the_others(
    procs: ProcessRunner, ipc_pipe: IpcPipe, evidence: dict[str, Any]
) -> None:
    """The contrast: an unhandled Python exception ends only its own thread."""
    counters = procs.context.RawArray("q", WORKERS)
    child = procs.start(_threads_at_work, counters, ipc_pipe.child, "exception")
    assert ipc_pipe.parent.recv(timeout=30) == "working"
    ipc_pipe.parent.send("go")
    outcome = child.join(timeout=30)
    assert outcome.returned, outcome.describe() + "\n" + outcome.stderr
    assert "RuntimeError" in outcome.stderr  # the faulty thread's error was reported
    evidence.update(outcome=outcome.describe(), counters_at_end=list(counters))


def _sibling(n: int, crash_seen: Any) -> int:
    partial = sum(range(n))
    if not crash_seen.wait(30):
        raise TimeoutError("the parent never said the crash happened")
    return partial + sum(range(n, 2 * n))


@pytest.mark.claim("process-crash-spares-others")
def test_crashed_process_spares_siblings_and_parent(
    procs: ProcessRunner, evidence: dict[str, Any]
) -> None:
    crash_seen = procs.context.Event()
    siblings = [procs.start(_sibling, 10_000 * (i + 1), crash_seen) for i in range(3)]
    crashed = procs.run(faults.segfault)
    assert crashed.crashed, crashed.describe()
    alive_at_crash = [s.is_alive() for s in siblings]
    crash_seen.set()
    results = [s.join(timeout=30) for s in siblings]
    assert alive_at_crash == [True, True, True]
    assert [r.value for r in results] == [sum(range(20_000 * (i + 1))) for i in range(3)], [
        r.describe() for r in results
    ]
    # The parent (this test) is alive and can still start children.
    assert procs.run(sum, [1, 2, 3]).value == 6
    evidence.update(
        crashed=crashed.describe(),
        siblings=[r.describe() for r in results],
    )
