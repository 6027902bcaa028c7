"""multiprocessing's state in a child made by ``os.fork`` without multiprocessing.

``multiprocessing.Process`` spends a noticeable part of what a fork costs on bookkeeping
of its own (a Process object, finalizers, a sentinel pipe, stdin reopened, the exit
handlers; see benchmarks/README.md). A
direct fork child (``process.fork``, and a warm template's, ``child.template``) does,
here, only the part of multiprocessing's
start-up that code in the child may rely on: the after-fork hooks of multiprocessing
objects made before the fork (queues, locks), a fresh list of children and of
finalizers, and at the end the exit handlers, which stop the children the child started.

With an :class:`MpIdentity` the child also looks like a child of multiprocessing:
``current_process()``, ``parent_process()``, the start method, stdin on /dev/null, its
non-daemon threads joined at the end.
"""

from __future__ import annotations

import gc
import itertools
import os
import sys
import threading
import traceback
from multiprocessing import context as _mp_context_module
from multiprocessing import get_context
from multiprocessing import process as _mp_process_module
from multiprocessing import util as _mp_util_module
from typing import Any, Callable, Optional

from . import stdio

# multiprocessing's own (private) state, which a child made without it must reset. Imported
# here, in the parent, so that the child runs no import statement.
mp_context: Any = _mp_context_module
mp_process: Any = _mp_process_module
mp_util: Any = _mp_util_module


class _SpareParts:
    """The objects a child's multiprocessing identity is made of, made once per parent
    process and never used there: each forked child gets its own copy with the rest of the
    memory. Made anew for every child they would be written to right after each fork (a
    Process, its config, a text stream on stdin), a page fault for each page."""

    __slots__ = ("counter", "parent", "pid", "process", "stdin")

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.process: Any = get_context("fork").Process(name="procthread")
        self.parent = mp_process._ParentProcess(mp_process.current_process().name, self.pid, None)
        self.counter = itertools.count(1)
        try:  # the child's sys.stdin, on fd 0, which the child points at /dev/null
            self.stdin: Any = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115
        except (OSError, ValueError):
            self.stdin = None


_spares: Optional[_SpareParts] = None


def _spare_parts() -> _SpareParts:
    global _spares
    if _spares is None or _spares.pid != os.getpid():
        _spares = _SpareParts()
    return _spares


class MpIdentity:
    """What multiprocessing's fork bootstrap would set up in the child, prepared in the
    parent before the fork: the child only names the spare parts and installs them."""

    __slots__ = ("name", "number", "parent_sentinel", "spares")

    def __init__(self, name: str, parent_sentinel: Optional[int]) -> None:
        self.spares = _spare_parts()
        self.name = name
        self.parent_sentinel = parent_sentinel
        # The number multiprocessing would give this child (its _identity), from the
        # same counter.
        self.number: int = next(mp_process._process_counter)

    def install(self) -> None:
        """In the child: what ``BaseProcess._bootstrap`` does before it runs the target."""
        spares = self.spares
        parent_process: Any = mp_process._current_process
        child = spares.process
        child._name = self.name
        child._identity = (*parent_process._identity, self.number)
        child._config = parent_process._config  # the child's own copy already
        parent = spares.parent
        parent._name = parent_process.name
        parent._sentinel = self.parent_sentinel
        mp_context._force_start_method("fork")
        mp_process._process_counter = spares.counter
        mp_process._children = set()
        mp_process._current_process = child
        mp_process._parent_process = parent
        # stdin reads /dev/null, as under multiprocessing (a test must not wait on a tty)
        if spares.stdin is None:
            mp_util._close_stdin()
        else:
            devnull = os.open(os.devnull, os.O_RDONLY)
            if devnull != 0:
                os.dup2(devnull, 0)
                os.close(devnull)
            sys.stdin = spares.stdin
        main: Any = threading.main_thread()
        if hasattr(main, "_set_native_id"):
            main._set_native_id()


def _start() -> None:
    # The parent's children are not this child's. An empty set stays: replaced, it would
    # be freed here, which writes to the pages of its neighbours too.
    if mp_process._children:
        mp_process._children = set()
    if mp_util._finalizer_registry:
        mp_util._finalizer_registry.clear()
    # Queues, locks and managers made before the fork; the check spares a child that has
    # none a sorted copy of an empty registry (pages copied, nothing done).
    if mp_util._afterfork_registry:
        mp_util._run_after_forkers()


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    sys.stderr.write(f"{exc.code}\n")
    return 1


def _finish(identity: Optional[MpIdentity]) -> None:
    try:
        # Stops the children the target started and runs its finalizers, as mp does;
        # with neither, it would do nothing.
        if mp_util._finalizer_registry or mp_process._children:
            mp_util._exit_function()
    except BaseException:
        pass
    if identity is not None:
        try:  # waits for the target's non-daemon threads, as multiprocessing does
            threading._shutdown()  # type: ignore[attr-defined]
        except BaseException:
            pass
    stdio.flush()


def run_target(
    target: Callable[..., Any], args: tuple[Any, ...], identity: Optional[MpIdentity] = None
) -> int:
    """In a direct fork child: run ``target(*args)`` between the part of multiprocessing's
    bootstrap that code here may rely on and its exit handlers; the exit code."""
    # The cyclic collector walks every object it tracks, writing to each: in a forked
    # child that copies every page those objects sit on. Objects from before the fork
    # belong to the parent's state; the child's own garbage is still collected.
    freeze = getattr(gc, "freeze", None)
    if freeze is not None:
        freeze()
    try:
        if identity is not None:
            identity.install()
        _start()
    except Exception:
        pass
    code = 1
    try:
        target(*args)
        code = 0
    except SystemExit as exc:
        code = _exit_code(exc)
    except BaseException:
        traceback.print_exc()
    finally:
        _finish(identity)
    return code


def live_and_exit(target: Callable[..., Any], args: tuple[Any, ...],
                  identity: Optional[MpIdentity], parents_ends: tuple[int, ...],
                  done_w: int) -> None:
    """The whole life of a direct fork child, right after the fork: close the parent's
    ends of its pipes, run ``target(*args)`` (:func:`run_target`), say it is done on
    ``done_w`` (-1: nobody listens) with its exit code, and exit; never returns."""
    me = os.getpid()
    code = 1
    try:
        for fd in parents_ends:
            if fd >= 0:
                os.close(fd)
        code = run_target(target, args, identity)
    finally:
        # Not from a process the target forked that came back to this frame: its exit
        # would not be this child's.
        if done_w >= 0 and os.getpid() == me:
            try:
                os.write(done_w, str(code).encode())
            except BaseException:  # closed by the target: the parent sees EOF, then the end
                pass
        os._exit(code)
