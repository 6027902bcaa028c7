"""Pinning threads to CPUs, for the pack's checks that time a ping-pong.

Both ends of a ping-pong on one CPU: waking an idle virtual CPU costs tens of microseconds
here, which would swamp the difference a check is after.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Optional

import psutil


def affinity() -> Optional[set[int]]:
    """The CPUs the calling thread may run on, where the OS lets a thread choose (Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    if hasattr(os, "sched_getaffinity"):
        return set(os.sched_getaffinity(0))
    return set(psutil.Process(threading.get_native_id()).cpu_affinity())  # PyPy


def pin(cpus: Optional[set[int]]) -> None:
    """Keep the calling thread (not its whole process) on ``cpus``; None leaves it free."""
    if cpus is None:
        return
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cpus)  # 0: the calling thread, on Linux
    else:
        psutil.Process(threading.get_native_id()).cpu_affinity(sorted(cpus))
