"""Identity and structure: what a process is, and the threads that live inside it.

What a child runs is defined inside the check: it then travels by value (cloudpickle), so
that a spawn or forkserver child need not import this module, and pytest with it, which
would triple what each such child costs.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

import psutil
import pytest

from pytest_procthread.claims import stats
from pytest_procthread.claims.verdicts import ClaimCheck
from pytest_procthread.ipc import IpcPipe, PipeEnd
from pytest_procthread.process import ProcessRunner
from pytest_procthread.thread import ThreadRunner

WAIT = 30.0
# Where threading.get_native_id() and psutil's thread ids name the same thing (on macOS
# psutil lists Mach thread ports, another numbering).
NATIVE_IDS_ARE_OS_THREAD_IDS = sys.platform.startswith(("linux", "win32", "freebsd"))


# -- a process has an identity of its own ---------------------------------------------------

@pytest.mark.claim("process-has-own-identity")
def test_each_process_has_its_own_pid(procs: ProcessRunner, claim: ClaimCheck) -> None:
    def report_identity(all_alive: Any, release: Any) -> tuple[int, int]:
        """In the child: wait until the siblings and the parent all run, say who we are."""
        all_alive.wait(WAIT)
        me = (os.getpid(), os.getppid())
        if not release.wait(WAIT):
            raise TimeoutError("the parent never released the children")
        return me

    children = 2
    all_alive = procs.context.Barrier(children + 1)
    release = procs.context.Event()
    handles = [procs.start(report_identity, all_alive, release) for _ in range(children)]
    all_alive.wait(WAIT)  # from here until release, parent and children all run at once
    os_sees = {}
    for handle in handles:
        try:
            process = psutil.Process(handle.pid)
            os_sees[handle.pid] = process.status()
        except psutil.NoSuchProcess:
            os_sees[handle.pid] = "no such process"
    release.set()
    outcomes = [handle.join() for handle in handles]
    reported = [outcome.unwrap() for outcome in outcomes]
    pids = [pid for pid, _ in reported]
    parent = os.getpid()
    distinct = len({parent, *pids}) == children + 1
    matches_handles = pids == [handle.pid for handle in handles]
    os_knows_them = all(status != "no such process" for status in os_sees.values())
    claim.decide(
        distinct and matches_handles and os_knows_them,
        f"parent pid {parent}, children {pids} while all three ran at once: "
        f"{'all distinct' if distinct else 'NOT distinct'}; each child's own getpid() matches "
        f"the pid the parent started: {matches_handles}; the OS lists each child: "
        f"{os_knows_them} ({procs.start_method})",
        parent_pid=parent, children=reported, os_status=os_sees,
        child_parent_pids=[ppid for _, ppid in reported],
    )


# -- every process has a main thread ------------------------------------------------------

@pytest.mark.claim("process-has-main-thread")
def test_every_process_has_a_main_thread(procs: ProcessRunner, claim: ClaimCheck) -> None:
    def describe_threads() -> dict[str, Any]:
        """In the child: which thread runs the program, and what the OS counts."""
        main = threading.main_thread()
        me = psutil.Process()
        return {
            "pid": os.getpid(),
            "runs_in_main_thread": threading.current_thread() is main,
            "main_name": main.name,
            "main_alive": main.is_alive(),
            "main_native_id": getattr(main, "native_id", None),
            "os_thread_ids": sorted(t.id for t in me.threads()),
            "os_thread_count": me.num_threads(),
            "python_threads": [t.name for t in threading.enumerate()],
        }

    child = procs.run(describe_threads).unwrap()
    ok = child["runs_in_main_thread"] and child["main_alive"] and child["os_thread_count"] >= 1
    native = ""
    if NATIVE_IDS_ARE_OS_THREAD_IDS:
        ok = ok and child["main_native_id"] in child["os_thread_ids"]
        native = f", native id {child['main_native_id']} among the OS's thread ids"
    if sys.platform.startswith("linux"):
        # Linux numbers a process's first thread with the process's own id.
        ok = ok and child["main_native_id"] == child["pid"]
        native += f" (= the pid: {child['main_native_id'] == child['pid']})"
    claim.decide(
        ok,
        f"the child ran its program in {child['main_name']!r}: "
        f"{child['runs_in_main_thread']}{native}; the OS counts "
        f"{child['os_thread_count']} thread(s) ({procs.start_method})",
        child=child,
        this_process={"main_alive": threading.main_thread().is_alive(),
                      "main_native_id": getattr(threading.main_thread(), "native_id", None),
                      "pid": os.getpid()},
    )


# -- several threads live inside one process ------------------------------------------------

@pytest.mark.claim("threads-live-inside-one-process")
def test_threads_share_the_pid_and_the_os_counts_them(
    isolated_process: ProcessRunner, ipc_pipe: IpcPipe, claim: ClaimCheck
) -> None:
    def park_threads(end: PipeEnd, count: int) -> list[tuple[int, int, int]]:
        """In the child: start ``count`` threads that say who they are, then wait together."""
        end.send("counted?")
        if end.recv(timeout=WAIT) != "start":
            raise RuntimeError("unexpected word from the parent")
        seen: list[tuple[int, int, int]] = []
        parked = threading.Barrier(count + 1)
        release = threading.Event()

        def live() -> None:
            seen.append((os.getpid(), threading.get_ident(), threading.get_native_id()))
            parked.wait(WAIT)
            release.wait(WAIT)

        threads = [threading.Thread(target=live, name=f"resident-{i}") for i in range(count)]
        for thread in threads:
            thread.start()
        try:
            parked.wait(WAIT)
            end.send(list(seen))
            end.recv(timeout=WAIT)
        finally:
            release.set()
            for thread in threads:
                thread.join(WAIT)
        return seen

    count = 3
    child = isolated_process.start(park_threads, ipc_pipe.child, count)
    assert ipc_pipe.parent.recv(timeout=WAIT) == "counted?"
    process = psutil.Process(child.pid)
    # The child already runs a thread of the plugin (its lifeline): compare counts.
    before_count = process.num_threads()
    before_ids = {t.id for t in process.threads()}
    ipc_pipe.parent.send("start")
    seen = ipc_pipe.parent.recv(timeout=WAIT)
    during_count = process.num_threads()
    during_ids = {t.id for t in process.threads()}
    ipc_pipe.parent.send("release")
    outcome = child.join()
    outcome.unwrap()
    assert len(seen) == count, f"not every thread reported: {seen}"
    pids = {pid for pid, _, _ in seen}
    natives = [native for _, _, native in seen]
    idents = [ident for _, ident, _ in seen]
    share_pid = pids == {child.pid}
    own_ids = len(set(natives)) == count and len(set(idents)) == count
    counted = during_count - before_count == count
    ok = share_pid and own_ids and counted
    listed = "not compared on this OS"
    if NATIVE_IDS_ARE_OS_THREAD_IDS:
        new_ids = during_ids - before_ids
        listed_ok = set(natives) == new_ids
        listed = f"{listed_ok}"
        ok = ok and listed_ok
    claim.decide(
        ok,
        f"{count} threads all report pid {sorted(pids)} (the child's is {child.pid}), with "
        f"{len(set(natives))} distinct native ids; the OS counted {before_count} -> "
        f"{during_count} threads; their ids are the new ones the OS lists: {listed}",
        threads=seen, os_count_before=before_count, os_count_during=during_count,
        os_ids_before=sorted(before_ids), os_ids_during=sorted(during_ids),
        start_method=child.start_method,
    )


# -- one thread does one step at a time; several overlap waiting steps ---------------------

STEPS = ("get the ingredients", "mix the dough", "preheat the oven")
STEP_WAIT = 0.02  # each step mostly waits (for the shop, the mixer, the oven)


def _do_step(step: str) -> str:
    time.sleep(STEP_WAIT)
    return step


def _do_all_steps() -> list[str]:
    return [_do_step(step) for step in STEPS]


@pytest.mark.claim("threads-overlap-waiting-steps")
def test_several_threads_overlap_waiting_steps(
    sibling_thread: ThreadRunner, claim: ClaimCheck
) -> None:
    def one_thread() -> None:
        done = sibling_thread.start(_do_all_steps).join().unwrap()
        assert done == list(STEPS)

    def one_thread_per_step() -> None:
        handles = [sibling_thread.start(_do_step, step) for step in STEPS]
        done = [handle.join().unwrap() for handle in handles]
        assert done == list(STEPS)

    claim.compare(
        stats.timed(one_thread), stats.timed(one_thread_per_step),
        a_label=f"{len(STEPS)} steps in one thread",
        b_label="one thread per step",
        budget=0.8, min_pairs=6,
        steps=list(STEPS), step_wait_s=STEP_WAIT,
    )
