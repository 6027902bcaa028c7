"""Facts about this interpreter and OS, gathered once and used everywhere.

Expectations of the conformance pack, the ``requires`` marker, skips and the report
header all read the same object, so they cannot disagree about what this runtime is.
``gil_enabled`` is the GIL at start; what it is later, after an import re-enabled it on a
free-threaded build, is :mod:`pytest_procthread.gil`'s.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import platform
import sys
from dataclasses import asdict, dataclass
from typing import Any, Optional

from . import gil


def _platform_default_start_method() -> str:
    """The start method multiprocessing uses when nobody chose one (CPython's own rule)."""
    # Reading the default context's name does not fix it, unlike get_start_method().
    try:
        ctx: Any = multiprocessing.context._default_context
        chosen = ctx._actual_context
        if chosen is not None:
            return str(chosen.get_start_method())
        return str(ctx._default_context.get_start_method())
    except AttributeError:
        pass
    if sys.platform in ("win32", "darwin"):
        return "spawn"
    if sys.version_info >= (3, 14):
        return "forkserver"
    return "fork"


def _cgroup_cpu_limit() -> Optional[float]:
    """CPUs allowed by a cgroup quota (v2 ``cpu.max`` or v1 ``cfs_quota_us``), if any."""
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
        if quota != "max":
            return int(quota) / int(period)
        return None
    except (OSError, ValueError):
        pass
    try:
        with open("/sys/fs/cgroup/cpu/cpu.cfs_quota_us") as f:
            quota_us = int(f.read())
        with open("/sys/fs/cgroup/cpu/cpu.cfs_period_us") as f:
            period_us = int(f.read())
        if quota_us > 0 and period_us > 0:
            return quota_us / period_us
    except (OSError, ValueError):
        pass
    return None


def usable_cpus() -> int:
    """CPUs this process may really use: affinity mask, then cgroup quota, at least 1."""
    count: Optional[int] = None
    if hasattr(os, "process_cpu_count"):
        count = os.process_cpu_count()
    elif hasattr(os, "sched_getaffinity"):
        count = len(os.sched_getaffinity(0))
    if count is None:
        count = os.cpu_count() or 1
    limit = _cgroup_cpu_limit()
    if limit is not None:
        count = min(count, max(1, int(limit)))
    return max(1, count)


@dataclass(frozen=True)
class RuntimeFacts:
    """What this runtime is: the inputs of every expectation and requirement."""

    os: str  # "linux", "darwin", "win32", ...
    system: str  # "Linux", "Darwin", "Windows"
    machine: str
    implementation: str  # "cpython", "pypy"
    python_version: tuple[int, int, int]
    python_version_text: str
    free_threaded_build: bool
    gil_enabled: bool  # at start: when the plugin was loaded (see gil.AT_START)
    start_methods: tuple[str, ...]
    default_start_method: str
    usable_cpus: int
    logical_cpus: int
    has_fork: bool

    @property
    def python(self) -> str:
        """Short label such as ``cpython-3.13t`` or ``pypy-3.9``."""
        major, minor, _ = self.python_version
        suffix = "t" if self.free_threaded_build else ""
        return f"{self.implementation}-{major}.{minor}{suffix}"

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["python_version"] = list(self.python_version)
        data["start_methods"] = list(self.start_methods)
        data["python"] = self.python
        return data


@functools.cache
def runtime_facts() -> RuntimeFacts:
    """Gather the facts once per process."""
    methods = tuple(multiprocessing.get_all_start_methods())
    return RuntimeFacts(
        os=sys.platform,
        system=platform.system(),
        machine=platform.machine(),
        implementation=sys.implementation.name,
        python_version=(sys.version_info[0], sys.version_info[1], sys.version_info[2]),
        python_version_text=platform.python_version(),
        free_threaded_build=gil.free_threaded_build(),
        gil_enabled=gil.AT_START,
        start_methods=methods,
        default_start_method=_platform_default_start_method(),
        usable_cpus=usable_cpus(),
        logical_cpus=os.cpu_count() or 1,
        has_fork="fork" in methods,
    )
