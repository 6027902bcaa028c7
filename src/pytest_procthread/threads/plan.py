"""How many threads and iterations each test runs in, from the marker, the command line
and the ini file; every value checked, every bad one named with where it came from.

The marker overrides the run: ``threads(n)`` or ``threads("auto")`` sets the count for
its test, ``threads(max=m)`` caps the run's count for it, ``threads(1)`` runs it once;
``iterations=k`` on the marker overrides ``--procthread-iterations``. ``auto`` is the
number of CPUs this process may use (affinity mask and cgroup quota), as
``requires(cpus=)`` counts them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

import pytest

from ..options import (
    ITERATIONS_INI,
    ITERATIONS_OPTION,
    SKIP_UNSAFE_OPTION,
    SWITCH_INTERVAL_INI,
    SWITCH_INTERVAL_OPTION,
    THREADS_INI,
    THREADS_MARKER,
    THREADS_OPTION,
    UNSAFE_FIXTURES_INI,
    UNSAFE_FUNCTIONS_INI,
)
from ..runtime import usable_cpus
from ..settings import resolve

MAX_THREADS = 1024
MAX_ITERATIONS = 1_000_000
DEFAULT_SWITCH_INTERVAL = 1e-6
_MARKER_KEYS = ("n", "iterations", "max", "timeout")


def parse_count(value: Any, where: str, text: bool = False) -> int:
    """A number of threads (1 to MAX_THREADS) or ``"auto"``; ValueError names ``where``.
    ``text``: the value is a command line's or ini file's text, which may spell a number."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return usable_cpus()
    return _whole(value, where, "number of threads", MAX_THREADS, "or 'auto'", text)


def parse_iterations(value: Any, where: str, text: bool = False) -> int:
    """A number of iterations, 1 to MAX_ITERATIONS."""
    return _whole(value, where, "number of iterations", MAX_ITERATIONS, "", text)


def _whole(value: Any, where: str, what: str, most: int, also: str, text: bool) -> int:
    number: Any = value
    if text and isinstance(value, str):
        try:
            number = int(value.strip())
        except ValueError:
            number = value
    if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= most:
        hint = f"a whole number from 1 to {most}" + (f" {also}" if also else "")
        raise ValueError(f"invalid {what} in {where}: {value!r}; write {hint}")
    return number


def parse_switch_interval(value: Any, where: str) -> Optional[float]:
    """Seconds for ``sys.setswitchinterval`` during a fan-out, or None for ``off``."""
    text = str(value).strip().lower()
    if text in ("off", "none", "no"):
        return None
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(
            f"invalid switch interval in {where}: {value!r}; write a positive number of "
            f"seconds (e.g. 1e-6) or 'off' to leave the interpreter's interval alone"
        )
    return seconds


@dataclass(frozen=True)
class FanOut:
    """How a body fans out; plain values, so it travels to an isolated child."""

    threads: int
    iterations: int = 1
    timeout: float = 60.0
    switch_interval: Optional[float] = None  # None: leave sys.getswitchinterval() alone
    label: str = "test"
    # Exception types a failure may have and still be the test's expected outcome
    # (``xfail(raises=...)``): if every failure is one, the first is raised as it is.
    expected: tuple[type[BaseException], ...] = ()


@dataclass(frozen=True)
class RunSettings:
    """The run-wide settings of the thread fan-out."""

    threads: int
    iterations: int
    switch_interval: Optional[float]
    skip_unsafe: bool
    unsafe_fixtures: frozenset[str]
    unsafe_functions: frozenset[str]
    explicit: bool  # --procthread-threads or the ini key asked for more than one thread

    @classmethod
    def read(cls, config: pytest.Config) -> RunSettings:
        """From the command line, else the ini file; ValueError names the bad one."""
        threads, where = _option_or_ini(config, THREADS_OPTION, THREADS_INI)
        iterations, iter_where = _option_or_ini(config, ITERATIONS_OPTION, ITERATIONS_INI)
        interval, interval_where = _option_or_ini(
            config, SWITCH_INTERVAL_OPTION, SWITCH_INTERVAL_INI
        )
        count = 1 if threads is None else parse_count(threads, where, text=True)
        return cls(
            threads=count,
            iterations=(1 if iterations is None
                        else parse_iterations(iterations, iter_where, text=True)),
            switch_interval=(DEFAULT_SWITCH_INTERVAL if interval is None
                             else parse_switch_interval(interval, interval_where)),
            skip_unsafe=bool(config.getoption(_dest(SKIP_UNSAFE_OPTION), False)),
            unsafe_fixtures=frozenset(config.getini(UNSAFE_FIXTURES_INI) or ()),
            unsafe_functions=frozenset(config.getini(UNSAFE_FUNCTIONS_INI) or ()),
            explicit=count > 1,
        )


def _dest(option: str) -> str:
    return option.lstrip("-").replace("-", "_")


def _option_or_ini(config: pytest.Config, option: str, ini: str) -> tuple[Any, str]:
    value = config.getoption(_dest(option), None)
    if value not in (None, ""):
        return value, f"option {option}"
    value = config.getini(ini)
    if value not in (None, ""):
        return value, f"ini key {ini}"
    return None, ""


@dataclass(frozen=True)
class Asked:
    """What one test is asked to run as: threads, iterations, and whether a marker said."""

    threads: int
    iterations: int
    marked: bool
    timeout: float


def marker_values(marker: Any, where: str) -> dict[str, Any]:
    """The marker's arguments by name, checked; ValueError says what is wrong."""
    args = tuple(getattr(marker, "args", ()))
    kwargs = dict(getattr(marker, "kwargs", {}) or {})
    unknown = sorted(set(kwargs) - set(_MARKER_KEYS))
    marker_where = f"marker @pytest.mark.{THREADS_MARKER} on {where}"
    if unknown:
        raise ValueError(
            f"unknown argument {unknown[0]!r} in {marker_where}; it takes the number of "
            f"threads (or 'auto'), iterations=K, max=M and timeout=SECONDS"
        )
    if len(args) > 1 or (args and "n" in kwargs):
        raise ValueError(
            f"{marker_where} takes one number of threads, e.g. "
            f"@pytest.mark.{THREADS_MARKER}(4); got {len(args) + ('n' in kwargs)}"
        )
    if args:
        kwargs["n"] = args[0]
    if not kwargs:
        raise ValueError(
            f"{marker_where} needs a number of threads, e.g. @pytest.mark.{THREADS_MARKER}(4) "
            f"or @pytest.mark.{THREADS_MARKER}('auto'), or max=M or iterations=K"
        )
    values: dict[str, Any] = {}
    if "n" in kwargs:
        values["n"] = parse_count(kwargs["n"], marker_where)
    if "max" in kwargs:
        values["max"] = parse_count(kwargs["max"], f"{marker_where} (max=)")
    if "iterations" in kwargs:
        values["iterations"] = parse_iterations(kwargs["iterations"], marker_where)
    return values


def asked(item: pytest.Item, run: RunSettings) -> Asked:
    """The threads and iterations of ``item``: its marker over the run's settings."""
    marker = item.get_closest_marker(THREADS_MARKER)
    values = marker_values(marker, item.nodeid) if marker is not None else {}
    threads = values.get("n", run.threads)
    if "max" in values:
        threads = min(threads, values["max"])
    try:
        timeout = resolve(item.config, marker=marker).timeout
    except ValueError as exc:
        raise ValueError(f"{exc} (on {item.nodeid})") from None
    return Asked(threads=threads, iterations=values.get("iterations", run.iterations),
                 marked=marker is not None, timeout=timeout)


__all__ = ["Asked", "FanOut", "RunSettings", "asked", "marker_values", "parse_count",
           "parse_iterations", "parse_switch_interval"]
