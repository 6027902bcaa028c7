"""Hook specifications of pytest-procthread, for other plugins to implement.

Added with ``pytest_addhooks``; implement them in a ``conftest.py`` or a plugin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest

    from .outcome import Outcome


def pytest_procthread_isolated_crash(item: pytest.Item, outcome: Outcome) -> None:
    """The child running the body of an isolated test died without returning or raising.

    Called in the test process, after the child and its process tree are gone and before
    the test is failed. ``outcome`` says what happened: ``outcome.crashed`` (a signal, an
    abort, ``os._exit`` with a non-zero status; ``outcome.signal``, ``outcome.exitcode``)
    or ``outcome.timed_out`` (stopped at its time limit, its stacks in ``outcome.stderr``),
    ``outcome.stdout``, ``outcome.stderr`` and ``outcome.describe()``.

    Use it to collect core information, restart a service, or count crashes. The return
    value is ignored; an exception raised here replaces the failure, so
    ``pytest.skip(...)`` or ``pytest.xfail(...)`` change the test's verdict.
    """
