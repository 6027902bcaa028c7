"""The ``threads(n)`` marker: its arguments, checked, and its time limit.

The fan-out itself is ``parallel.fan_out``; this module only reads the marker.
"""

from __future__ import annotations

from typing import Any

import pytest

from ..options import THREADS_MARKER as MARKER
from ..settings import resolve


def thread_count(marker: Any, where: str) -> int:
    """The ``n`` of ``@pytest.mark.threads(n)``, validated; ValueError says what is wrong."""
    args = tuple(getattr(marker, "args", ()))
    kwargs = dict(getattr(marker, "kwargs", {}) or {})
    unknown = sorted(set(kwargs) - {"n", "timeout"})
    if unknown:
        raise ValueError(
            f"unknown argument {unknown[0]!r} in marker @pytest.mark.{MARKER} on {where}; "
            f"it takes the number of threads and timeout=SECONDS"
        )
    if "n" in kwargs:
        args = (kwargs["n"], *args)
    if len(args) != 1:
        raise ValueError(
            f"marker @pytest.mark.{MARKER} on {where} needs exactly one number of threads, "
            f"e.g. @pytest.mark.{MARKER}(4); got {len(args)} positional arguments"
        )
    n = args[0]
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(
            f"invalid number of threads in marker @pytest.mark.{MARKER} on {where}: {n!r}; "
            f"write a whole number of at least 1"
        )
    return n


def thread_timeout(item: pytest.Item, marker: pytest.Mark) -> float:
    """The marker's time limit for the fan-out, or the run's; ValueError names the test."""
    try:
        return resolve(item.config, marker=marker).timeout
    except ValueError as exc:
        raise ValueError(f"{exc} (on {item.nodeid})") from None
