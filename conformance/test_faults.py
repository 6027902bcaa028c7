"""Fault isolation: what a fault in a thread or in a process takes down with it.

Which start method runs the child does not change what happens inside one process, so the
thread checks and the sibling check run under one method: fork where the platform has it
(the cheapest, and the one where parent and children share the most pages), else spawn.
Only the pool check depends on the start method (the pool's workers are started with it),
so only it is parametrised over every method.
"""

from __future__ import annotations

import importlib
import multiprocessing
import multiprocessing.connection
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeoutError
from typing import Any, Callable

import pytest

from pytest_procthread import faults
from pytest_procthread.claims.verdicts import ClaimCheck
from pytest_procthread.ipc import IpcPipe, PipeEnd
from pytest_procthread.process import ProcessRunner

ONE_METHOD = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
one_start_method = pytest.mark.parametrize("start_method", [ONE_METHOD])

WORKERS = 2
PROGRESS_MARK = 2_000
EXIT_CODE = 3


def _raise_error() -> None:
    raise RuntimeError("procthread: deliberate error in a thread")


# What the faulty thread does; looked up by name in the child, so any start method works.
THREAD_FAULTS: dict[str, Callable[[], Any]] = {
    "segfault": faults.segfault,
    "os-exit": lambda: faults.hard_exit(EXIT_CODE),
    "exception": _raise_error,
    "sys-exit": lambda: sys.exit(EXIT_CODE),
}


def _threads_at_work(counters: Any, end: PipeEnd, fault: str) -> str:
    """In the child: WORKERS threads count in shared memory; then one more thread faults."""
    progressed = [threading.Event() for _ in range(WORKERS)]
    stop = threading.Event()
    # Busy workers hold the interpreter lock for a whole switch interval at a time; a short
    # one lets this main thread through quickly on a GIL build.
    sys.setswitchinterval(0.001)

    def work(i: int) -> None:
        while not stop.is_set():
            counters[i] += 1
            if counters[i] == PROGRESS_MARK:
                progressed[i].set()

    for i in range(WORKERS):
        threading.Thread(target=work, args=(i,), daemon=True).start()
    if not all(e.wait(20) for e in progressed):
        raise TimeoutError("the worker threads did not get going")
    end.send("working")
    end.recv(timeout=20)  # the go-ahead to fault
    faulty = threading.Thread(target=THREAD_FAULTS[fault], name=f"faulty-{fault}")
    faulty.start()
    faulty.join(20)
    if faulty.is_alive():
        raise TimeoutError(f"the faulty thread ({fault}) neither ended nor ended the process")
    # Only reached if the fault spared the process: every worker must still be counting.
    after_fault = list(counters)
    deadline = time.monotonic() + 20
    for i in range(WORKERS):
        while counters[i] <= after_fault[i]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"worker {i} stopped counting after the fault")
    stop.set()  # the busy workers would slow down every step of this child's exit
    return "the other threads kept counting"


def _fault_a_thread(procs: ProcessRunner, ipc_pipe: IpcPipe, fault: str) -> dict[str, Any]:
    """Run _threads_at_work in a child, order the fault, and say what became of the child."""
    counters = procs.context.RawArray("q", WORKERS)
    child = procs.start(_threads_at_work, counters, ipc_pipe.child, fault)
    assert ipc_pipe.parent.recv(timeout=30) == "working", "the child did not get going"
    at_fault = list(counters)
    ipc_pipe.parent.send("go")
    outcome = child.join(timeout=30)
    at_end = list(counters)
    assert all(c >= PROGRESS_MARK for c in at_fault), f"the workers never got going: {at_fault}"
    # The child either returned (the fault spared it) or ended abruptly; anything else,
    # such as its own time limits running out, is a problem of the check, not a verdict.
    assert not outcome.timed_out and outcome.exception is None, outcome.describe()
    # A fresh process, started after the end, reads the counts again: had any worker
    # survived the fault, they would have moved on.
    read_later = procs.run(list, counters).unwrap()
    whole_process_ended = not outcome.returned and not child.is_alive() and read_later == at_end
    return {
        "outcome": outcome, "whole_process_ended": whole_process_ended,
        "counts_when_fault_ordered": at_fault, "counts_at_end": at_end,
        "counts_read_later": read_later,
    }


@pytest.mark.claim("thread-crash-kills-process")
@one_start_method
def test_native_crash_in_a_thread_stops_every_thread(
    procs: ProcessRunner, ipc_pipe: IpcPipe, claim: ClaimCheck
) -> None:
    seen = _fault_a_thread(procs, ipc_pipe, "segfault")
    outcome = seen.pop("outcome")
    claim.decide(
        seen.pop("whole_process_ended") and outcome.crashed,
        f"{outcome.describe()}; worker counts at the end {seen['counts_at_end']}, "
        f"read later {seen['counts_read_later']}",
        exitcode=outcome.exitcode, stderr_head=outcome.stderr[:400], **seen,
    )


@pytest.mark.claim("thread-os-exit-ends-process")
@one_start_method
def test_os_exit_in_a_thread_ends_the_process(
    procs: ProcessRunner, ipc_pipe: IpcPipe, claim: ClaimCheck
) -> None:
    seen = _fault_a_thread(procs, ipc_pipe, "os-exit")
    outcome = seen.pop("outcome")
    claim.decide(
        seen.pop("whole_process_ended") and outcome.exitcode == EXIT_CODE,
        f"a thread called os._exit({EXIT_CODE}): {outcome.describe()}; worker counts at the "
        f"end {seen['counts_at_end']}, read later {seen['counts_read_later']}",
        exitcode=outcome.exitcode, **seen,
    )


@pytest.mark.claim("thread-exception-ends-process")
@one_start_method
def test_unhandled_exception_in_a_thread(
    procs: ProcessRunner, ipc_pipe: IpcPipe, claim: ClaimCheck
) -> None:
    seen = _fault_a_thread(procs, ipc_pipe, "exception")
    outcome = seen.pop("outcome")
    printed = "RuntimeError: procthread: deliberate error" in outcome.stderr
    claim.decide(
        seen.pop("whole_process_ended"),
        f"{outcome.describe()}; the faulty thread's error was "
        f"{'printed' if printed else 'not printed'} by threading.excepthook",
        exitcode=outcome.exitcode, stderr_tail=outcome.stderr[-400:], **seen,
    )


@pytest.mark.claim("thread-sys-exit-ends-process")
@one_start_method
def test_sys_exit_in_a_thread(procs: ProcessRunner, ipc_pipe: IpcPipe, claim: ClaimCheck) -> None:
    seen = _fault_a_thread(procs, ipc_pipe, "sys-exit")
    outcome = seen.pop("outcome")
    silent = "SystemExit" not in outcome.stderr
    ended = seen.pop("whole_process_ended")
    claim.decide(
        ended,
        f"a thread called sys.exit({EXIT_CODE}): {outcome.describe()}; the SystemExit was "
        f"{'swallowed silently' if silent else 'reported'}"
        f"{'' if ended else ' and only that thread ended'}",
        exitcode=outcome.exitcode, stderr_tail=outcome.stderr[-400:], **seen,
    )


def _sibling(n: int, crash_seen: Any) -> int:
    partial = sum(range(n))
    if not crash_seen.wait(30):
        raise TimeoutError("the parent never said the crash happened")
    return partial + sum(range(n, 2 * n))


@pytest.mark.claim("process-crash-spares-others")
@one_start_method
def test_crashed_process_spares_siblings_and_parent(
    procs: ProcessRunner, claim: ClaimCheck
) -> None:
    crash_seen = procs.context.Event()
    siblings = [procs.start(_sibling, 10_000 * (i + 1), crash_seen) for i in range(2)]
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


# -- a crash inside a process pool ------------------------------------------------------------

POOL_WORKERS = 2
LOST_RESULT_WAIT = 0.2  # how long after the crash the check waits for the lost result
# Semaphores only: a process killed while it waits on a multiprocessing Event, Condition or
# Barrier leaves the next notify() waiting for it forever; a semaphore has no such hazard.
_pool_sync: dict[str, Any] = {}


def _pool_init(started: Any, go_crash: Any, crash_noticed: Any) -> None:
    _pool_sync.update(started=started, go_crash=go_crash, crash_noticed=crash_noticed)


def _pool_task(role: str) -> str:
    """A pool task: 'crash' dies once every worker holds a task; 'work' is busy in the other
    worker until the crash was noticed; 'queued' waits in the queue behind them."""
    if role == "queued":
        return "done"
    _pool_sync["started"].release()
    if role == "crash":
        if _pool_sync["go_crash"].acquire(timeout=20):
            faults.segfault()
        return "not crashed: never told to"
    if not _pool_sync["crash_noticed"].acquire(timeout=20):
        return "done, but never told of the crash"
    return "done"


def _task_state(wait_for_result: Callable[[float], Any], seconds: float) -> str:
    try:
        return f"returned {wait_for_result(seconds)!r}"
    except (multiprocessing.TimeoutError, FutureTimeoutError, TimeoutError):
        return f"no result within {seconds:.2f} s"
    except Exception as exc:
        return f"raised {type(exc).__name__}"


def _crash_in_a_pool(kind: str, method: str) -> dict[str, str]:
    """In the child: a pool of POOL_WORKERS; one worker crashes while the other works."""
    # The pool sends its functions to the workers by reference (module and name). This
    # function may have arrived by value (the plugin sends test modules' functions so to
    # spawn and forkserver children); take the module's own objects, or pickle refuses them.
    module = sys.modules.get(_pool_task.__module__) or importlib.import_module(
        _pool_task.__module__
    )
    init, task = module._pool_init, module._pool_task
    ctx = multiprocessing.get_context(method)
    started, go_crash, crash_noticed = ctx.Semaphore(0), ctx.Semaphore(0), ctx.Semaphore(0)
    sync = (started, go_crash, crash_noticed)
    roles = ("crash", "work", "queued")
    states: dict[str, str] = {}

    def both_workers_busy() -> list[Any]:
        if not all(started.acquire(timeout=20) for _ in range(POOL_WORKERS)):
            raise TimeoutError("the pool's workers did not take their tasks")
        # Taken before the crash: once dead, a worker may be reaped and forgotten at once.
        workers = multiprocessing.active_children()
        go_crash.release()
        return workers

    if kind == "ProcessPoolExecutor":
        executor = ProcessPoolExecutor(
            POOL_WORKERS, mp_context=ctx, initializer=init, initargs=sync
        )
        try:
            try:
                futures = {role: executor.submit(task, role) for role in roles}
            except Exception as exc:  # PyPy 3.9 under spawn/forkserver: AttributeError
                return {"unusable": f"submit() raised {type(exc).__name__}: {exc}"}
            both_workers_busy()
            # The executor has noticed the crash once it settles the crashed task.
            states["crash"] = _task_state(futures["crash"].result, 20)
            crash_noticed.release()
            for role in roles[1:]:
                states[role] = _task_state(futures[role].result, 20)
        finally:
            crash_noticed.release()
            executor.shutdown(wait=True, cancel_futures=True)
    else:
        pool = ctx.Pool(POOL_WORKERS, initializer=init, initargs=sync)
        try:
            results = {role: pool.apply_async(task, (role,)) for role in roles}
            workers = both_workers_busy()
            crashed_pid = _first_to_end(workers, 20)
            died_at = time.monotonic()
            crash_noticed.release()
            for role in roles[1:]:
                states[role] = _task_state(results[role].get, 20)
            # By now the pool has replaced the dead worker and run the queued task.
            waited = max(0.05, died_at + LOST_RESULT_WAIT - time.monotonic())
            states["crash"] = _task_state(results["crash"].get, waited)
            if states["crash"].startswith("no result"):
                since = time.monotonic() - died_at
                states["crash"] = f"no result {since:.2f} s after its worker died"
            states["crashed worker"] = f"pid {crashed_pid}"
        finally:
            crash_noticed.release()
            pool.terminate()
    return states


def _first_to_end(workers: list[Any], seconds: float) -> Any:
    """The pid of the first of ``workers`` to end, waiting at most ``seconds`` on their
    sentinels (the list keeps the Process objects, so their sentinels stay open); the pool
    reaps the dead one itself, as it expects to."""
    by_sentinel = {p.sentinel: p.pid for p in workers}
    ended = multiprocessing.connection.wait(list(by_sentinel), seconds)
    return by_sentinel[ended[0]] if ended else None


@pytest.mark.claim("pool-crash-spares-others-work")
@pytest.mark.parametrize("kind", ["ProcessPoolExecutor", "multiprocessing.Pool"])
def test_crash_in_a_pool(
    isolated_process: ProcessRunner, start_method: str, kind: str, claim: ClaimCheck
) -> None:
    # The pool runs inside an isolated child, so that whatever it does (crash, hang, leave
    # workers behind) ends with that child. The pool's workers use the start method under
    # test; the child around it is forked where it can be (cheapest), except for forkserver
    # pools: a fork()ed child cannot use the forkserver its parent already runs.
    container_method = start_method if start_method == "forkserver" else ONE_METHOD
    container = isolated_process.options(start_method=container_method, timeout=30)
    outcome = container.run(_crash_in_a_pool, kind, start_method)
    states = outcome.unwrap()
    if "unusable" in states:
        claim.unsupported(f"{kind} cannot run work under {start_method} on this interpreter: "
                          f"{states['unusable']}")
        return
    spared = states["work"].startswith("returned") and states["queued"].startswith("returned")
    settled = not states["crash"].startswith("no result")
    claim.decide(
        spared and settled,
        f"{kind} ({start_method}), one of {POOL_WORKERS} workers crashed: the other "
        f"worker's task {states['work']}, the queued task {states['queued']}, the crashed "
        f"task {states['crash']}",
        tasks=states, container_start_method=container_method,
    )
