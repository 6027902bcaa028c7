"""One place that resolves settings: per call, then marker, then command line, then ini.

Every bad value is reported with where it came from, so a user knows which line to fix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

from .runtime import runtime_facts

DEFAULT_TIMEOUT = 60.0
START_METHOD_OPTION = "--procthread-start-method"
TIMEOUT_OPTION = "--procthread-timeout"
START_METHOD_INI = "procthread_start_method"
TIMEOUT_INI = "procthread_timeout"


@dataclass(frozen=True)
class Settings:
    start_method: str
    timeout: float


def validate_timeout(value: Any, where: str) -> float:
    """A positive number of seconds, or a UsageError-grade message naming ``where``."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"invalid timeout in {where}: {value!r} is not a number of seconds "
            f"(write for example 30 or 2.5)"
        ) from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(
            f"invalid timeout in {where}: {value!r}; it must be a positive, finite number "
            f"of seconds (every wait here is bounded)"
        )
    return seconds


def validate_start_method(value: Any, where: str) -> str:
    """A start method this platform has; the message lists the ones it does have."""
    facts = runtime_facts()
    method = str(value).strip().lower()
    if method in ("", "default"):
        return facts.default_start_method
    if method not in ("fork", "forkserver", "spawn"):
        raise ValueError(
            f"invalid start method in {where}: {value!r}; choose one of "
            f"{', '.join(facts.start_methods)} (or 'default')"
        )
    if method not in facts.start_methods:
        raise ValueError(
            f"start method {method!r} from {where} is not available on {facts.system}; "
            f"this platform has {', '.join(facts.start_methods)}"
        )
    return method


def _first(*pairs: tuple[Any, str]) -> Optional[tuple[Any, str]]:
    for value, where in pairs:
        if value is not None and value != "":
            return value, where
    return None


def resolve(
    config: Any = None,
    *,
    start_method: Optional[str] = None,
    timeout: Optional[float] = None,
    marker: Any = None,
    where_call: str = "the call",
) -> Settings:
    """Resolve both settings. ``config`` is pytest's Config or None (library use)."""
    marker_kwargs = dict(getattr(marker, "kwargs", {}) or {})
    marker_where = f"marker @pytest.mark.{getattr(marker, 'name', '?')}"
    cli_method = cli_timeout = ini_method = ini_timeout = None
    if config is not None:
        cli_method = config.getoption("procthread_start_method", None)
        cli_timeout = config.getoption("procthread_timeout", None)
        ini_method = config.getini(START_METHOD_INI) or None
        ini_timeout = config.getini(TIMEOUT_INI) or None

    method_src = _first(
        (start_method, where_call),
        (marker_kwargs.get("start_method"), marker_where),
        (cli_method, f"option {START_METHOD_OPTION}"),
        (ini_method, f"ini key {START_METHOD_INI}"),
    )
    timeout_src = _first(
        (timeout, where_call),
        (marker_kwargs.get("timeout"), marker_where),
        (cli_timeout, f"option {TIMEOUT_OPTION}"),
        (ini_timeout, f"ini key {TIMEOUT_INI}"),
    )
    method = (
        validate_start_method(*method_src)
        if method_src
        else runtime_facts().default_start_method
    )
    seconds = validate_timeout(*timeout_src) if timeout_src else DEFAULT_TIMEOUT
    return Settings(start_method=method, timeout=seconds)
