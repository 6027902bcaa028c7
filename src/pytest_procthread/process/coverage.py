"""The test process's side of coverage.py in children.

Owns two decisions. Whether a child measures itself, and how: :func:`plan_for_child` gives
a ``child.coverage.CoveragePlan`` when coverage measures this process (pytest-cov,
``coverage run``), made once per measurement, and None otherwise, which is all a child of
an unmeasured process costs: coverage is not even imported. And, at the end of the
session, :func:`combine_children`: the children's data files folded into this process's
measurement while it still runs (``coverage run``), so that its report counts them with
no ``coverage combine``; pytest-cov has combined them already by then, as it combines
every parallel data file next to its own. With pytest-cov's ``--cov-context=test``,
:class:`TestContexts` gives each plan the context of the test phase that starts the child.
"""

from __future__ import annotations

import glob
import os
import socket
import sys
from typing import Any, Optional

import pytest

from ..child.coverage import CoveragePlan, measuring

# The measurement the last plan was made for, and that plan.
_made: Optional[tuple[Any, CoveragePlan]] = None
# The dynamic context of what this process runs now, where pytest-cov records one.
_context = ""


class TestContexts:
    """With pytest-cov's ``--cov-context=test``: what a child runs is recorded under the
    context of the test phase that started it, named as pytest-cov names it
    (``<nodeid>|setup``, ``|run``, ``|teardown``). Registered only then."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        _set_context(f"{item.nodeid}|setup")

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_call(self, item: pytest.Item) -> None:
        _set_context(f"{item.nodeid}|run")

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> None:
        _set_context(f"{item.nodeid}|teardown")

    def pytest_runtest_logfinish(self) -> None:
        _set_context("")


def _set_context(context: str) -> None:
    global _context
    _context = context


def plan_for_child() -> Optional[CoveragePlan]:
    """How a child started now measures itself, and under which context; None if coverage
    does not measure us."""
    plan = _plan()
    return None if plan is None else plan.under(_context or plan.context)


def _plan() -> Optional[CoveragePlan]:
    global _made
    module = sys.modules.get("coverage")
    if module is None:  # never imported: nothing measures this process
        return None
    try:
        cov = module.Coverage.current()
        if cov is None:  # not measuring now (pytest-cov's no_cover, say)
            return None
        # In a child that measures itself the grandchildren measure by its plan: their
        # files go with the test process's, which combines them (their tag).
        made = _made if _made is not None and _made[0] is cov else measuring()
        if made is not None and made[0] is cov:
            return made[1]
        # The configuration as coverage hands it to a subprocess of its own: serialized,
        # and given as a config_file behind this prefix (both from coverage 7.10.3 on).
        serialize = getattr(getattr(cov, "config", None), "serialize", None)
        prefix = getattr(sys.modules.get("coverage.control"), "CONFIG_DATA_PREFIX", None)
        if serialize is None or not isinstance(prefix, str):  # an older coverage
            return None
        host = socket.gethostname().replace(".", "_")
        plan = CoveragePlan(prefix + serialize(), data_file_of(cov),
                            f"procthread-{host}-{os.getpid()}")
    except Exception:  # an unexpected coverage: its children go unmeasured, as before
        return None
    _made = (cov, plan)
    return plan


def data_file_of(cov: Any) -> str:
    """The absolute base name of the data file ``cov`` writes, next to which its children
    write theirs, to be combined with it.

    The one private read: coverage fixed this path when it started measuring, in the
    directory it started in (``CoverageData.base_filename()`` of its ``_data``); the
    ``data_file`` option is relative to that directory, which a test may have left since
    (``monkeypatch.chdir``). The public way, ``get_data()``, would write what was measured
    so far and walk the source tree at every child's start.
    ``tests/test_coverage_children.py`` fails if coverage changes this.
    """
    base = getattr(getattr(cov, "_data", None), "base_filename", None)
    if callable(base):
        return str(base())
    return os.path.abspath(str(cov.get_option("run:data_file")))


def combine_children() -> None:
    """At the end of the session: the data files of this process's children combined into
    its measurement, if that still runs (``coverage run``); they are deleted once read.
    Otherwise whoever measured combines them (pytest-cov has, ``coverage combine`` will)."""
    made = _made
    module = sys.modules.get("coverage")
    if made is None or module is None:
        return
    cov, plan = made
    if module.Coverage.current() is not cov:
        return
    pattern = f"{glob.escape(plan.data_file)}.{glob.escape(plan.tag)}.*"
    files = sorted(name for name in glob.glob(pattern) if not name.endswith("-journal"))
    if not files:
        return
    # As coverage.Coverage.combine() does, without its message ("Combined 3 files") in
    # the middle of pytest's summary; a file that cannot be read stays, for the user.
    failed = []
    try:
        data = cov.get_data()
    except Exception as exc:
        failed.append(f"{type(exc).__name__}: {exc}")
    else:
        for name in files:
            try:
                child = module.CoverageData(name, read_only=True)
                child.read()
                data.update(child)
            except Exception as exc:
                failed.append(f"{os.path.basename(name)}: {type(exc).__name__}: {exc}")
            else:
                os.remove(name)
    if failed:
        sys.stderr.write(
            f"procthread: coverage: could not combine the data of some children into "
            f"{plan.data_file}: {'; '.join(failed)}\n"
        )
