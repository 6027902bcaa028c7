"""Thousands of children in one test leave this process as they found it: descriptors,
threads, resident memory (within 10 %) and temporary files."""

from __future__ import annotations

import gc
import os
import tempfile
import threading

import psutil
import pytest

from pytest_procthread import ProcessRunner

pytestmark = pytest.mark.timeout(600)


def _double(x: int) -> int:
    return 2 * x


def _state() -> tuple[int, set[str], int, set[str]]:
    gc.collect()
    me = psutil.Process()
    # The pack's machine locks are another test's, under -n 2 (claims.machine).
    temporary = {name for name in os.listdir(tempfile.gettempdir())
                 if name.startswith("procthread-") and not name.startswith("procthread-machine-")}
    return (me.num_fds(), {t.name for t in threading.enumerate()}, me.memory_info().rss,
            temporary)


@pytest.mark.parametrize(("method", "count"), [("fork", 3000), ("spawn", 300)])
def test_many_children_leave_nothing_behind(
    isolated_process: ProcessRunner, method: str, count: int
) -> None:
    runner = isolated_process.options(start_method=method)
    # The first children start what lives for the whole session (the warden, a resource
    # tracker, the imports of the start path): counted before, not as a leak.
    for i in range(20):
        assert runner.run(_double, i).unwrap() == 2 * i
    fds, threads, rss, temporary = _state()
    for i in range(count):
        assert runner.run(_double, i).unwrap() == 2 * i
    fds_after, threads_after, rss_after, temporary_after = _state()
    print(f"{count} {method} children: fds {fds} -> {fds_after}, threads {len(threads)} -> "
          f"{len(threads_after)}, RSS {rss / 2**20:.1f} -> {rss_after / 2**20:.1f} MiB")
    assert fds_after == fds
    assert threads_after == threads
    assert temporary_after == temporary
    assert rss_after <= rss * 1.10, f"RSS {rss / 2**20:.1f} -> {rss_after / 2**20:.1f} MiB"
