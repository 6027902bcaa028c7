"""``runtime_facts()``: what this interpreter and OS are, consistent with themselves."""

from __future__ import annotations

import dataclasses
import io
import multiprocessing
import os
import platform
import sys
import sysconfig
from typing import Any, Callable, Optional

import pytest

from pytest_procthread import gil, runtime
from pytest_procthread.runtime import RuntimeFacts, runtime_facts


@pytest.fixture
def facts() -> RuntimeFacts:
    return runtime_facts()


def test_runtime_facts_is_gathered_once(facts: RuntimeFacts) -> None:
    assert runtime_facts() is facts


def test_interpreter_fields(facts: RuntimeFacts) -> None:
    assert facts.implementation == sys.implementation.name
    assert facts.python_version == tuple(sys.version_info[:3])
    assert facts.python_version_text == platform.python_version()
    assert facts.os == sys.platform
    assert facts.system == platform.system()
    assert facts.machine == platform.machine()


def test_python_label(facts: RuntimeFacts) -> None:
    suffix = "t" if facts.free_threaded_build else ""
    expected = f"{sys.implementation.name}-{sys.version_info[0]}.{sys.version_info[1]}{suffix}"
    assert facts.python == expected


def test_start_methods(facts: RuntimeFacts) -> None:
    assert facts.start_methods == tuple(multiprocessing.get_all_start_methods())
    assert facts.has_fork == ("fork" in facts.start_methods)
    assert facts.default_start_method in facts.start_methods


def test_default_start_method_follows_multiprocessing(facts: RuntimeFacts) -> None:
    chosen = multiprocessing.get_start_method(allow_none=True)  # does not fix the default
    if chosen is not None:
        expected = chosen
    elif sys.platform in ("win32", "darwin"):
        expected = "spawn"
    elif sys.version_info >= (3, 14):
        expected = "forkserver"
    else:
        expected = "fork"
    assert runtime._platform_default_start_method() == expected
    # Reading it did not fix it.
    assert multiprocessing.get_start_method(allow_none=True) == chosen


def test_cpu_counts(facts: RuntimeFacts) -> None:
    logical = os.cpu_count() or 1
    assert facts.logical_cpus == logical
    assert 1 <= facts.usable_cpus <= logical
    if hasattr(os, "sched_getaffinity"):
        assert facts.usable_cpus <= len(os.sched_getaffinity(0))


def test_gil_flags(facts: RuntimeFacts) -> None:
    assert facts.free_threaded_build == bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    # The GIL at start, when the plugin was loaded; an import may re-enable it since
    # (see pytest_procthread.gil and tests/test_gil_live.py).
    assert facts.gil_enabled == gil.AT_START
    if not facts.free_threaded_build:
        is_gil_enabled = getattr(sys, "_is_gil_enabled", None)
        assert is_gil_enabled is None or is_gil_enabled()
        assert facts.gil_enabled is True


def test_facts_are_frozen_and_serialisable(facts: RuntimeFacts) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        facts.usable_cpus = 99  # type: ignore[misc]
    data = facts.as_dict()
    assert data["python"] == facts.python
    assert data["python_version"] == list(facts.python_version)
    assert data["start_methods"] == list(facts.start_methods)
    assert {f.name for f in dataclasses.fields(RuntimeFacts)} <= set(data)
    import json

    assert json.loads(json.dumps(data)) == data


# -- cgroup quota --------------------------------------------------------------------------

V2 = "/sys/fs/cgroup/cpu.max"
V1_QUOTA = "/sys/fs/cgroup/cpu/cpu.cfs_quota_us"
V1_PERIOD = "/sys/fs/cgroup/cpu/cpu.cfs_period_us"


def fake_files(files: dict[str, str]) -> Callable[..., Any]:
    def fake_open(path: str, *args: Any, **kwargs: Any) -> io.StringIO:
        if path in files:
            return io.StringIO(files[path])
        raise FileNotFoundError(2, "No such file or directory", path)

    return fake_open


@pytest.mark.parametrize(
    ("files", "limit"),
    [
        ({}, None),
        ({V2: "max 100000\n"}, None),
        ({V2: "200000 100000\n"}, 2.0),
        ({V2: "150000 100000\n"}, 1.5),
        ({V2: "50000 100000\n"}, 0.5),
        ({V1_QUOTA: "300000\n", V1_PERIOD: "100000\n"}, 3.0),
        ({V1_QUOTA: "-1\n", V1_PERIOD: "100000\n"}, None),
        ({V1_QUOTA: "300000\n"}, None),
        # An unreadable v2 file falls back to v1.
        ({V2: "garbage", V1_QUOTA: "100000\n", V1_PERIOD: "50000\n"}, 2.0),
        ({V2: "", V1_QUOTA: "x", V1_PERIOD: "100000"}, None),
    ],
)
def test_cgroup_cpu_limit(
    monkeypatch: pytest.MonkeyPatch, files: dict[str, str], limit: Optional[float]
) -> None:
    monkeypatch.setattr(runtime, "open", fake_files(files), raising=False)
    assert runtime._cgroup_cpu_limit() == limit


@pytest.mark.parametrize(
    ("files", "affinity", "usable"),
    [
        ({}, 8, 8),
        ({V2: "200000 100000"}, 8, 2),
        ({V2: "200000 100000"}, 1, 1),
        ({V2: "50000 100000"}, 8, 1),  # less than one CPU is still one
        ({V2: "max 100000"}, 3, 3),
    ],
)
def test_usable_cpus_takes_the_smaller_of_affinity_and_quota(
    monkeypatch: pytest.MonkeyPatch, files: dict[str, str], affinity: int, usable: int
) -> None:
    monkeypatch.setattr(runtime, "open", fake_files(files), raising=False)
    monkeypatch.delattr(os, "process_cpu_count", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(affinity)),
                        raising=False)
    assert runtime.usable_cpus() == usable
