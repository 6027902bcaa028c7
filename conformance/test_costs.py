"""Costs: what creating a process and switching between processes cost, against threads."""

from __future__ import annotations

import os
import socket
import statistics
import threading
import time
from typing import Optional

import pytest

from pytest_procthread.claims import stats
from pytest_procthread.claims.pinning import affinity, pin
from pytest_procthread.claims.verdicts import ClaimCheck
from pytest_procthread.process import ProcessRunner
from pytest_procthread.thread import ThreadRunner

WAIT = 30.0  # bound of every wait in this module, in seconds
ROUND_TRIPS = 200  # pipe round trips per sample of the switch comparison
RAW_SAMPLES = 2  # raw Process / Thread creations, as evidence beside the fixtures
STOP = b"\0"  # ends an echo loop: a forked child holds copies of our ends, so no EOF


# -- pinning: both ends of a ping-pong on one CPU --------------------------------------------
@pytest.mark.claim("process-creation-costs-more")
def test_creating_a_process_costs_more_than_a_thread(
    procs: ProcessRunner, sibling_thread: ThreadRunner, claim: ClaimCheck
) -> None:
    # The target is os.getpid, a function of the standard library: a child started by
    # spawn or forkserver imports nothing of this test module (nor pytest) to find it.
    # First the primitives themselves, without the fixtures' bookkeeping, as evidence.
    ctx = procs.context
    raw_process, raw_thread = [], []
    for _ in range(RAW_SAMPLES):
        process = ctx.Process(target=os.getpid)
        start = time.perf_counter()
        process.start()
        process.join(WAIT)
        raw_process.append(time.perf_counter() - start)
        if process.exitcode is None:  # never left behind, even stuck
            process.kill()
            process.join(WAIT)
        assert process.exitcode == 0, f"a raw {procs.start_method} child ended {process.exitcode}"
        process.close()
        thread = threading.Thread(target=os.getpid)
        start = time.perf_counter()
        thread.start()
        thread.join(WAIT)
        raw_thread.append(time.perf_counter() - start)
    raw_p, raw_t = statistics.median(raw_process), statistics.median(raw_thread)
    claim.compare(
        stats.timed(lambda: procs.run(os.getpid).unwrap()),
        stats.timed(lambda: sibling_thread.run(os.getpid).unwrap()),
        a_label=f"start and join a process ({procs.start_method})",
        b_label="start and join a thread", budget=0.4, min_pairs=6,
        raw_primitives=f"multiprocessing Process {raw_p * 1e3:.3g} ms vs threading.Thread "
        f"{raw_t * 1e6:.3g} us ({raw_p / raw_t:.3g}x, median of {RAW_SAMPLES})",
        raw_process_s=raw_process, raw_thread_s=raw_thread,
    )


def _echo(sock: socket.socket, cpus: Optional[set[int]]) -> int:
    """Send back every byte until the peer closes; the same code in a thread and a process."""
    pin(cpus)
    sock.settimeout(WAIT)
    count = 0
    try:
        while True:
            data = sock.recv(1)
            if data in (b"", STOP):
                return count
            sock.sendall(data)
            count += 1
    finally:
        sock.close()


def _ping_pong(sock: socket.socket) -> float:
    start = time.perf_counter()
    for _ in range(ROUND_TRIPS):
        sock.sendall(b"x")
        if not sock.recv(1):
            raise EOFError("the echo side closed before the ping-pong ended")
    return (time.perf_counter() - start) / ROUND_TRIPS


@pytest.mark.claim("process-switch-costs-more")
def test_switching_processes_costs_more_than_switching_threads(
    isolated_process: ProcessRunner, sibling_thread: ThreadRunner, claim: ClaimCheck
) -> None:
    """A one-byte ping-pong over a socket pair: to a thread of this process, and to a child.

    Both sides run the same code over the same mechanism, and all ends are kept on one CPU
    (where the OS allows it), so every round trip is two switches there and nothing else
    differs: not the mechanism, not the cost of waking another, idle CPU.
    """
    mine = affinity()
    cpus = {max(mine)} if mine else None
    to_thread, thread_end = socket.socketpair()
    to_child, child_end = socket.socketpair()
    with to_thread, to_child:
        thread = sibling_thread.start(_echo, thread_end, cpus)  # the thread closes its end
        try:
            child = isolated_process.start(_echo, child_end, cpus)
        finally:
            child_end.close()  # the child has its own copy
        for sock in (to_thread, to_child):
            sock.settimeout(WAIT)
        pin(cpus)
        try:
            claim.compare(
                lambda: _ping_pong(to_child), lambda: _ping_pong(to_thread),
                a_label="round trip to a child process", b_label="round trip to a thread",
                budget=0.5, min_pairs=8,
                mechanism="socket.socketpair, 1 byte each way", round_trips_per_sample=ROUND_TRIPS,
                pinned_to_cpus=sorted(cpus) if cpus else "not pinned (no per-thread affinity)",
                gil_enabled=claim.facts["gil_enabled"], start_method=isolated_process.start_method,
            )
        finally:
            if mine is not None:
                pin(mine)
            for sock in (to_thread, to_child):
                sock.sendall(STOP)
            thread.join(WAIT)
            child.join(WAIT)
