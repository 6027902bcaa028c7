"""One place that resolves settings: per call, then marker, then command line, then ini.

Every bad value is reported with where it came from, so a user knows which line to fix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

from .options import START_METHOD_INI, TIMEOUT_INI
from .runtime import runtime_facts

DEFAULT_TIMEOUT = 60.0


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


_NO_VALUE = (None, "")


def _source(
    given: Any, where_call: str, marker_kwargs: Any, key: str, config: Any, option: str,
    ini: str,
) -> tuple[Any, str]:
    """The first of call, marker, command line, ini that sets ``key``, and where it came
    from ("" for the marker); ``(None, "")`` when none does.

    Runs for every child and every test, so only the sources up to the first one set are
    read (a fork child's parent pays for every memory page it touches)."""
    if given not in _NO_VALUE:
        return given, where_call
    value = marker_kwargs.get(key)
    if value not in _NO_VALUE or config is None:
        return value, ""
    value = config.getoption(option, None)
    if value not in _NO_VALUE:
        return value, f"option --{option.replace('_', '-')}"
    return config.getini(ini), f"ini key {ini}"


def resolve(
    config: Any = None,
    *,
    start_method: Optional[str] = None,
    timeout: Optional[float] = None,
    marker: Any = None,
    where_call: str = "the call",
) -> Settings:
    """Resolve both settings. ``config`` is pytest's Config or None (library use)."""
    marker_kwargs = getattr(marker, "kwargs", None) or {}
    method, method_where = _source(
        start_method, where_call, marker_kwargs, "start_method", config,
        "procthread_start_method", START_METHOD_INI,
    )
    seconds, timeout_where = _source(
        timeout, where_call, marker_kwargs, "timeout", config, "procthread_timeout",
        TIMEOUT_INI,
    )
    return Settings(
        start_method=(
            runtime_facts().default_start_method if method in _NO_VALUE
            else validate_start_method(method, method_where or _marker_where(marker))
        ),
        timeout=(
            DEFAULT_TIMEOUT if seconds in _NO_VALUE
            else validate_timeout(seconds, timeout_where or _marker_where(marker))
        ),
    )


def _marker_where(marker: Any) -> str:
    return f"marker @pytest.mark.{getattr(marker, 'name', '?')}"
