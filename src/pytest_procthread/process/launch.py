"""How a child is started: the one interface every start path gives the handle, what a
start path is given and gives back, and the one decision of which start paths to try.

Three start paths, one module each, in the spirit of CPython's ``popen_<method>``:

- ``fork``: a direct ``os.fork()`` (start method ``fork``);
- ``template``: forked by a warm template process started with ``spawn`` or
  ``forkserver`` (``--isolated`` and other ``warm`` runners);
- ``mp``: ``multiprocessing.Process`` with ``spawn`` or ``forkserver``, a fresh
  interpreter for each child.

Each takes a :class:`LaunchRequest` and returns a :class:`Launched` (or None when it
cannot take this child, and the next one is tried); the runner maps the names that
:func:`choose_launchers` returns to them.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Protocol

from ..child.coverage import CoveragePlan
from .capture import Capture

FORK = "fork"
TEMPLATE = "template"
MULTIPROCESSING = "multiprocessing"


class ChildProcess(Protocol):
    """A started child, as the handle sees it, whichever way it was started."""

    pid: int
    # Readable (a descriptor or a Connection) once the child has ended.
    sentinel: Any
    # Readable once the child says it is done, before its exit (--isolated under fork),
    # else None.
    done: Optional[int]

    @property
    def exitcode(self) -> Optional[int]:
        """Its exit code (negative: the signal) once reaped; None while it runs or when
        its exit status is lost."""

    @property
    def lost(self) -> str:
        """Why its exit status is unknown (the template that forked it died), else ""."""

    def is_alive(self) -> bool: ...

    def join(self, timeout: Optional[float] = None) -> None:
        """Wait up to ``timeout`` seconds for it to end, and reap it."""

    def note_done(self) -> bool:
        """Read ``done``, once readable: True if the child said it is done (its exit code
        is known and it is reaped later), False if it ended without saying so."""

    def close(self) -> None: ...


class NoChild:
    """A ``ChildProcess`` that runs nothing: a handle's child before the start, or one whose
    start was lost (``lost`` says why; ``sentinel``, if any, is what it may still send on)."""

    pid = 0
    done: Optional[int] = None
    exitcode: Optional[int] = None

    def __init__(self, sentinel: Any = None, lost: str = "") -> None:
        self.sentinel = sentinel
        self.lost = lost

    def is_alive(self) -> bool:
        return False

    def join(self, timeout: Optional[float] = None) -> None:
        pass

    def note_done(self) -> bool:
        return False

    def close(self) -> None:
        pass


class LaunchRequest:
    """What a start path is given: the call, its settings, and the output files."""

    __slots__ = ("args", "captures", "coverage", "externals", "fn", "kwargs", "name",
                 "payload", "start_method", "timeout", "warm")

    def __init__(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], name: str,
        start_method: str, timeout: float, warm: bool, captures: tuple[Capture, Capture],
        payload: bytes = b"", externals: Optional[list[Any]] = None,
        coverage: Optional[CoveragePlan] = None,
    ) -> None:
        self.fn, self.args, self.kwargs, self.name = fn, args, kwargs, name
        self.start_method, self.timeout, self.warm = start_method, timeout, warm
        self.captures = captures
        # Under spawn and forkserver: the call pickled, and the objects lifted out of it
        # for multiprocessing to hand over (see wire.pickling).
        self.payload = payload
        self.externals: list[Any] = [] if externals is None else externals
        self.coverage = coverage  # how the child measures itself, if coverage measures us


class Launched:
    """What a start path gives back: the child, and the parent's ends of its channels."""

    __slots__ = ("child", "lifeline_conn", "result_conn", "result_file")

    def __init__(self, child: ChildProcess, result_conn: Any = None,
                 result_file: Optional[int] = None, lifeline_conn: Any = None) -> None:
        self.child = child
        self.result_conn = result_conn  # a Connection the result frame arrives on, or
        self.result_file = result_file  # a memory file it is written to (fork, Linux)
        self.lifeline_conn = lifeline_conn  # the write end the child watches, if any


class Exiting(Protocol):
    """A child that said it was done and is still exiting."""

    def reap_done(self) -> None:
        """Wait (bounded) for it to be gone, keeping the exit code it said."""


# Children that said they were done, before their exit: the test goes on meanwhile, and
# they are reaped before its first fixture is torn down (and before the next start).
_exiting: list[Exiting] = []


def note_exiting(child: Exiting) -> None:
    _exiting.append(child)


def reap_exiting() -> None:
    """Wait for the children that said they were done to end, and reap them."""
    while _exiting:
        _exiting.pop().reap_done()


def choose_launchers(
    start_method: str, *, warm: bool, carries_externals: bool, templates_possible: bool
) -> tuple[str, ...]:
    """The start paths to try for a child, in order.

    >>> choose_launchers("spawn", warm=True, carries_externals=False, templates_possible=True)
    ('template', 'multiprocessing')
    """
    if start_method == "fork":
        return (FORK,)
    # multiprocessing objects can only be handed over as a process starts, which a
    # template's fork does not do.
    if warm and templates_possible and not carries_externals:
        return (TEMPLATE, MULTIPROCESSING)
    return (MULTIPROCESSING,)
