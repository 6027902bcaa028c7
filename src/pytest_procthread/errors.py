"""Exceptions raised by pytest-procthread. Each message says what went wrong and what to do."""

from __future__ import annotations


class ProcThreadError(Exception):
    """Base class of every error this plugin raises itself."""


class NotPicklableError(ProcThreadError, TypeError):
    """Something that must cross a process boundary cannot be pickled.

    ``what`` names the object ("argument 1", "keyword argument 'f'", "the target",
    "the return value"), ``start_method`` the start method in force.
    """

    def __init__(self, message: str, *, what: str = "", start_method: str = "") -> None:
        super().__init__(message)
        self.what = what
        self.start_method = start_method

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (_rebuild_not_picklable, (str(self), self.what, self.start_method))


def _rebuild_not_picklable(message: str, what: str, start_method: str) -> NotPicklableError:
    return NotPicklableError(message, what=what, start_method=start_method)


class ChildDiedError(ProcThreadError):
    """``Outcome.unwrap()`` on a child that died without returning or raising."""


class ChildTimeoutError(ProcThreadError, TimeoutError):
    """``Outcome.unwrap()`` on a child or thread that did not finish in time."""


class RemoteException(ProcThreadError):
    """Stands in for a child's exception that could not be pickled back as itself.

    Keeps the original type's qualified name, its message and the child's traceback text.
    """

    def __init__(self, type_name: str, message: str, traceback_text: str = "") -> None:
        super().__init__(f"{type_name}: {message}" if message else type_name)
        self.type_name = type_name
        self.message = message
        self.traceback_text = traceback_text

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (RemoteException, (self.type_name, self.message, self.traceback_text))


class ThreadProblem(ProcThreadError):
    """A sibling thread that raised unobserved, or that was still running at teardown."""


class ChildInterrupted(ProcThreadError):
    """A child (or sibling thread) raised ``KeyboardInterrupt``; its ``__cause__`` is it."""


def to_raise(exc: BaseException) -> BaseException:
    """What the test process raises for an exception a child or thread raised.

    A ``KeyboardInterrupt`` raised again here would stop the whole run as a Ctrl-C does;
    it fails the test instead (a Ctrl-C of the run interrupts the test process itself,
    which stops the run as usual).
    """
    if not isinstance(exc, KeyboardInterrupt):
        return exc
    error = ChildInterrupted(
        "the code under test raised KeyboardInterrupt (a SIGINT it received, or a raise). "
        "Raised again in the test process it would stop the whole run as if you had "
        "pressed Ctrl-C, so this test fails instead; the KeyboardInterrupt is above."
    )
    error.__cause__ = exc
    return error
