"""The ``requires`` marker: skip, with a reason, where the runtime lacks what a test needs.

Decided from :func:`pytest_procthread.runtime.runtime_facts`, the same facts that the
conformance pack's expectations and the report header read; ``gil`` from the GIL as it
is when the test is decided (a :class:`~pytest_procthread.gil.GilState`), since an import
may re-enable it on a free-threaded build after the facts were gathered.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from ..gil import GilState
from ..options import REQUIRES_MARKER as MARKER
from ..runtime import RuntimeFacts


def _names(value: Any, what: str, where: str) -> tuple[str, ...]:
    values = (value,) if isinstance(value, str) else value
    try:
        names = tuple(str(v).strip().lower() for v in values)
    except TypeError:
        names = ()
    if not names or not all(names):
        raise ValueError(
            f"invalid {what} in marker @pytest.mark.{MARKER} on {where}: {value!r}; "
            f"write a name or a list of names"
        )
    return names


def _flag(value: Any, key: str, where: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(
            f"invalid value in marker @pytest.mark.{MARKER}({key}=...) on {where}: "
            f"{value!r}; write True or False"
        )
    return value


def _start_method(value: Any, facts: RuntimeFacts, where: str) -> str | None:
    wanted = _names(value, "start method", where)
    unknown = [m for m in wanted if m not in ("fork", "forkserver", "spawn")]
    if unknown:
        raise ValueError(
            f"unknown start method {unknown[0]!r} in marker @pytest.mark.{MARKER} on "
            f"{where}; the start methods are fork, forkserver and spawn"
        )
    missing = [m for m in wanted if m not in facts.start_methods]
    if not missing:
        return None
    return (
        f"requires start method {' and '.join(repr(m) for m in missing)}, which "
        f"{facts.system} does not have (it has {', '.join(facts.start_methods)})"
    )


def _fork(value: Any, facts: RuntimeFacts, where: str) -> str | None:
    if _flag(value, "fork", where) == facts.has_fork:
        return None
    if value:
        return f"requires os.fork, which {facts.system} does not have"
    return f"requires a platform without fork; {facts.system} has it"


def _free_threaded(value: Any, facts: RuntimeFacts, where: str) -> str | None:
    if _flag(value, "free_threaded", where) == facts.free_threaded_build:
        return None
    if value:
        return (f"requires a free-threaded build of Python; this is {facts.python}, "
                f"built with the GIL")
    return f"requires a build of Python with the GIL; this is {facts.python}, free-threaded"


def _gil(
    value: Any, facts: RuntimeFacts, where: str, now: Optional[GilState] = None
) -> str | None:
    enabled = facts.gil_enabled if now is None else now.enabled
    if _flag(value, "gil", where) == enabled:
        return None
    if value:
        return f"requires the GIL to be enabled; {facts.python} runs with it disabled"
    story = "" if now is None else now.story()
    return (f"requires the GIL to be disabled; {facts.python} runs with it enabled"
            + (f": {story}" if story else ""))


def _cpus(value: Any, facts: RuntimeFacts, where: str) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"invalid value in marker @pytest.mark.{MARKER}(cpus=...) on {where}: "
            f"{value!r}; write a whole number of at least 1"
        )
    if facts.usable_cpus >= value:
        return None
    return (
        f"requires at least {value} usable CPUs; this process may use "
        f"{facts.usable_cpus} (affinity mask and cgroup quota; the machine has "
        f"{facts.logical_cpus})"
    )


def _implementation(value: Any, facts: RuntimeFacts, where: str) -> str | None:
    wanted = _names(value, "implementation", where)
    if facts.implementation in wanted:
        return None
    return (
        f"requires implementation {' or '.join(repr(w) for w in wanted)}; "
        f"this is {facts.implementation}"
    )


CHECKS: dict[str, Callable[[Any, RuntimeFacts, str], Optional[str]]] = {
    "start_method": _start_method,
    "fork": _fork,
    "free_threaded": _free_threaded,
    "gil": _gil,
    "cpus": _cpus,
    "implementation": _implementation,
}


def unmet(
    marker: Any, facts: RuntimeFacts, where: str, gil: Optional[GilState] = None
) -> list[str]:
    """The reasons this runtime does not meet ``marker``; ValueError on a bad marker.
    ``gil`` is the GIL now; without it, ``gil=`` is decided from ``facts.gil_enabled``.

    >>> from pytest_procthread.runtime import runtime_facts
    >>> import pytest
    >>> unmet(pytest.mark.requires(cpus=1).mark, runtime_facts(), "doc")
    []
    """
    if getattr(marker, "args", ()):
        raise ValueError(
            f"marker @pytest.mark.{MARKER} on {where} takes keywords only, e.g. "
            f"@pytest.mark.{MARKER}(fork=True, cpus=2); got {marker.args!r}"
        )
    kwargs = dict(getattr(marker, "kwargs", {}) or {})
    if not kwargs:
        raise ValueError(
            f"marker @pytest.mark.{MARKER} on {where} names no requirement; "
            f"use one or more of {', '.join(CHECKS)}"
        )
    reasons = []
    for key, value in kwargs.items():
        check = CHECKS.get(key)
        if check is None:
            raise ValueError(
                f"unknown requirement {key!r} in marker @pytest.mark.{MARKER} on {where}; "
                f"the known ones are {', '.join(CHECKS)}"
            )
        reason = _gil(value, facts, where, gil) if key == "gil" else check(value, facts, where)
        if reason is not None:
            reasons.append(reason)
    return reasons
