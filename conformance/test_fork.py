"""Beyond the documents: what fork() copies, and which start method this interpreter uses.

The fork checks are parametrised over every start method like the rest of the pack; under
spawn and forkserver the child is a fresh interpreter rather than a copy of this process,
so there the claims do not apply and come out unsupported without starting anything.
"""

from __future__ import annotations

import multiprocessing
import threading
from typing import Any

import pytest

from pytest_procthread.claims.verdicts import ClaimCheck
from pytest_procthread.process import ProcessRunner
from pytest_procthread.runtime import runtime_facts
from pytest_procthread.thread import ThreadRunner

EXTRA_THREADS = 3
LOCK_WAIT = 0.25  # how long the child tries for the held lock
WAIT = 10.0


def _only_under_fork(procs: ProcessRunner, claim: ClaimCheck) -> bool:
    if procs.start_method != "fork":
        claim.unsupported(
            f"a {procs.start_method} child is a fresh interpreter, not a fork() of this "
            f"process; the claim is about fork"
        )
        return False
    return True


def _park(parked: threading.Barrier, release: threading.Event) -> None:
    parked.wait(WAIT)
    release.wait(WAIT)


def _thread_census() -> dict[str, Any]:
    """In the child: the threads Python knows of, and the threads the OS counts."""
    import psutil

    from pytest_procthread.process import helper_threads_here

    names = [t.name for t in threading.enumerate()]
    os_threads = psutil.Process().num_threads()
    helpers = helper_threads_here()
    return {
        "python_threads": names,
        "active_count": threading.active_count(),
        "os_threads": os_threads,
        "plugin_helper_threads": helpers,
        # Every Python thread but the main one was started here, after the fork, and so
        # were the plugin's helper threads (its lifeline watcher, which threading does not
        # list); the rest of the OS threads came with the fork.
        "os_threads_inherited": os_threads - (threading.active_count() - 1) - helpers,
        "running_in": threading.current_thread().name,
    }


@pytest.mark.claim("fork-copies-calling-thread-only")
def test_fork_copies_only_the_calling_thread(
    procs: ProcessRunner, sibling_thread: ThreadRunner, claim: ClaimCheck
) -> None:
    if not _only_under_fork(procs, claim):
        return
    import psutil

    parked, release = threading.Barrier(EXTRA_THREADS + 1), threading.Event()
    extra = [sibling_thread.start(_park, parked, release) for _ in range(EXTRA_THREADS)]
    try:
        parked.wait(WAIT)
        parent_os_threads = psutil.Process().num_threads()
        parent_python_threads = threading.active_count()
        census = procs.run(_thread_census).unwrap()
    finally:
        release.set()
        for thread in extra:
            thread.join(WAIT).unwrap()
    claim.decide(
        census["os_threads_inherited"] == 1,
        f"the parent ran {parent_python_threads} Python threads ({parent_os_threads} OS "
        f"threads) at fork time; the child inherited {census['os_threads_inherited']} "
        f"(OS threads {census['os_threads']}, of which started in the child: "
        f"{census['active_count'] - 1} Python threads and {census['plugin_helper_threads']} "
        f"of the plugin's)",
        parent_os_threads=parent_os_threads, parent_python_threads=parent_python_threads,
        **census,
    )


def _hold(lock: Any, holding: threading.Event, release: threading.Event) -> None:
    with lock:
        holding.set()
        release.wait(WAIT)


def _try_locks(held: Any, free: Any) -> dict[str, bool]:
    """In the fork child: the lock another parent thread held, and one nobody held."""
    got_held = held.acquire(timeout=LOCK_WAIT)
    got_free = free.acquire(timeout=LOCK_WAIT)
    return {"got_held_lock": got_held, "got_free_lock": got_free}


@pytest.mark.claim("fork-keeps-held-locks-held")
def test_a_lock_held_at_fork_stays_held(
    procs: ProcessRunner, sibling_thread: ThreadRunner, claim: ClaimCheck
) -> None:
    if not _only_under_fork(procs, claim):
        return
    held, free = threading.Lock(), threading.Lock()
    holding, release = threading.Event(), threading.Event()
    holder = sibling_thread.start(_hold, held, holding, release)
    try:
        assert holding.wait(WAIT), "the holder thread never took the lock"
        tried = procs.run(_try_locks, held, free).unwrap()
    finally:
        release.set()
        holder.join(WAIT).unwrap()
    parent_can_take_it = held.acquire(timeout=WAIT)
    if parent_can_take_it:
        held.release()
    assert tried["got_free_lock"], "the child could not even take a lock that was free"
    claim.decide(
        not tried["got_held_lock"],
        f"a lock held by another parent thread at fork time: the child's acquire("
        f"timeout={LOCK_WAIT}) {'succeeded' if tried['got_held_lock'] else 'failed'}; a lock "
        f"free at fork time it took at once; the parent took the first lock again once its "
        f"holder released it: {parent_can_take_it}",
        parent_took_it_after_release=parent_can_take_it, **tried,
    )


@pytest.mark.claim("default-start-method")
def test_default_start_method(claim: ClaimCheck) -> None:
    facts = runtime_facts()
    fixed = multiprocessing.get_start_method(allow_none=True)  # None: nobody chose one yet
    claim.holds(
        f"default start method here: {facts.default_start_method} (observational: a fact "
        f"of {facts.python} on {facts.system}, reported, never wrong); available: "
        f"{', '.join(facts.start_methods)}",
        default_start_method=facts.default_start_method, start_methods=facts.start_methods,
        fixed_by_this_process=fixed,
    )
