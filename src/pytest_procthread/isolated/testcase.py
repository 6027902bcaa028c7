"""``unittest.TestCase`` methods, isolated: their call phase runs in the child.

pytest runs a TestCase method by calling the case with the item as unittest's result
object: ``setUp``, the method, ``tearDown`` and the cleanups all belong to the call phase,
and each thing unittest reports (an error, a failure, a skip, an expected failure, an
unexpected success) becomes the exception pytest reports the test with. Isolated, the
case runs in the child with a :class:`Verdicts` result instead, which keeps the first such
exception as pytest's own would have made it; the child raises it, the test process
raises it again, and pytest reports it as it would have.

Under ``fork`` the child has the case as pytest made it. A fresh child (spawn,
forkserver) gets it pickled, and sets its module and class up itself (see ``fresh``).
"""

from __future__ import annotations

import contextlib
import unittest
from typing import Any, Optional

import pytest

from ..threads.fanout import FanOut, fan_out
from .fresh import module_and_class


def is_case(item: pytest.Item) -> bool:
    """Whether ``item`` is a method of a ``unittest.TestCase``."""
    cls = getattr(item, "cls", None)
    return isinstance(cls, type) and issubclass(cls, unittest.TestCase)


def _skip(reason: str) -> BaseException:
    # Reported where a plain run reports a unittest skip: at the test, not where raised.
    return pytest.skip.Exception(reason, _use_item_location=True)


class Verdicts:
    """A unittest result that keeps the first report as pytest's exception for it."""

    shouldStop = False
    failfast = False

    def __init__(self) -> None:
        self.first: Optional[BaseException] = None

    def _keep(self, exc: BaseException) -> None:
        if self.first is None:
            self.first = exc

    def startTest(self, test: Any) -> None:
        pass

    def stopTest(self, test: Any) -> None:
        pass

    def addSuccess(self, test: Any) -> None:
        pass

    def addDuration(self, test: Any, elapsed: float) -> None:
        pass

    def addError(self, test: Any, err: Any) -> None:
        self._keep(err[1])

    def addFailure(self, test: Any, err: Any) -> None:
        self._keep(err[1])

    def addSubTest(self, test: Any, subtest: Any, err: Any) -> None:
        if err is not None:
            self._keep(err[1])

    def addSkip(self, test: Any, reason: str) -> None:
        self._keep(_skip(reason))

    def addExpectedFailure(self, test: Any, err: Any) -> None:
        self._keep(pytest.xfail.Exception(""))

    def addUnexpectedSuccess(self, test: Any) -> None:
        self._keep(pytest.fail.Exception("Unexpected success", pytrace=False))


def _run_one(case: unittest.TestCase) -> None:
    __tracebackhide__ = True
    verdicts = Verdicts()
    case(result=verdicts)  # type: ignore[arg-type]
    if verdicts.first is not None:
        raise verdicts.first


def _run_copy(case: unittest.TestCase) -> None:
    # Each thread (and iteration) runs its own instance, as unittest runs each test:
    # setUp's attributes are the instance's, not shared by the threads.
    __tracebackhide__ = True
    _run_one(type(case)(case.id().rsplit(".", 1)[-1]))


def run_case(case: unittest.TestCase, fresh: bool = False, fan: Optional[FanOut] = None) -> None:
    """In the child: run ``case`` as pytest would, and raise what pytest would report.
    ``fresh``: the child is a new interpreter, which sets the class and module up (once,
    around every thread). ``fan``: in threads, each with its own instance of the case."""
    __tracebackhide__ = True
    cls = type(case)
    with module_and_class(cls, cls.__module__) if fresh else contextlib.nullcontext():
        if fan is None:
            _run_one(case)
        else:
            fan_out(_run_copy, {"case": case}, fan)


def run_case_in_threads(item: pytest.Item, fan: FanOut) -> None:
    """In the test process: a unittest method's call phase in threads."""
    __tracebackhide__ = True
    run_case(item.instance, fan=fan)  # type: ignore[attr-defined]
