"""A pytest plugin for the benchmarks: each test body in a bare fork, and nothing else.

The floor of any fork-per-test design: the test process forks, the child runs the body and
``os._exit``s, the test process waits for it. No output capture, no result, no crash
report, no lifeline. Load it with ``-p bare_fork`` (this directory on ``PYTHONPATH``);
``BENCH_BARE_FORK=trimmed`` forks as ``--isolated`` does, without the standard library's
lock-reset hooks when the process has one thread (``child/forkhooks.py``), else with
``os.fork()``. Unittest methods are forked too, around their ``runtest()``.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Optional

import pytest
from _pytest.unittest import TestCaseFunction


def _fork_function() -> Callable[[], int]:
    if os.environ.get("BENCH_BARE_FORK", "trimmed") != "trimmed":
        return os.fork
    try:
        from pytest_procthread.child.forkhooks import fork_without_lock_hooks
    except ImportError:  # an older install, to compare with
        try:
            from pytest_procthread.process.forkhooks import (  # type: ignore
                fork_without_lock_hooks,
            )
        except ImportError:
            from pytest_procthread._forkhooks import fork as fork_without_lock_hooks  # type: ignore
    return fork_without_lock_hooks


_fork = _fork_function()


def _in_a_child(body: Callable[[], Any]) -> None:
    pid = _fork()
    if pid == 0:
        try:
            body()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Optional[bool]:
    names = pyfuncitem._fixtureinfo.argnames
    kwargs = {name: pyfuncitem.funcargs[name] for name in names}
    _in_a_child(lambda: pyfuncitem.obj(**kwargs))
    return True


@pytest.hookimpl(trylast=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # unittest's methods run through their item's runtest(), not pytest_pyfunc_call.
    if isinstance(item, TestCaseFunction):
        runtest = item.runtest
        item.runtest = lambda: _in_a_child(runtest)  # type: ignore[method-assign]
