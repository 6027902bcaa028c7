"""The GIL of this process as it is now, as it was at start, and every re-enable seen.

A free-threaded build starts with the GIL off, and turns it on for good when it imports
an extension module that does not declare ``Py_mod_gil`` (unless ``PYTHON_GIL=0`` or
``-X gil=0``), with a RuntimeWarning that names the module. This module owns what is
known about that: the live state (:func:`enabled`, read each time it is asked), the
state at start (:data:`AT_START`, read once, when the plugin is loaded), and a
:class:`GilWatch` that records each re-enable it sees, when it happened (start-up,
configure, the collection of a node, the setup, call or teardown of a test) and which
module's import did it where Python said so. It also words all of that for the report
header, the terminal summary and the skip reasons of ``requires(gil=...)``.

Standard library only: spawned children import it through ``runtime``.
"""

from __future__ import annotations

import re
import sys
import sysconfig
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Optional

# CPython's words (Python/import.c, 3.13 and 3.14) when an import turns the GIL on.
_WARNING = re.compile(
    r"The global interpreter lock \(GIL\) has been enabled to load module '([^']+)'"
)

# The phases a re-enable is attributed to, in the order a session goes through them.
WHEN = ("before start", "start-up", "configure", "collection", "setup", "call",
        "teardown", "test", "session end")


def free_threaded_build() -> bool:
    return bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def enabled() -> bool:
    """Whether the GIL is enabled now (always True where there is no way to turn it off)."""
    check = getattr(sys, "_is_gil_enabled", None)
    return True if check is None else bool(check())


def configured() -> Optional[int]:
    """``PYTHON_GIL`` / ``-X gil`` as Python read them: 0, 1, or None when unset."""
    value = getattr(sys.flags, "gil", None)
    return None if value is None else int(value)


# Read when the plugin is loaded, before any test module or conftest is imported.
AT_START = enabled()


def module_of_warning(message: str) -> Optional[str]:
    """The module named by CPython's "GIL has been enabled" warning; None for others."""
    found = _WARNING.search(message)
    return found.group(1) if found else None


@dataclass(frozen=True)
class ReEnable:
    """One re-enable of the GIL: when it was seen, on which node, by whose import."""

    when: str  # one of WHEN
    nodeid: str = ""  # the collector or the test, where there is one
    module: Optional[str] = None  # None: Python did not say (warning filtered or not seen)
    worker: str = ""  # the pytest-xdist worker(s) it happened in, seen by the controller

    def __post_init__(self) -> None:
        if self.when not in WHEN:
            raise ValueError(f"unknown phase {self.when!r} of a GIL re-enable; "
                             f"the phases are {', '.join(WHEN)}")

    def phase(self) -> str:
        """``during the call of t.py::test_x``, ``during the collection of t.py``, ..."""
        if self.when == "before start":
            where = "before pytest-procthread was loaded"
        elif self.when == "start-up":
            where = "while pytest loaded its plugins and conftests"
        elif self.when == "configure":
            where = "during pytest_configure"
        elif self.when == "session end":
            where = "at the end of the session"
        elif self.when == "test":
            where = f"during {self.nodeid}"
        elif self.nodeid:
            where = f"during the {self.when} of {self.nodeid}"
        else:
            where = f"during {self.when}"
        if not self.worker:
            return where
        return f"{where} in worker{'s' if ',' in self.worker else ''} {self.worker}"

    def cause(self) -> str:
        if self.module is None:
            return ("by an import Python did not name (its RuntimeWarning was filtered "
                    "out or not emitted)")
        return f"by the import of module {self.module!r}"

    def describe(self) -> str:
        return f"re-enabled {self.phase()}, {self.cause()}"


@dataclass(frozen=True)
class GilState:
    """The GIL as it is at one moment, with how it came to be so."""

    enabled: bool
    at_start: bool
    reenabled: Optional[ReEnable] = None  # the last re-enable seen, if any

    def story(self) -> str:
        """Why the GIL is on, for a skip reason; empty when nothing turned it on."""
        if not self.enabled or self.reenabled is None:
            return ""
        return f"it was {self.reenabled.describe()}"


@dataclass
class GilWatch:
    """The re-enables of one session, and the ``requires(gil=...)`` decisions they changed.

    ``read`` gives the live state (:func:`enabled`; a plain function in unit tests).
    """

    at_start: bool
    free_threaded: bool
    configured: Optional[int]
    read: Callable[[], bool] = enabled
    events: list[ReEnable] = field(default_factory=list)
    # nodeid -> skipped, for the tests decided while the GIL was not as it was at start.
    decided_since: dict[str, bool] = field(default_factory=dict)
    _last: bool = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._last = self.at_start
        if self.at_start and self.free_threaded and self.configured is None:
            # Nobody asked for the GIL, yet it is on: an import turned it on before us.
            self.events.append(ReEnable("before start"))

    @classmethod
    def of_this_process(cls) -> GilWatch:
        return cls(AT_START, free_threaded_build(), configured())

    def look(self, when: str, nodeid: str = "") -> None:
        """Read the GIL now; a change since the last look is a re-enable during ``when``.
        Finds a re-enable whose warning was filtered out or never came."""
        now = self.read()
        if now and not self._last:
            self.events.append(ReEnable(when, nodeid))
        self._last = now

    def heard(self, message: str, when: str, nodeid: str = "") -> bool:
        """Take in a warning; True if it names a re-enable of this process: the last one
        seen without a module, or one not seen yet (the warning came before a look)."""
        module = module_of_warning(message)
        if module is None or not self.free_threaded or not self.read():
            return False  # someone else's warning, or words that changed nothing here
        for i in range(len(self.events) - 1, -1, -1):
            if self.events[i].module is None:
                self.events[i] = replace(self.events[i], module=module)
                return True
        if self._last:
            # On, and named, already: this one is a copy (a pytest-xdist worker's or an
            # isolated child's, replayed here), as CPython warns once per process.
            return False
        self.events.append(ReEnable(when, nodeid, module))
        self._last = True
        return True

    def state(self, when: str, nodeid: str = "") -> GilState:
        """The GIL now, for a decision taken during ``when``."""
        self.look(when, nodeid)
        last = self.events[-1] if self.events else None
        return GilState(self._last, self.at_start, last)

    def decided(self, nodeid: str, state: GilState, skipped: bool) -> None:
        """Note how a ``requires(gil=...)`` test was decided; counted where the GIL was
        not as it was at start."""
        if state.enabled != state.at_start:
            self.decided_since[nodeid] = skipped

    def during_run(self) -> list[ReEnable]:
        return [e for e in self.events if e.when != "before start"]

    def header(self) -> str:
        """The report header's line: the GIL at start, and any re-enable before it."""
        if not self.free_threaded:
            text = "GIL on at start (a build with the GIL)"
        elif self.configured == 1:
            text = "GIL on at start (free-threaded build, PYTHON_GIL=1 or -X gil=1)"
        elif self.configured == 0:
            text = ("GIL off at start (free-threaded build, PYTHON_GIL=0 or -X gil=0: "
                    "no import re-enables it)")
        elif not self.at_start:
            text = ("GIL off at start (free-threaded build: importing an extension that "
                    "does not declare Py_mod_gil re-enables it)")
        else:
            text = f"GIL on at start (free-threaded build: {self.events[0].describe()})"
        since = "; ".join(e.describe() for e in self.during_run())
        return f"procthread: {text}" + (f"; since then {since}" if since else "")

    def _by_workers(self) -> list[ReEnable]:
        """The re-enables of the run, those alike in several workers as one."""
        workers: dict[tuple[str, str, Optional[str], bool], list[str]] = {}
        for e in self.during_run():
            workers.setdefault((e.when, e.nodeid, e.module, not e.worker), []).append(e.worker)
        return [ReEnable(when, nodeid, module, ", ".join(names))
                for (when, nodeid, module, _), names in workers.items()]

    def summary(self) -> list[str]:
        """The terminal summary's lines; none when the GIL did not change during the run."""
        lines = [f"the GIL was {e.describe()}" for e in self._by_workers()]
        if self.decided_since:
            skipped = sum(self.decided_since.values())
            run = len(self.decided_since) - skipped
            now, then = ("off", "on") if self.at_start else ("on", "off")
            count = len(self.decided_since)
            lines.append(
                f"{count} test{'s' if count != 1 else ''} with requires(gil=...) decided "
                f"with the GIL {now}, as it was by then ({then} at start): {skipped} "
                f"skipped, {run} run"
            )
        return lines

    def to_data(self) -> dict[str, Any]:
        """What a pytest-xdist worker sends its controller (plain data)."""
        return {"events": [[e.when, e.nodeid, e.module] for e in self.during_run()],
                "decided_since": dict(self.decided_since)}

    def merge(self, data: Any, worker: str) -> None:
        """Take in what a pytest-xdist worker sent (:meth:`to_data`)."""
        if data is None:
            return  # a worker that ended before its session did
        try:
            events = [ReEnable(when, nodeid, module, worker)
                      for when, nodeid, module in data["events"]]
            decided = {str(k): bool(v) for k, v in data["decided_since"].items()}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"pytest-xdist worker {worker} sent its GIL re-enables in a "
                             f"form this version does not read: {data!r} ({exc})") from None
        self.events += events
        self.decided_since.update(decided)
