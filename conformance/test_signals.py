"""Beyond the documents: which thread runs a Python signal handler.

The check runs in a child, so that its handler and its signal never touch the test process.
The start method does not change how a process handles signals: it runs under one method,
fork where the platform has it (cheapest), else spawn.
"""

from __future__ import annotations

import multiprocessing
import select
import signal
import socket
import threading
import time
from typing import Any

import pytest

from pytest_procthread.claims.verdicts import ClaimCheck
from pytest_procthread.process import ProcessRunner

ONE_METHOD = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
WAIT = 10.0


def _where_handlers_run() -> dict[str, Any]:
    """In the child: send SIGUSR1 to a running worker thread while the main thread waits,
    and record which thread ran the Python handler."""
    ran_in: list[str] = []
    ran = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        ran_in.append(threading.current_thread().name)
        ran.set()

    # The C-level handler writes to the wakeup socket from whichever thread took the
    # signal; that is what wakes the main thread from its wait.
    wake_r, wake_w = socket.socketpair()
    wake_r.setblocking(False)
    wake_w.setblocking(False)
    previous_wakeup = signal.set_wakeup_fd(wake_w.fileno())
    previous_handler = signal.signal(signal.SIGUSR1, handler)

    def worker() -> None:
        # Directed at this very thread, while it runs Python code.
        signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)
        deadline = time.monotonic() + WAIT
        while not ran.is_set() and time.monotonic() < deadline:
            pass  # keep running Python code: the handler could run here, if it may

    try:
        target = threading.Thread(target=worker, name="signalled-worker")
        target.start()
        woke = bool(select.select([wake_r], [], [], WAIT)[0])  # the main thread waits
        deadline = time.monotonic() + WAIT
        while not ran.is_set() and time.monotonic() < deadline:
            pass  # back in Python code: the pending handler runs here
        target.join(WAIT)
    finally:
        signal.signal(signal.SIGUSR1, previous_handler)
        signal.set_wakeup_fd(previous_wakeup)
        wake_r.close()
        wake_w.close()
    return {
        "signal_sent_to": "signalled-worker",
        "handler_ran_in": ran_in,
        "main_thread": threading.main_thread().name,
        "main_woken_by_wakeup_fd": woke,
    }


@pytest.mark.claim("signals-run-on-main-thread")
@pytest.mark.parametrize("start_method", [ONE_METHOD])
def test_signal_handlers_run_on_the_main_thread(procs: ProcessRunner, claim: ClaimCheck) -> None:
    if not hasattr(signal, "SIGUSR1") or not hasattr(signal, "pthread_kill"):
        claim.unsupported("no POSIX signals here (SIGUSR1, pthread_kill)")
        return
    seen = procs.run(_where_handlers_run).unwrap()
    ran_in = seen["handler_ran_in"]
    claim.decide(
        ran_in == [seen["main_thread"]],
        f"SIGUSR1 sent to a running worker thread (pthread_kill) while the main thread "
        f"waited: the Python handler ran in {', '.join(ran_in) or 'no thread'}",
        **seen,
    )
