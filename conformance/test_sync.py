"""Synchronisation: lost updates of an unsynchronised read-modify-write, in threads and in
processes that share memory or a file.

The verdicts do not depend on luck: the interleaving that loses an update (both sides read
before either writes) is forced with a barrier between the read and the write. How often it
happens on its own here, unforced, is measured separately and reported as evidence only.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from pytest_procthread.claims.verdicts import ClaimCheck
from pytest_procthread.process import ProcessRunner
from pytest_procthread.thread import ThreadRunner

# Shared memory and files behave the same whichever way a process was started, so the
# process check runs under one method: fork where the platform has it (cheapest), else spawn.
ONE_METHOD = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
ROUNDS = 10  # forced interleavings per side
TAGS = (b"child one", b"child two")  # the same length: a later write covers an earlier one
WAIT = 10.0  # bound of every wait


class _Counter:
    """A plain attribute: ``n += 1`` on it is a read, an add and a write."""

    def __init__(self) -> None:
        self.n = 0


def _forced_unlocked(counter: _Counter, round_start: Any, between: Any) -> None:
    for _ in range(ROUNDS):
        round_start.wait(WAIT)
        seen = counter.n
        between.wait(WAIT)  # both sides have read; now both write
        counter.n = seen + 1


def _forced_locked(
    counter: _Counter, round_start: Any, lock: Any, second_tried: list[Any], held_off: list[int]
) -> None:
    """The same schedule under a lock: whoever holds it waits, between its read and its
    write, until the other side has tried to read and found the lock held."""
    for r in range(ROUNDS):
        round_start.wait(WAIT)
        if not lock.acquire(False):
            held_off.append(r)
            second_tried[r].set()
            if not lock.acquire(timeout=WAIT):
                raise TimeoutError("the lock was never released")
            first = False
        else:
            first = True
        try:
            seen = counter.n
            if first and not second_tried[r].wait(WAIT):
                raise TimeoutError("the other thread never tried to read")
            counter.n = seen + 1
        finally:
            lock.release()


def _unforced_lost_updates(threads: int, increments: int) -> int:
    """Evidence only: updates lost by ``threads`` threads doing ``n += 1`` freely, with the
    interpreter switching threads as often as it allows."""
    counter = _Counter()
    go = threading.Barrier(threads, timeout=WAIT)

    def bump() -> None:
        go.wait()
        for _ in range(increments):
            counter.n += 1

    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        workers = [threading.Thread(target=bump) for _ in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(WAIT)
        if any(w.is_alive() for w in workers):
            raise TimeoutError("the unforced increments did not finish")
    finally:
        sys.setswitchinterval(old_interval)
    return threads * increments - counter.n


@pytest.mark.claim("threads-need-synchronisation")
def test_threads_lose_updates_without_a_lock(
    sibling_thread: ThreadRunner, claim: ClaimCheck
) -> None:
    unlocked = _Counter()
    round_start, between = threading.Barrier(2), threading.Barrier(2)
    runs = [sibling_thread.start(_forced_unlocked, unlocked, round_start, between)
            for _ in range(2)]
    for run in runs:
        run.join(WAIT * 2).unwrap()
    lost_unlocked = 2 * ROUNDS - unlocked.n

    locked = _Counter()
    round_start, lock = threading.Barrier(2), threading.Lock()
    second_tried = [threading.Event() for _ in range(ROUNDS)]
    held_off: list[int] = []
    runs = [sibling_thread.start(_forced_locked, locked, round_start, lock, second_tried, held_off)
            for _ in range(2)]
    for run in runs:
        run.join(WAIT * 2).unwrap()
    lost_locked = 2 * ROUNDS - locked.n
    assert len(held_off) == ROUNDS, f"the forced schedule did not happen: {held_off}"

    threads, increments = 4, 25_000
    unforced = _unforced_lost_updates(threads, increments)
    claim.decide(
        lost_unlocked > 0 and lost_locked == 0,
        f"forced read/read/write/write: {lost_unlocked} of {2 * ROUNDS} updates lost without "
        f"a lock, {lost_locked} with one (the other thread was held off {len(held_off)} "
        f"times); unforced, {threads} threads x {increments} `n += 1` lost {unforced}",
        forced_lost_without_lock=lost_unlocked, forced_lost_with_lock=lost_locked,
        unforced_threads=threads, unforced_increments_each=increments,
        unforced_lost=unforced, switch_interval_for_unforced=1e-6,
    )


def _process_race(
    value: Any, locked: Any, sync: tuple[Any, ...], path: str, appended: str, tag: bytes
) -> None:
    """In a child: the forced read/read/write/write on a shared Value, then the same under
    the Value's lock, then on a file without and with O_APPEND."""
    round_start, between, second_tried, held_off = sync
    for _ in range(ROUNDS):
        round_start.wait(WAIT)
        seen = value.value  # each access takes the Value's lock; the pair does not
        between.wait(WAIT)
        value.value = seen + 1
    lock = locked.get_lock()
    for r in range(ROUNDS):
        round_start.wait(WAIT)
        first = lock.acquire(False)
        if not first:
            with held_off.get_lock():
                held_off.value += 1
            second_tried[r].set()
            if not lock.acquire(timeout=WAIT):
                raise TimeoutError("the Value's lock was never released")
        try:
            seen = locked.value
            if first and not second_tried[r].wait(WAIT):
                raise TimeoutError("the other process never tried to read")
            locked.value = seen + 1
        finally:
            lock.release()
    # A file opened without O_APPEND: seek to the end, then write there.
    round_start.wait(WAIT)
    fd = os.open(path, os.O_WRONLY)
    try:
        os.lseek(fd, 0, os.SEEK_END)
        between.wait(WAIT)  # both found the same end
        os.write(fd, tag + b"\n")
    finally:
        os.close(fd)
    # Control: the same schedule with O_APPEND, where the kernel moves to the end per write.
    round_start.wait(WAIT)
    fd = os.open(appended, os.O_WRONLY | os.O_APPEND)
    try:
        between.wait(WAIT)
        os.write(fd, tag + b"\n")
    finally:
        os.close(fd)


@pytest.mark.claim("processes-need-no-synchronisation")
@pytest.mark.parametrize("start_method", [ONE_METHOD])
def test_processes_lose_updates_without_a_lock(
    procs: ProcessRunner, tmp_path: Path, claim: ClaimCheck
) -> None:
    ctx = procs.context
    value, locked, held_off = ctx.Value("q", 0), ctx.Value("q", 0), ctx.Value("i", 0)
    sync = (ctx.Barrier(2), ctx.Barrier(2), [ctx.Event() for _ in range(ROUNDS)], held_off)
    path, appended = tmp_path / "seek-then-write.txt", tmp_path / "o-append.txt"
    path.write_bytes(b"")
    appended.write_bytes(b"")
    children = [
        procs.start(_process_race, value, locked, sync, str(path), str(appended), tag)
        for tag in TAGS
    ]
    for child in children:
        child.join(WAIT * 3).unwrap()
    lost_value = 2 * ROUNDS - value.value
    lost_locked = 2 * ROUNDS - locked.value
    assert held_off.value == ROUNDS, f"the forced schedule did not happen: {held_off.value}"
    content, appended_content = path.read_bytes(), appended.read_bytes()
    kept = [tag for tag in TAGS if tag in content]
    kept_appending = [tag for tag in TAGS if tag in appended_content]
    claim.decide(
        lost_value == 0 and len(kept) == 2,
        f"two processes, forced read/read/write/write: {lost_value} of {2 * ROUNDS} updates "
        f"of a shared multiprocessing.Value lost ({lost_locked} under its lock); "
        f"seek-to-end-then-write into one file kept {len(kept)} of 2 lines (with O_APPEND: "
        f"{len(kept_appending)} of 2)",
        value_lost=lost_value, value_lost_under_lock=lost_locked,
        file_content=content.decode(errors="replace"),
        o_append_content=appended_content.decode(errors="replace"),
    )
