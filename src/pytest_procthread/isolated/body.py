"""What runs in an isolated test's child: the test body, with what pytest would give it.

The test process builds a :class:`BodyCall` (plain data, versioned) and starts the child
with an :class:`IsolatedBody` as its target. In the child the body rebuilds the test
function and its arguments where they were pickled, routes warnings and log records to
the side file, starts the stand-ins, runs the function (in n threads for ``threads(n)``)
and records a failed comparison for the test process to explain.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import logging
import os
import sys
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import tblib.pickling_support  # noqa: F401  (every child that raises needs it; a template imports it once)

from ..child.rewrite import install_rewriting
from ..child.template import apply_environ
from ..errors import ProcThreadError
from ..options import ISOLATED_MARKER as MARKER
from ..threads.fanout import FanOut, fan_out
from ..wire import pickling
from .comparison import comparison_for, install_recorder
from .fresh import module_and_class
from .patches import Patch, replay
from .references import Reference
from .sidecar import Sidecar, relay_logs, restart_recorders, route_warnings, set_logger_levels
from .standins import ChildLogCapture, RecordedCalls
from .testcase import run_case
from .travel import FUNCTION_PIECE, Pieces, load_filters

BODY_VERSION = 3


@dataclass
class BodyCall:
    """Everything the child needs to run one test body; plain data, versioned."""

    test: str
    sidecar_path: str
    module: str = ""
    # Under spawn and forkserver, what the child imports before it rebuilds the call (a
    # warm template, before it forks the child): the conftests, the test's module, ours.
    preload: tuple[str, ...] = ()
    # Under fork the child inherits these as they are.
    function: Any = None
    kwargs: Optional[dict[str, Any]] = None
    # Otherwise they arrive pickled, one piece per argument, so that a piece that cannot
    # be rebuilt in the child is named (see travel.pack).
    pieces: Pieces = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)  # name -> "fixture 'db'"
    references: dict[str, Reference] = field(default_factory=dict)  # found by the child
    # What the fixtures patched with monkeypatch, made again in a fresh child.
    patches: list[Patch] = field(default_factory=list)
    rewrite: dict[str, str] = field(default_factory=dict)
    # Under fork, made in the test process so that the child has less to make: the side
    # file's writer, pytest's log handlers that write out (which the child drops), and
    # where warnings went as the test started (pytest's record of it), so that the child
    # sends those, and only those, back.
    sidecar: Optional[Sidecar] = None
    log_writers: tuple[logging.Handler, ...] = ()
    warning_sink: Any = None
    # Otherwise: the test process's warning filters and logger levels, to load.
    warning_filters: Optional[list[bytes]] = None
    log_levels: Optional[dict[str, Any]] = None
    # The test process's environment when the body starts (fixtures may have changed it);
    # a forkserver child would otherwise have the server's, from when it started.
    environ: Optional[dict[str, str]] = None
    fan: Optional[FanOut] = None  # run the body in threads, as threads.plugin planned
    version: int = BODY_VERSION


class IsolatedBody:
    """The child's target: runs one test body as pytest would; returns the repr of the
    type of what the body returned, or None."""

    def __init__(self, call: BodyCall) -> None:
        self.call = call
        self.__qualname__ = call.test  # names the child after the test

    @property
    def procthread_warmup(self) -> dict[str, Any]:
        """What a warm template imports before it forks the child (see
        ``process.template``): this module, and with it pytest; the test's module."""
        preload = [type(self).__module__, *(name for name in self.call.preload if name)]
        return {"preload": preload, "rewrite": self.call.rewrite}

    def __call__(self, externals: Optional[list[Any]] = None) -> Optional[str]:
        __tracebackhide__ = True
        call = self.call
        sidecar = call.sidecar or Sidecar(call.sidecar_path)
        # A fresh interpreter (spawn, forkserver) has none of the test process's warning
        # filters and logger levels: they come with the call. The child ends with the body,
        # so nothing needs restoring after it; catch_warnings only to load the filters.
        fresh = call.warning_filters is not None
        _refuse_debugger()
        try:
            with warnings.catch_warnings() if fresh else contextlib.nullcontext():
                if call.warning_filters is not None:
                    warnings.filters[:] = load_filters(call.warning_filters)  # type: ignore[index]
                    set_logger_levels(call.log_levels)
                route_warnings(sidecar, call.warning_sink, fresh)
                relay_logs(sidecar, call.log_writers, fresh)
                # Importing the test module again may warn or log: pytest showed those.
                sidecar.live = False
                fn, kwargs = self._rebuild(list(externals or []))
                sidecar.live = True
                _start_stand_ins(kwargs, sidecar, fresh)
                try:
                    with _fresh_set_up(fn) if fresh else contextlib.nullcontext():
                        if call.fan is not None and fn is run_case:
                            result = fn(**kwargs, fan=call.fan)
                        elif call.fan is not None:
                            result = fan_out(fn, kwargs, call.fan)
                        else:
                            result = fn(**kwargs)
                except BaseException as exc:
                    comparison = comparison_for(exc)
                    if comparison is not None:
                        sidecar.put("comparison", comparison)
                    raise
                finally:
                    if fresh:
                        _close_rebuilt(kwargs)
            if result is None:
                return None
            if hasattr(result, "close") and inspect.iscoroutine(result):
                result.close()
            return repr(type(result))
        finally:
            sidecar.close()

    def _rebuild(self, externals: list[Any]) -> tuple[Callable[..., Any], dict[str, Any]]:
        call = self.call
        if call.version != BODY_VERSION:
            raise ProcThreadError(
                f"the isolated child of {call.test} got a call of format {call.version}, "
                f"it reads {BODY_VERSION}: the test process and the child import different "
                f"versions of pytest-procthread"
            )
        if call.function is not None:
            return call.function, dict(call.kwargs or {})
        if call.environ is not None:
            apply_environ(call.environ)
        install_rewriting(call.rewrite)
        install_recorder()
        for name in call.preload:  # the conftests first, as pytest imported them
            try:
                if name:
                    importlib.import_module(name)
            except Exception as exc:
                raise ProcThreadError(
                    f"the isolated child of {call.test} could not import {name}, which "
                    f"the test process had imported for it: {type(exc).__name__}: {exc}"
                ) from exc
        replay(call.patches)
        values: dict[str, Any] = {}
        for name, (data, first, count) in call.pieces.items():
            try:
                values[name] = pickling.loads(data, externals[first:first + count])
            except BaseException as exc:
                what = call.labels.get(name, f"argument {name!r}")
                raise ProcThreadError(
                    f"the isolated child of {call.test} could not rebuild {what}: "
                    f"{type(exc).__name__}: {exc}. A fresh child (spawn, forkserver) must "
                    f"import everything the test passes it; define it at module level in an "
                    f"importable module, or isolate this test with "
                    f"@pytest.mark.{MARKER}(start_method='fork')."
                ) from exc
        for name, reference in call.references.items():
            try:
                values[name] = reference.resolve()
            except Exception as exc:
                what = call.labels.get(name, f"argument {name!r}")
                raise ProcThreadError(
                    f"the isolated child of {call.test} could not find {what} where the "
                    f"test process found it ({reference!r}): {type(exc).__name__}: {exc}. "
                    f"Isolate this test with @pytest.mark.{MARKER}(start_method='fork')."
                ) from exc
        fn = values.pop(FUNCTION_PIECE)
        return fn, values


def _no_debugger(*args: Any, **kwargs: Any) -> None:
    raise ProcThreadError(
        "breakpoint() in an isolated test body: the body runs in a child process whose "
        "stdin is not your terminal, so a debugger there cannot talk to you. Run this "
        "test without isolation to debug it (without --isolated, or with "
        "@pytest.mark.isolated removed); --pdb works with isolation (after a failure, in "
        "the test process, on the child's traceback and locals); or set PYTHONBREAKPOINT "
        "to a remote debugger."
    )


def _refuse_debugger() -> None:
    # pdb on /dev/null would read end-of-file and quit with a bare BdbQuit; a debugger the
    # user chose through PYTHONBREAKPOINT (a remote one, say) is left alone.
    if os.environ.get("PYTHONBREAKPOINT", "") in ("", "pdb.set_trace"):
        sys.breakpointhook = _no_debugger


def _fresh_set_up(fn: Callable[..., Any]) -> contextlib.AbstractContextManager[None]:
    """A fresh child sets up the module and class of a test function (``fresh``); a
    unittest case does so in ``testcase.run_case``, which is the function here."""
    if fn is run_case:
        return contextlib.nullcontext()
    owner = getattr(fn, "__self__", None)
    return module_and_class(None if owner is None else type(owner), fn.__module__)


def _close_rebuilt(kwargs: dict[str, Any]) -> None:
    """The fixtures a fresh child rebuilt as its own (``isolated_process``: a runner whose
    children are this child's), closed with the body as their teardown would."""
    for value in kwargs.values():
        close = getattr(value, "__procthread_close_in_child__", None)
        if close is not None:
            close()


def _start_stand_ins(kwargs: dict[str, Any], sidecar: Sidecar, fresh: bool) -> None:
    for value in kwargs.values():
        if isinstance(value, RecordedCalls):
            value.sink = sidecar
        elif isinstance(value, ChildLogCapture):
            value.start()
    if fresh:
        restart_recorders(kwargs.values())
