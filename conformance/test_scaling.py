"""Scalability: do N threads finish N pieces of work faster than one thread does?

Each pair of samples times the same work four ways: one unit after another in one worker,
and one unit in each of N workers at once, with threads and with processes. The processes
are the control: if N of them are not clearly faster than one, the cores are not free (a
busy machine), and the check says "inconclusive" rather than blame the threads.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any, Callable

import pytest

from pytest_procthread.claims import stats
from pytest_procthread.claims.verdicts import ClaimCheck
from pytest_procthread.process import ProcessRunner
from pytest_procthread.thread import ThreadRunner

WAIT = 30.0  # bound of every wait in this module, in seconds
MAX_WORKERS = 4
UNIT_SECONDS = 0.010  # one unit of work, calibrated on this interpreter
CONTROL_SPEEDUP = 1.3  # what N processes must clearly beat for the cores to count as free
ATTEMPTS = 3  # samplings before a failed control makes the verdict inconclusive
PAIRS = 16  # at least: the 95% interval then leaves out the three most extreme pairs each side
BLOCK = bytes(range(256)) * 4096  # 1 MiB to hash; sha256 releases the GIL on large data


def _python_work(reps: int) -> int:
    """Pure-Python arithmetic: holds the interpreter lock throughout, where there is one.
    Kept within machine words, so that a longer run costs no more per step (PyPy)."""
    total = 0
    for i in range(reps):
        total = (total + i * i) & 0xFFFFFFFF
    return total


def _hashing_work(reps: int) -> int:
    """Hashing 1 MiB blocks: the C code runs with the interpreter lock released."""
    last = b""
    for _ in range(reps):
        last = hashlib.sha256(BLOCK).digest()
    return len(last)


WORK: dict[str, Callable[[int], int]] = {"python": _python_work, "sha256": _hashing_work}


def _worker(conn: Any) -> int:
    """Do each job that arrives on ``conn`` and answer it; the same code in threads and
    processes. A job is (kind, reps); None ends the worker."""
    done = 0
    while conn.poll(WAIT):
        job = conn.recv()
        if job is None:
            return done
        kind, reps = job
        WORK[kind](reps)
        conn.send(done)
        done += 1
    raise TimeoutError(f"no job for {WAIT:g} s")


def _calibrate(kind: str) -> int:
    """Repetitions of ``kind`` that take about UNIT_SECONDS here."""
    work = WORK[kind]

    def seconds(reps: int) -> float:
        start = time.perf_counter()
        work(reps)
        return time.perf_counter() - start

    reps = 1
    while True:
        elapsed = seconds(reps)
        if elapsed >= UNIT_SECONDS / 4:
            break
        reps *= 4
    # Once more at about the right size: a JIT may have compiled the loop meanwhile.
    reps = max(1, round(reps * UNIT_SECONDS / elapsed))
    return max(1, round(reps * UNIT_SECONDS / seconds(reps)))


class _Pool:
    """N workers of one kind (threads or processes), each behind its own pipe."""

    def __init__(self, conns: list[Any], handles: list[Any], lent: list[Any]) -> None:
        self.conns = conns
        self.handles = handles
        self.lent = lent  # the workers' ends, where they live in this process (threads)

    def _gather(self, conns: list[Any]) -> None:
        for conn in conns:
            if not conn.poll(WAIT):
                raise TimeoutError(f"a worker gave no answer within {WAIT:g} s")
            conn.recv()

    def one_after_another(self, kind: str, reps: int) -> float:
        """Seconds for one worker to do all N units."""
        start = time.perf_counter()
        self.conns[0].send((kind, reps * len(self.conns)))
        self._gather(self.conns[:1])
        return time.perf_counter() - start

    def all_at_once(self, kind: str, reps: int) -> float:
        """Seconds for N workers to do one unit each, at the same time."""
        start = time.perf_counter()
        for conn in self.conns:
            conn.send((kind, reps))
        self._gather(self.conns)
        return time.perf_counter() - start

    def close(self) -> None:
        for conn in self.conns:
            try:
                conn.send(None)
            except OSError:
                pass
        for handle in self.handles:
            handle.join(WAIT)
        for conn in self.conns + self.lent:
            conn.close()


def _start_pool(start: Callable[..., Any], ctx: Any, n: int, *, processes: bool) -> _Pool:
    conns, handles, lent = [], [], []
    for _ in range(n):
        mine, theirs = ctx.Pipe()
        conns.append(mine)
        try:
            handles.append(start(_worker, theirs))
        finally:
            if processes:
                theirs.close()  # the child has its own copy
            else:
                lent.append(theirs)  # the thread uses this very object
    return _Pool(conns, handles, lent)


def _measure(
    kind: str, n: int, reps: int, procs: ProcessRunner, sibling_thread: ThreadRunner,
    claim: ClaimCheck,
) -> tuple[stats.Paired, stats.Paired]:
    """One sampling: (threads, processes), each a paired sample of serial vs parallel."""
    process_serial: list[float] = []  # the control, sampled inside the same pairs
    process_parallel: list[float] = []
    threads = processes = None
    try:
        threads = _start_pool(sibling_thread.start, procs.context, n, processes=False)
        processes = _start_pool(procs.start, procs.context, n, processes=True)

        def serial() -> float:
            process_serial.append(processes.one_after_another(kind, reps))
            return threads.one_after_another(kind, reps)

        def parallel() -> float:
            process_parallel.append(processes.all_at_once(kind, reps))
            return threads.all_at_once(kind, reps)

        result = claim.compare(
            serial, parallel,
            a_label=f"{n} units in 1 thread", b_label=f"1 unit in each of {n} threads",
            budget=1.0, min_pairs=PAIRS, decide=False,
        )
    finally:
        for pool in (threads, processes):
            if pool is not None:
                pool.close()
    pairs = len(result.a)
    # measure_paired warms up with one call of each side first: those are not in the pairs.
    process_serial, process_parallel = process_serial[-pairs:], process_parallel[-pairs:]
    control = stats.Paired(f"{n} units in 1 process", f"1 unit in each of {n} processes",
                           process_serial, process_parallel)
    return result, control


def _scaling(
    kind: str, procs: ProcessRunner, sibling_thread: ThreadRunner, claim: ClaimCheck
) -> None:
    n = min(claim.facts["usable_cpus"], MAX_WORKERS)
    if n < 2:
        claim.unsupported(f"{n} usable CPU: nothing to spread work across")
    reps = _calibrate(kind)
    failed_controls: list[dict[str, object]] = []
    attempt = 0
    while True:
        attempt += 1
        result, control = _measure(kind, n, reps, procs, sibling_thread, claim)
        lo, hi = control.ci
        control_figure = f"{n} processes: {control.ratio:.3g}x [95% CI {lo:.3g}-{hi:.3g}]"
        if lo > CONTROL_SPEEDUP or attempt == ATTEMPTS:
            break
        # A busy moment (another program, the hypervisor) fails the control; sample again
        # rather than give up at once. The threads' figure of a failed sampling is never used.
        failed_controls.append({"control_samples": control.as_dict(), "figure": control_figure})
    threshold = 1 + claim.claim.margin
    evidence = {
        "workers": n, "work": kind, "reps_per_unit": reps, "attempts": attempt,
        "samples": result.as_dict(), "control_samples": control.as_dict(),
        "failed_controls": failed_controls, "gil_enabled": claim.facts["gil_enabled"],
    }
    threads_figure = f"{n} threads: {result.figure('s')}"
    if lo <= CONTROL_SPEEDUP:
        claim.inconclusive(
            f"the control failed {attempt} times: {control_figure}, not clearly above "
            f"{CONTROL_SPEEDUP:g}x, so the cores were not free; {threads_figure}",
            **evidence,
        )
    verdict = stats.decide_ratio(result, "greater", threshold)
    figure = f"{threads_figure}; claim needs a/b > {threshold:g}; control, {control_figure}"
    if attempt > 1:
        figure += f" (sampled {attempt} times: the control failed before)"
    if verdict is None:
        claim.inconclusive(figure, **evidence)
    claim.decide(verdict == "holds", figure, **evidence)


@pytest.mark.claim("threads-scale-cpu-bound")
def test_threads_spread_pure_python_work_across_cores(
    isolated_process: ProcessRunner, sibling_thread: ThreadRunner, claim: ClaimCheck
) -> None:
    _scaling("python", isolated_process, sibling_thread, claim)


@pytest.mark.claim("threads-scale-gil-releasing")
def test_threads_spread_gil_releasing_work_across_cores(
    isolated_process: ProcessRunner, sibling_thread: ThreadRunner, claim: ClaimCheck
) -> None:
    _scaling("sha256", isolated_process, sibling_thread, claim)
