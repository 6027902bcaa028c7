"""Fault isolation: what a crash in a thread or in a process takes down with it."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from pytest_procthread import faults
from pytest_procthread.claims.verdicts import ClaimCheck
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
    procs: ProcessRunner, ipc_pipe: IpcPipe, claim: ClaimCheck
) -> None:
    counters = procs.context.RawArray("q", WORKERS)
    child = procs.start(_threads_at_work, counters, ipc_pipe.child, "segfault")
    assert ipc_pipe.parent.recv(timeout=30) == "working"
    at_fault = list(counters)
    ipc_pipe.parent.send("go")
    outcome = child.join(timeout=30)
    at_death = list(counters)
    # A fresh process, started after the death, reads the counts again: had any worker
    # survived the fault, they would have moved on.
    read_later = procs.run(list, counters).unwrap()
    workers_were_counting = all(c >= PROGRESS_MARK for c in at_fault)
    assert workers_were_counting, f"the workers never got going: {at_fault}"
    whole_process_died = outcome.crashed and not outcome.returned and not child.is_alive()
    claim.decide(
        whole_process_died and read_later == at_death,
        f"{outcome.describe()}; worker counts at death {at_death}, read later {read_later}",
        counts_when_fault_ordered=at_fault, counts_at_death=at_death,
        counts_read_later=read_later, exitcode=outcome.exitcode,
        stderr_head=outcome.stderr[:400],
    )


@pytest.mark.claim("thread-exception-ends-process")
def test_unhandled_exception_in_a_thread(
    procs: ProcessRunner, ipc_pipe: IpcPipe, claim: ClaimCheck
) -> None:
    counters = procs.context.RawArray("q", WORKERS)
    child = procs.start(_threads_at_work, counters, ipc_pipe.child, "exception")
    assert ipc_pipe.parent.recv(timeout=30) == "working"
    ipc_pipe.parent.send("go")
    outcome = child.join(timeout=30)
    ended = not outcome.returned
    claim.decide(
        ended,
        f"{outcome.describe()}; the faulty thread's error was "
        f"{'printed' if 'RuntimeError' in outcome.stderr else 'not printed'} by threading.excepthook",
        counts_at_end=list(counters), stderr_tail=outcome.stderr[-400:],
    )


def _sibling(n: int, crash_seen: Any) -> int:
    partial = sum(range(n))
    if not crash_seen.wait(30):
        raise TimeoutError("the parent never said the crash happened")
    return partial + sum(range(n, 2 * n))


@pytest.mark.claim("process-crash-spares-others")
def test_crashed_process_spares_siblings_and_parent(
    procs: ProcessRunner, claim: ClaimCheck
) -> None:
    crash_seen = procs.context.Event()
    siblings = [procs.start(_sibling, 10_000 * (i + 1), crash_seen) for i in range(3)]
    crashed = procs.run(faults.segfault)
    assert crashed.crashed, crashed.describe()
    alive_at_crash = [s.is_alive() for s in siblings]
    crash_seen.set()
    results = [s.join(timeout=30) for s in siblings]
    finished = [r.value == sum(range(20_000 * (i + 1))) for i, r in enumerate(results)]
    # The parent (this test) is alive and can still start children.
    parent_fine = procs.run(sum, [1, 2, 3]).value == 6
    claim.decide(
        all(alive_at_crash) and all(finished) and parent_fine,
        f"{crashed.describe()}; siblings alive at the crash {alive_at_crash}, "
        f"finished their work {finished}; parent still starts children: {parent_fine}",
        siblings=[r.describe() for r in results],
    )
