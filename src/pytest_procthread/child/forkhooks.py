"""``os.fork()`` without the standard library's lock-reset hooks, when they have nothing to do.

CPython runs every ``os.register_at_fork`` hook around each fork. Three sets of them exist
only because *another thread* may hold a lock or be half-way through something at the
moment of the fork: ``threading._after_fork`` (thread bookkeeping), logging's (its module
and handler locks) and ``concurrent.futures.thread``'s (its shutdown lock). In a process
with one thread they leave the child's state exactly as they found it, yet they run Python
code in the child, and a forked child copies every memory page it writes to: they were
most of what a fork child of a pytest process wrote before its first statement (the
counts are in benchmarks/README.md).

So, when this process has one thread, :func:`fork_without_lock_hooks` takes those hooks
out of CPython's hook lists for the moment of the fork and puts them back in both
processes. Every other hook still runs: random's reseed, asyncio's loop reset, this
package's descriptor guard and any hook of the user's or of a library. With more than one
thread, on PyPy, or wherever the lists cannot be found, it is a plain ``os.fork()``. A
free-threaded build (3.13t) keeps its hooks in the same three lists, GIL off or on, and the
collector finds them there as well.

The lists are found without reaching into the interpreter's memory: a sentinel hook is
registered, and the garbage collector names the lists that hold it.
"""

from __future__ import annotations

import gc
import os
import platform
import sys
import threading
import types
from typing import Any, Callable, Optional

_Lists = tuple[list[Any], list[Any], list[Any]]  # before, after_in_parent, after_in_child

_lists: Optional[_Lists] = None
_looked = False
# Made for the lengths the lists had then: (lengths, the lists' contents, the contents
# without the skipped hooks, the positions of the lists that lose a hook).
_plan: Optional[tuple[tuple[int, int, int], _Lists, _Lists, tuple[int, ...]]] = None


def _find_lists() -> Optional[_Lists]:
    if platform.python_implementation() != "CPython" or not hasattr(os, "register_at_fork"):
        return None

    # Three distinct functions: the collector tells each list by what it holds last.
    def sentinel_before() -> None:
        pass

    def sentinel_parent() -> None:
        pass

    def sentinel_child() -> None:
        pass

    sentinels = (sentinel_before, sentinel_parent, sentinel_child)
    os.register_at_fork(
        before=sentinel_before, after_in_parent=sentinel_parent, after_in_child=sentinel_child
    )
    holders = [  # one walk of the collector's objects for the three
        ref for ref in gc.get_referrers(*sentinels) if type(ref) is list and ref
    ]
    held = [[ref for ref in holders if ref[-1] is sentinel] for sentinel in sentinels]
    found = [lists[0] for lists in held if len(lists) == 1]
    for hooks in found:
        hooks.pop()  # the sentinel does not stay registered
    # A sentinel not found stays registered: an empty call per fork, nothing worse.
    return (found[0], found[1], found[2]) if len(found) == 3 else None


def _skippable() -> Callable[[Any], bool]:
    """Whether a hook only resets what another thread could have left in a bad state."""
    threading_hook = getattr(threading, "_after_fork", None)
    cf_thread = sys.modules.get("concurrent.futures.thread")
    cf_lock = getattr(cf_thread, "_global_shutdown_lock", None)

    def skippable(hook: Any) -> bool:
        if hook is threading_hook:
            return True
        if type(hook) is types.FunctionType and hook.__module__ == "logging":
            return True  # all of logging's: acquire before, release after, reinit in child
        return cf_lock is not None and getattr(hook, "__self__", None) is cf_lock

    return skippable


def _current_plan(lists: _Lists) -> tuple[_Lists, _Lists, tuple[int, ...]]:
    global _plan
    lengths = (len(lists[0]), len(lists[1]), len(lists[2]))
    # Hooks are only ever appended, so equal lengths mean equal lists.
    if _plan is None or _plan[0] != lengths:
        skippable = _skippable()
        originals: Any = tuple(list(hooks) for hooks in lists)
        trimmed: Any = tuple([h for h in hooks if not skippable(h)] for hooks in originals)
        changed = tuple(i for i in range(3) if len(trimmed[i]) != lengths[i])
        _plan = (lengths, originals, trimmed, changed)
    return _plan[1], _plan[2], _plan[3]


def _one_thread() -> bool:
    return threading.active_count() == 1 and len(sys._current_frames()) == 1


def _put(lists: _Lists, contents: _Lists, which: tuple[int, ...]) -> None:
    for i in which:  # only the lists that lose a hook: every write here is a copied page
        lists[i][:] = contents[i]


def _hook_lists() -> Optional[_Lists]:
    global _lists, _looked
    if not _looked:
        _looked = True
        try:
            _lists = _find_lists()
        except Exception:  # an interpreter unlike those measured: fork as os.fork does
            _lists = None
    return _lists


def fork_without_lock_hooks() -> int:
    """``os.fork()``; in a process with one thread, without the hooks that would not
    change anything (see the module's docstring)."""
    lists = _hook_lists()
    if lists is None or not _one_thread():
        return os.fork()
    originals, trimmed, changed = _current_plan(lists)
    if not changed:
        return os.fork()
    _put(lists, trimmed, changed)
    try:
        pid = os.fork()
    finally:
        # In both processes: the child may fork in turn, with threads of its own.
        _put(lists, originals, changed)
    return pid


def skipped_hooks() -> list[Any]:
    """The hooks that :func:`fork_without_lock_hooks` leaves out in a process with one
    thread (for tests)."""
    lists = _hook_lists()
    if lists is None:
        return []
    originals, trimmed, _ = _current_plan(lists)
    return [
        hook for hooks, kept in zip(originals, trimmed) for hook in hooks
        if not any(hook is other for other in kept)
    ]
