"""Waiting for processes to end, shared by the tests of crashes, timeouts and orphans."""

from __future__ import annotations

import os
import select
import time

import psutil


def ended(proc: psutil.Process) -> bool:
    """Whether ``proc`` has ended. A zombie has: this machine's init may reap it late."""
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def wait_ended(proc: psutil.Process, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for ``proc`` to end, reaped or not; True if it did.

    psutil's own wait() returns for someone else's child only once it is reaped, which an
    init that reaps late (or never, as in many containers) delays; a pidfd becomes
    readable the moment the process ends.
    """
    if ended(proc):
        return True
    if hasattr(os, "pidfd_open"):
        try:
            pidfd = os.pidfd_open(proc.pid)
        except OSError:
            return ended(proc)
        try:
            if not proc.is_running():  # the pid now names another process
                return True
            return bool(select.select([pidfd], [], [], timeout)[0]) or ended(proc)
        finally:
            os.close(pidfd)
    try:
        proc.wait(timeout)
        return True
    except psutil.TimeoutExpired:
        return ended(proc)


def still_running(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait up to ``timeout`` for every process to end; kill and return those that did not."""
    deadline = time.monotonic() + timeout
    running = [p for p in procs if not wait_ended(p, max(0.0, deadline - time.monotonic()))]
    for proc in running:  # leave nothing behind, even when failing
        try:
            proc.kill()
        except psutil.Error:
            pass
    return running
