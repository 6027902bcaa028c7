"""What the failures of a fan-out's threads become: one exception, as pytest reports one.

Identical failures of several threads (same type, message and place) are folded into
one, whose note lists the threads (and iterations). The first kind of failure is raised
as itself, so pytest shows it as it shows any failure (source with ``>`` and ``E`` lines,
``-l`` locals, assertion rewriting's explanation) and the summary line names its type;
the other kinds are added to it as notes, each with its own traceback. When the test
expects an exception (``xfail(raises=E)``), a failure that is not an E is raised first.
Skips, xfails and ``pytest.exit`` in every failing thread are the test's verdict.
"""

from __future__ import annotations

import os
import traceback
from dataclasses import dataclass, field

import pytest

from ..errors import to_raise
from .plan import FanOut

_HERE = os.path.dirname(os.path.abspath(__file__))
_VERDICTS = (pytest.skip.Exception, pytest.xfail.Exception, pytest.exit.Exception)


@dataclass
class Failure:
    """What one thread raised in one iteration (-1: the thread outlived the bound)."""

    thread: int
    iteration: int
    exc: BaseException

    @property
    def is_verdict(self) -> bool:
        """A skip, xfail or exit: the test's verdict, not a failure."""
        return isinstance(self.exc, _VERDICTS)


@dataclass
class Kind:
    """Failures alike but for their thread: the first one and where each happened."""

    first: Failure
    places: list[tuple[int, int]] = field(default_factory=list)


def _frames(exc: BaseException) -> tuple[tuple[str, int], ...]:
    places = []
    tb = exc.__traceback__
    while tb is not None:
        places.append((tb.tb_frame.f_code.co_filename, tb.tb_lineno))
        tb = tb.tb_next
    return tuple(places)


def fold(failures: list[Failure]) -> list[Kind]:
    """Group failures by type, message and the places their tracebacks pass, in order."""
    kinds: dict[tuple[object, ...], Kind] = {}
    for failure in sorted(failures, key=lambda f: (f.thread, f.iteration)):
        exc = failure.exc
        try:
            message = str(exc)
        except Exception:
            message = object.__repr__(exc)
        key = (type(exc), message, _frames(exc))
        kind = kinds.setdefault(key, Kind(failure))
        kind.places.append((failure.thread, failure.iteration))
    return list(kinds.values())


def where(kind: Kind, plan: FanOut) -> str:
    """"in threads 1, 3 of 4", with the iterations when there are several."""
    threads = sorted({thread for thread, _ in kind.places})
    noun = "thread" if len(threads) == 1 else "threads"
    if plan.iterations == 1 or all(iteration < 0 for _, iteration in kind.places):
        return f"in {noun} {', '.join(map(str, threads))} of {plan.threads}"
    parts = []
    for thread in threads:
        iterations = [i for t, i in kind.places if t == thread and i >= 0]
        word = "iteration" if len(iterations) == 1 else "iterations"
        parts.append(f"thread {thread} ({word} {', '.join(map(str, iterations))})")
    return (f"in {', '.join(parts)} of {plan.threads} threads, "
            f"{plan.iterations} iterations each")


def _add_note(exc: BaseException, note: str) -> None:
    if hasattr(exc, "add_note"):
        exc.add_note(note)
    else:  # before 3.11: the attribute pytest and exceptiongroup read
        exc.__notes__ = [*getattr(exc, "__notes__", []), note]  # type: ignore[attr-defined]


def _text(exc: BaseException) -> str:
    """The traceback of another thread's failure, from the test's frames on."""
    stack = traceback.extract_tb(exc.__traceback__)
    while len(stack) > 1 and os.path.dirname(os.path.abspath(stack[0].filename)) == _HERE:
        stack = traceback.StackSummary.from_list(stack[1:])
    lines = ["Traceback (most recent call last):\n", *stack.format()]
    lines += traceback.format_exception_only(type(exc), exc)
    return "".join(lines).rstrip()


def _first(kinds: list[Kind], expected: tuple[type[BaseException], ...]) -> Kind:
    if expected:
        for kind in kinds:
            if not isinstance(kind.first.exc, expected):
                return kind  # the test did not fail as expected: say so with this one
    return kinds[0]


def raise_failures(failures: list[Failure], plan: FanOut) -> None:
    """Raise what the test's failures come to, or return if there are none."""
    # Not hidden from tracebacks: pytest notes "all entries are hidden" when none is left.
    if not failures:
        return
    real = [failure for failure in failures if not failure.is_verdict]
    if not real:
        raise to_raise(min(failures, key=lambda f: (f.thread, f.iteration)).exc)
    kinds = fold(real)
    shown = _first(kinds, plan.expected)
    exc = shown.first.exc
    others = [kind for kind in kinds if kind is not shown]
    count = len(real)
    heading = f"({where(shown, plan)}"
    if len(shown.places) > 1:
        heading += f": {len(shown.places)} identical failures, folded into this one"
    heading += ")"
    _add_note(exc, heading)
    if others:
        more = count - len(shown.places)
        _add_note(exc, f"{more} more failure{'s' if more > 1 else ''} in {plan.label}, of "
                       f"{'another kind' if len(others) == 1 else f'{len(others)} other kinds'}:")
    for kind in others:
        _add_note(exc, f"--- {type(kind.first.exc).__name__} {where(kind, plan)} ---\n"
                       f"{_text(kind.first.exc)}")
    raise to_raise(exc)


__all__ = ["Failure", "Kind", "fold", "raise_failures", "where"]
