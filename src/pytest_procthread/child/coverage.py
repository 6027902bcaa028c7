"""coverage.py in a child: the child of a measured test process measures itself.

Owns what a child does for coverage, from the :class:`CoveragePlan` the test process puts
in its spec (``process.coverage`` makes it). :meth:`CoveragePlan.begin` stops the
measurement a forked child inherits (its data would go to the test process's data file,
and only at an exit that a fork child, ending with ``os._exit``, never reaches) and starts
the child's own, with the test process's configuration, into a data file of its own next
to the test process's, which is where pytest-cov and ``coverage combine`` look for
parallel data. The file is named as coverage names a parallel file, for the process that
saves it: a process the child forks, and that saves the child's measurement, writes a
file of its own too. :meth:`CoveragePlan.finish` saves it at the child's end. It is also
saved when the child's code calls ``os._exit`` (coverage's ``_exit`` patch) and on SIGTERM,
which the test process sends at a timeout (coverage's ``sigterm`` option); a child killed
by a signal no Python code sees (SIGSEGV, SIGABRT, SIGKILL) loses what it measured.

A child of a process that coverage does not measure has no plan: nothing here runs, and
coverage is not imported.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any, Callable, NoReturn, Optional

# The warnings that a child's measurement would give again after the test process's own
# (or give wrongly: a child runs a part of the suite). In an --isolated child they would
# reach the test's warnings summary, and -W error would make them fail the test.
QUIET = (
    "already-imported", "include-ignored", "module-not-imported", "module-not-measured",
    "module-not-python", "no-ctracer", "no-data-collected", "no-sysmon",
    "source-glob-no-match",
)

# The child's own Coverage while it measures, the plan it measures by, and os._exit as
# it was before coverage's _exit patch wrapped it.
_own: Any = None
_own_plan: Optional[CoveragePlan] = None
_exit_before: Optional[Callable[[int], NoReturn]] = None


class CoveragePlan:
    """What a child needs to measure itself as the test process is measured: coverage's
    configuration (``CoverageConfig.serialize()`` as a ``config_file`` of the form
    ``:data:<serialized>``), the absolute base name of the test process's data file, and
    the tag of that process's children's data files, which are named
    ``<data file>.<tag>.<host>.pid<pid>.X<random>x`` (then ``.H<hash>h``)."""

    __slots__ = ("config", "context", "data_file", "tag")

    def __init__(self, config: str, data_file: str, tag: str, context: str = "") -> None:
        self.config = config
        self.data_file = data_file
        self.tag = tag
        self.context = context  # the dynamic context the child's lines are recorded under

    def __repr__(self) -> str:
        return (f"CoveragePlan(data_file={self.data_file!r}, tag={self.tag!r}, "
                f"context={self.context!r})")

    def under(self, context: str) -> CoveragePlan:
        """The same plan, for a child whose lines belong to ``context``."""
        if context == self.context:
            return self
        return CoveragePlan(self.config, self.data_file, self.tag, context)

    def begin(self) -> None:
        """In the child, before its crash handlers (faulthandler's SIGTERM dump then
        chains to coverage's save): stop the inherited measurement, start its own."""
        global _own, _own_plan, _exit_before
        try:
            module: Any = sys.modules.get("coverage")
            if module is None:  # a fresh interpreter; a fork child has it from its parent
                import coverage as module
            inherited = module.Coverage.current()
            if inherited is not None:
                _stop_inherited(inherited)
            # data_suffix=True: coverage names the file for the process that saves it.
            cov = module.Coverage(config_file=self.config, data_suffix=True)
            cov.set_option("run:data_file", f"{self.data_file}.{self.tag}")
            cov.set_option("run:sigterm", True)
            cov.set_option("run:patch", sorted({*cov.get_option("run:patch"), "_exit"}))
            cov.set_option("run:disable_warnings",
                           [*cov.get_option("run:disable_warnings"), *QUIET])
            _exit_before = os._exit
            cov.start()
            if self.context:
                cov.switch_context(self.context)
            _own, _own_plan = cov, self
        except Exception as exc:  # measured or not, the child runs its call
            _say(f"could not measure this child: {type(exc).__name__}: {exc}")

    def finish(self) -> None:
        """At the child's end: stop measuring and write the data file, once."""
        global _own
        cov, _own = _own, None
        if cov is None:
            return
        try:
            cov.stop()
            cov.save()
        except Exception as exc:
            _say(f"could not save this child's data: {type(exc).__name__}: {exc}")
        if _exit_before is not None:  # saved: the patch would only save it again at the exit
            setattr(os, "_exit", _exit_before)  # noqa: B010  (to mypy os._exit is a def)


def measuring() -> Optional[tuple[Any, CoveragePlan]]:
    """In a child that measures itself: its Coverage and its plan, which the children it
    starts measure by too (their data files go with the test process's); else None."""
    return None if _own is None or _own_plan is None else (_own, _own_plan)


def _stop_inherited(inherited: Any) -> None:
    """Stop a Coverage this child did not start: its parent's (fork), or one started at
    interpreter start-up (coverage's ``subprocess`` patch). What would save it here goes
    too, as it would save the parent's data, into the parent's own data file when that has
    no per-process suffix: its SIGTERM handler (its ``sigterm`` option) and its ``_exit``
    patch, undone with the os module's own ``_exit`` (``posix._exit``, ``nt._exit``)."""
    if getattr(signal.getsignal(signal.SIGTERM), "__self__", None) is inherited:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if "_exit" in (inherited.get_option("run:patch") or ()):
        unpatched = getattr(sys.modules.get(os.name), "_exit", None)
        if unpatched is not None:
            setattr(os, "_exit", unpatched)  # noqa: B010  (to mypy os._exit is a def)
    inherited.stop()


def _say(message: str) -> None:
    try:
        os.write(2, f"procthread: coverage: {message}\n".encode("utf-8", "backslashreplace"))
    except OSError:
        pass
