"""Children that resist being stopped are stopped all the same at their timeout: one
that ignores SIGTERM, one stuck in C code that holds the GIL (issue 17)."""

from __future__ import annotations

import psutil
import pytest

from _procs import wait_ended
from pytest_procthread.process import ProcessRunner

pytestmark = pytest.mark.timeout(120)
METHODS = ["fork", "forkserver", "spawn"]


def ignore_sigterm_and_hang() -> None:
    import signal
    import time

    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(600)


def catastrophic_regex() -> None:
    import re

    re.match(r"(a+)+$", "a" * 64 + "b")  # never returns, and never checks a signal


@pytest.mark.parametrize("target", [ignore_sigterm_and_hang, catastrophic_regex],
                         ids=["ignores-sigterm", "holds-the-gil"])
@pytest.mark.parametrize("method", METHODS)
def test_a_stubborn_child_is_stopped_at_its_timeout(
    isolated_process: ProcessRunner, method: str, target: object
) -> None:
    runner = isolated_process.options(start_method=method, timeout=30)
    handle = runner.start(target)  # type: ignore[arg-type]
    outcome = handle.join(timeout=1.0)
    assert outcome.timed_out
    try:
        proc = psutil.Process(handle.pid)
    except psutil.NoSuchProcess:
        return  # reaped: gone
    assert wait_ended(proc, 0)
