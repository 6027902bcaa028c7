"""ProcessRunner, what the ``isolated_process`` fixture is: start children, stop the rest.

``start()`` is the whole life of a start: check the call, pickle it where the start
method needs that, make the child's output files and its handle, register the handle
once, then try the start paths :func:`launch.choose_launchers` names, in order, until one
takes the child. :func:`end_session` is what is left at the end of a pytest session.
"""

from __future__ import annotations

import multiprocessing
import sys
from typing import Any, Callable, Optional

from ..errors import ProcThreadError
from ..outcome import Outcome
from ..settings import resolve, validate_start_method, validate_timeout
from ..wire.pickling import dump_call
from .capture import new_capture
from .coverage import combine_children, plan_for_child
from .fork import available as fork_available
from .fork import start_forked
from .handle import STOP_GRACE, ProcessHandle
from .launch import (
    FORK,
    MULTIPROCESSING,
    TEMPLATE,
    Launched,
    LaunchRequest,
    choose_launchers,
    reap_exiting,
)
from .live import track, untrack
from .mp import start_with_multiprocessing
from .scratch import hold, release, remove_idle
from .session import on_end
from .template import available as template_available
from .template import start_from_template, stop_all
from .template import start_soon as start_template_soon
from .warden import settle
from .warden import start_soon as start_warden_soon

# The one place that maps a start path to the code that takes it.
LAUNCHERS: dict[str, Callable[[LaunchRequest], Optional[Launched]]] = {
    FORK: start_forked,
    TEMPLATE: start_from_template,
    MULTIPROCESSING: start_with_multiprocessing,
}
_counter = iter(range(1, sys.maxsize))


class ProcessRunner:
    """Starts isolated children and stops whatever is left of them at :meth:`close`.

    >>> runner = ProcessRunner(start_method="spawn", timeout=10)
    >>> runner.run(pow, 2, 10).value
    1024
    >>> runner.close()

    With ``warm=True`` (what ``--isolated`` uses), children under ``spawn`` and
    ``forkserver`` are forked from a warm template process started with that method,
    which costs milliseconds instead of a fresh interpreter (see ``process.template``),
    and a ``fork`` child says when it is done, before its exit (see ``process.fork``).
    """

    def __init__(
        self,
        start_method: Optional[str] = None,
        timeout: Optional[float] = None,
        *,
        config: Any = None,
        marker: Any = None,
        warm: bool = False,
        _parent: Optional[ProcessRunner] = None,
    ) -> None:
        self.settings = resolve(
            config, start_method=start_method, timeout=timeout, marker=marker,
            where_call="isolated_process.options()",
        )
        self._config = config
        self._warm = warm
        self._root: ProcessRunner = _parent._root if _parent is not None else self
        if _parent is None:
            self._handles: list[ProcessHandle] = []
            self._scratch_dir: Optional[str] = None  # held from the scratch owner, once needed
            self._closed = False

    def __reduce__(self) -> Any:
        # Sent to a fresh interpreter (the isolated_process of an --isolated body under
        # spawn or forkserver, an argument of a call): there it is a runner of its own with
        # the same settings, for that process's children; this one's stay here.
        return (ProcessRunner, (self.start_method, self.timeout))

    def __procthread_close_in_child__(self) -> None:
        """Where a fresh child rebuilt this runner: its children end with the body."""
        self.close()

    @property
    def start_method(self) -> str:
        return self.settings.start_method

    @property
    def timeout(self) -> float:
        return self.settings.timeout

    @property
    def context(self) -> Any:
        """The multiprocessing context of this start method: make queues, locks and values
        with it, so that they can be passed to children of this runner."""
        return multiprocessing.get_context(self.start_method)

    def options(
        self, *, start_method: Optional[str] = None, timeout: Optional[float] = None
    ) -> ProcessRunner:
        """The same runner with other settings; its children are stopped with this one's."""
        method = (
            validate_start_method(start_method, "isolated_process.options()")
            if start_method is not None
            else self.start_method
        )
        seconds = (
            validate_timeout(timeout, "isolated_process.options()")
            if timeout is not None
            else self.timeout
        )
        return ProcessRunner(method, seconds, config=self._config, warm=self._warm, _parent=self)

    def _scratch(self) -> str:
        root = self._root
        if root._scratch_dir is None:
            root._scratch_dir = hold()
        return root._scratch_dir

    def start(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> ProcessHandle:
        """Start ``fn(*args, **kwargs)`` in a new process and return at once."""
        if self._root._closed:
            raise ProcThreadError("this isolated_process runner is closed (its test has ended)")
        if not callable(fn):
            raise TypeError(
                f"isolated_process.start() needs a callable first, got {fn!r} "
                f"({type(fn).__name__}); pass the function itself, not its result"
            )
        method = self.start_method
        name = f"{getattr(fn, '__qualname__', type(fn).__name__)}#{next(_counter)}"
        payload, externals = (b"", []) if method == FORK else dump_call(fn, args, kwargs, method)
        captures = (new_capture("out", self._scratch), new_capture("err", self._scratch))
        request = LaunchRequest(fn, args, kwargs, name, method, self.timeout, self._warm,
                                captures, payload, externals, plan_for_child())
        handed_over = [getattr(obj, "__procthread_handed_over__", None)
                       for obj in (*args, *kwargs.values())]
        # Registered before the start: under fork every page written after it is a copy.
        handle = ProcessHandle(name, self.settings, captures)
        self._root._handles.append(handle)
        track(handle)
        try:
            paths = choose_launchers(
                method, warm=self._warm, carries_externals=bool(externals),
                templates_possible=method != FORK and template_available(),
            )
            for path in paths:
                launched = LAUNCHERS[path](request)
                if launched is not None:
                    break
            else:  # the last path of every choice starts the child or raises
                raise ProcThreadError(f"no start path took the child {name!r} ({paths})")
            handle.attach(launched)
        except BaseException:
            self._root._handles.remove(handle)
            untrack(handle)
            handle.release()
            raise
        for done in handed_over:
            if done is not None:
                done()
        return handle

    def run(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Outcome:
        """Start ``fn(*args, **kwargs)`` in a new process and wait for its outcome."""
        handle = self.start(fn, *args, **kwargs)
        outcome = handle.join()
        if handle.finished:
            # Nothing is left for close() to do with it; kept, thousands of runs in one
            # test would keep thousands of handles (and their outcomes) alive.
            self._root._handles.remove(handle)
        return outcome

    def close(self) -> None:
        """Kill and reap every child still alive, close every pipe, delete scratch files."""
        root = self._root
        if root._closed:
            return
        root._closed = True
        for handle in root._handles:
            if not handle.finished:
                if handle.is_alive():
                    handle.kill()
                else:
                    handle.join(timeout=STOP_GRACE)
        root._handles.clear()
        if root._scratch_dir is not None:
            root._scratch_dir = None
            release()


def end_session() -> None:
    """At the end of a pytest session: reap the fork children that are exiting, wait for
    a warden still starting, stop the warm templates, remove the idle scratch directory;
    combine the children's coverage data into this process's, if coverage still measures
    it."""
    reap_exiting()
    settle()
    stop_all()
    remove_idle()
    combine_children()


def prepare_session(method: str, preload: tuple[str, ...]) -> None:
    """At the start of a session whose every test runs in a child of ``method``: start
    now what each will need, while the tests are collected, not at the first test: the
    warden that watches fork children, or the warm template of spawn or forkserver,
    importing ``preload`` (the module its children run)."""
    if method == "fork":
        if fork_available():
            start_warden_soon()
    else:
        start_template_soon(method, preload)


# Whatever a session started through this module ends with the session (process.session).
on_end(end_session)
