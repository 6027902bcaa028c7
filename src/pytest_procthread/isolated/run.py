"""One isolated test, in the test process: build its call, start its child, wait, report.

Under ``fork`` the call carries the live objects (the child inherits them); under
``spawn`` and ``forkserver`` it carries them pickled, with what a fresh interpreter needs
to behave as the test process does (warning filters, logger levels, the environment, the
modules pytest rewrote). The outcome is then reported as pytest would report the body:
its exception raised again, its return value warned about, or a crash made a failure.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, NoReturn, Optional

import pytest

from ..child import fdguard
from ..errors import NotPicklableError, to_raise
from ..ipc import IpcPipe
from ..outcome import Outcome
from ..process.capture import new_capture
from ..process.handle import ProcessHandle
from ..process.runner import ProcessRunner
from ..process.scratch import directory as scratch_directory
from ..threads.fanout import FanOut
from .body import BodyCall, IsolatedBody
from .comparison import explain
from .failure import died_message
from .marker import WARNING_SINK, marker_of, refuse_async, warn_returned
from .output import LiveOutput, relay_output
from .patches import recorded
from .sidecar import Sidecar, log_writers, logger_levels, relay_to_fork_child, replay
from .testcase import is_case
from .travel import body_of, conftest_modules, pack, rewritten_modules, warning_filters


def run(item: pytest.Function, fan: Optional[FanOut] = None) -> None:
    """Run the body of ``item`` in a child process (in threads there, as ``fan`` says) and
    report it as pytest would."""
    __tracebackhide__ = True
    if not is_case(item):  # unittest runs its own coroutines
        refuse_async(item)
    runner = ProcessRunner(config=item.config, marker=marker_of(item), warm=True)
    # A memory file where there are memory files (see process.capture), like the output.
    side = new_capture("side", scratch_directory)
    try:
        method = runner.start_method
        call = BodyCall(test=item.name, sidecar_path=side.path, fan=fan,
                        module=getattr(item.obj, "__module__", "") or "")
        externals = _fill(call, item, method)
        fork_relay = relay_to_fork_child(call.sidecar) if call.sidecar else None
        with fork_relay or contextlib.nullcontext(), fdguard.sparing(_test_side_fds(call)):
            handle = runner.start(IsolatedBody(call), externals)
        outcome = _join(handle, item)
        comparison = replay(side, getattr(item, "funcargs", {}))
    finally:
        runner.close()
        side.discard()
    _report(item, outcome, comparison, handle.lost)


def _test_side_fds(call: BodyCall) -> set[int]:
    """The test's own ends of its ``ipc_pipe`` fixtures, which a fork child running the
    body must keep (they are kept from every other child)."""
    return {value.parent.fileno() for value in (call.kwargs or {}).values()
            if isinstance(value, IpcPipe) and not value.parent.closed}


def _fill(call: BodyCall, item: pytest.Function, method: str) -> list[Any]:
    """Put the test function and its arguments into ``call``; the externals to hand over."""
    fn, kwargs = body_of(item, fresh=method != "fork")
    if method == "fork":
        call.function, call.kwargs = fn, kwargs
        call.warning_sink = item.stash.get(WARNING_SINK, None)
        call.sidecar, call.log_writers = Sidecar(call.sidecar_path), log_writers()
        return []
    try:
        packed = pack(item, fn, kwargs, method)
    except NotPicklableError as exc:
        refusal = str(exc)
    else:
        refusal = ""
    if refusal:
        # Outside the except clause: the message says it all, and pytest would print the
        # pickling errors chained under it, the message twice.
        _fail(refusal)
    call.pieces, call.labels, call.references = packed.pieces, packed.labels, packed.references
    call.preload = (*conftest_modules(item), call.module, fn.__module__)
    monkeypatch = getattr(item, "funcargs", {}).get("monkeypatch")
    call.patches = [] if monkeypatch is None else recorded(monkeypatch)
    call.rewrite = rewritten_modules(also=call.module)
    call.warning_filters = warning_filters()
    call.log_levels = logger_levels()
    call.environ = dict(os.environ)
    return packed.externals


def _join(handle: ProcessHandle, item: pytest.Item) -> Outcome:
    live = None
    if item.config.getoption("capture", None) == "no":
        live = LiveOutput(handle.output_paths)
    try:
        outcome = handle.join()
    finally:
        if live is not None:
            live.stop()
    relay_output(outcome, live)
    return outcome


def _report(item: pytest.Item, outcome: Outcome, comparison: Any, lost: str) -> None:
    __tracebackhide__ = True
    exc = outcome.exception
    if exc is not None:
        if comparison is not None:
            explain(item, exc, comparison)
        raise to_raise(exc)
    if outcome.returned:
        warn_returned(item, outcome.value)
        return
    item.ihook.pytest_procthread_isolated_crash(item=item, outcome=outcome)
    captured = item.config.getoption("capture", None) != "no"
    _fail(died_message(item.nodeid, outcome, captured, lost))


def _fail(message: str) -> NoReturn:
    # Not hidden from tracebacks: pytest notes "all entries are hidden" when none is left;
    # with pytrace=False it prints only the message.
    pytest.fail(message, pytrace=False)
