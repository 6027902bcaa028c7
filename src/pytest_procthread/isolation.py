"""Whole-test isolation: the ``isolated`` marker and ``--isolated``.

pytest sets up and tears down the fixtures in the test process, as always; only the body
of the test function runs in a child process, through the same runner as the
``isolated_process`` fixture. Under ``fork`` the child inherits the fixture values; under
``spawn`` and ``forkserver`` they travel pickled (cloudpickle where plain pickle cannot).

Inside the child:

- ``pytest.skip``, ``pytest.xfail``, ``pytest.fail`` and every other exception come back
  and are raised again in the test process, so pytest reports them as usual;
- a fresh child imports the modules that pytest rewrote, rewritten the same way, so a
  failing ``assert`` explains itself; the detailed comparison (``pytest_assertrepr_compare``)
  is worked out back in the test process, by its own hooks;
- warnings are recorded with the test's filters and emitted again in the test process,
  except those that ``recwarn``, ``pytest.warns`` or another catcher takes, as without
  isolation;
- log records go to pytest's handlers in the test process (the "Captured log" section,
  live logging, ``--log-file``, ``caplog``), and ``caplog`` works in the child;
- ``record_property``, ``record_xml_attribute`` and ``record_testsuite_property`` record
  their calls, which are made again in the test process;
- ``capsys``, ``capfd`` (and the binary kinds) read what the child wrote so far;
- everything the child writes on fd 1 and 2 is written to the test process's
  ``sys.stdout`` and ``sys.stderr``, so it shows under "Captured stdout call", and with
  ``-s`` it is copied to the terminal while the test runs.

The side channel and the stand-ins are in ``_sidecar`` and ``_standins``.

A child that crashes or runs out of time fails the test with what happened, its stacks
(faulthandler) and what it printed, after ``pytest_procthread_isolated_crash``.
"""

from __future__ import annotations

import ast
import codecs
import contextlib
import importlib.abc
import importlib.util
import inspect
import logging
import os
import pickle
import re
import shutil
import sys
import tempfile
import threading
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import pytest

from . import _wire
from ._capture import new_capture
from ._sidecar import (
    Sidecar,
    log_writers,
    logger_levels,
    relay_logs,
    relay_to_fork_child,
    replay,
    restart_recorders,
    route_warnings,
    set_logger_levels,
    warning_sink,
)
from ._standins import (
    CaptureResult,
    ChildCapture,
    ChildLogCapture,
    RecordedCalls,
    stand_ins,
)
from .errors import NotPicklableError
from .outcome import Outcome, _fold_frames_below_entry, _tail, describe_exit

MARKER = "isolated"
OPTION = "--isolated"
MARKER_KWARGS = ("start_method", "timeout")
BODY_VERSION = 2

_STREAM_INTERVAL = 0.05  # -s: how often the test process copies the child's output


# -- which tests, with which settings --------------------------------------------------------

def marker_of(item: pytest.Item) -> Optional[pytest.Mark]:
    return item.get_closest_marker(MARKER)


def wanted(item: pytest.Item) -> bool:
    """Whether the body of ``item`` runs in a child: the marker or ``--isolated``."""
    return marker_of(item) is not None or bool(
        item.config.getoption("procthread_isolated", False)
    )


WARNING_SINK = pytest.StashKey[Any]()


def note_warning_sink(item: pytest.Item) -> None:
    """As an isolated test is set up, before its fixtures: where warnings go now. Under
    fork the child sends back what reaches that sink, and leaves alone what a catcher
    entered by a fixture (``recwarn``) takes."""
    item.stash[WARNING_SINK] = warning_sink()


def validate_marker(item: pytest.Item) -> None:
    """Raise ValueError, naming the test, if the ``isolated`` marker is used wrongly."""
    from .settings import resolve

    marker = marker_of(item)
    if marker is None:
        return
    if marker.args:
        raise ValueError(
            f"marker @pytest.mark.{MARKER} on {item.nodeid} takes keywords only "
            f"(start_method=..., timeout=...); got {marker.args!r}"
        )
    unknown = sorted(set(marker.kwargs) - set(MARKER_KWARGS))
    if unknown:
        raise ValueError(
            f"unknown argument {unknown[0]!r} in marker @pytest.mark.{MARKER} on "
            f"{item.nodeid}; it takes {' and '.join(MARKER_KWARGS)}"
        )
    try:
        resolve(item.config, marker=marker)
    except ValueError as exc:
        raise ValueError(f"{exc} (on {item.nodeid})") from None


def test_kwargs(item: pytest.Function) -> dict[str, Any]:
    """The keyword arguments pytest itself would call the test function with."""
    # pytest's own list (what its pytest_pyfunc_call passes); reading the signature again
    # costs more than the rest of starting the child in the test process.
    names = getattr(getattr(item, "_fixtureinfo", None), "argnames", None)
    if names is None:
        names = _argument_names(item.obj)
    funcargs = item.funcargs
    return {name: funcargs[name] for name in names if name in funcargs}


def _argument_names(fn: Callable[..., Any]) -> list[str]:
    try:
        parameters = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        parameters = []
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    names = [p.name for p in parameters if p.kind in kinds and p.default is p.empty]
    # unittest.mock.patch decorators fill the first arguments themselves.
    patchings = getattr(fn, "patchings", None) or ()
    return names[sum(1 for p in patchings if not getattr(p, "attribute_name", None)):]


def refuse_async(item: pytest.Function) -> None:
    fn = item.obj
    if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
        pytest.fail(
            f"{item.nodeid} is an async function: pytest-procthread runs plain test "
            f"functions in threads and child processes, not coroutines. Call "
            f"asyncio.run(...) inside a plain test function instead.",
            pytrace=False,
        )


def warn_returned(item: pytest.Item, returned_type: Optional[str]) -> None:
    """What pytest does when a test function returns something other than None."""
    if returned_type is None:
        return
    code = getattr(getattr(item, "obj", None), "__code__", None)
    warnings.warn_explicit(
        pytest.PytestReturnNotNoneWarning(
            f"Test functions should return None, but {item.nodeid} returned "
            f"{returned_type}.\nDid you mean to use `assert` instead of `return`?"
        ),
        category=pytest.PytestReturnNotNoneWarning,
        filename=getattr(code, "co_filename", "<test>"),
        lineno=getattr(code, "co_firstlineno", 0),
    )


# -- assertion rewriting in a fresh child ----------------------------------------------------

_rewritten_cache: tuple[int, dict[str, tuple[int, str]]] = (-1, {})


def _rewritten_origin(module: Any) -> Optional[str]:
    spec = getattr(module, "__spec__", None)
    loader = getattr(spec, "loader", None)
    origin = getattr(spec, "origin", None)
    if type(loader).__name__ == "AssertionRewritingHook" and isinstance(origin, str):
        return origin
    return None


def rewritten_modules(also: str = "") -> dict[str, str]:
    """Modules that pytest's assertion rewriter imported here: name -> source file.

    The scan of ``sys.modules`` is kept while no module comes or goes; ``also`` (the test
    function's module) is always looked up afresh.
    """
    global _rewritten_cache
    count, cached = _rewritten_cache
    if count != len(sys.modules) or any(
        id(sys.modules.get(name)) != ident for name, (ident, _) in cached.items()
    ):
        cached = {}
        for name, module in list(sys.modules.items()):
            origin = _rewritten_origin(module)
            if origin is not None:
                cached[name] = (id(module), origin)
        _rewritten_cache = (len(sys.modules), cached)
    found = {name: origin for name, (_, origin) in cached.items()}
    if also:
        origin = _rewritten_origin(sys.modules.get(also))
        if origin is not None:
            found[also] = origin
    return found


class _RewritingLoader(importlib.abc.Loader):
    def __init__(self, origin: str) -> None:
        self.origin = origin

    def create_module(self, spec: Any) -> None:
        return None

    def exec_module(self, module: Any) -> None:
        from _pytest.assertion.rewrite import rewrite_asserts

        with open(self.origin, "rb") as f:
            source = f.read()
        tree = ast.parse(source, filename=self.origin)
        rewrite_asserts(tree, source, self.origin, None)
        exec(compile(tree, self.origin, "exec", dont_inherit=True), module.__dict__)


class RewritingFinder(importlib.abc.MetaPathFinder):
    """Imports, in a fresh child, the modules pytest rewrote in the test process, from the
    same files and rewritten the same way (also under ``--import-mode=importlib``, where
    they are not importable by name otherwise)."""

    def __init__(self) -> None:
        self.modules: dict[str, str] = {}

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        origin = self.modules.get(fullname)
        if origin is None or not os.path.exists(origin):
            return None
        package = os.path.basename(origin).startswith("__init__.")
        return importlib.util.spec_from_file_location(
            fullname, origin, loader=_RewritingLoader(origin),
            submodule_search_locations=[os.path.dirname(origin)] if package else None,
        )


_finder: Optional[RewritingFinder] = None


def install_rewriting(modules: dict[str, str]) -> None:
    global _finder
    if _finder is None:
        _finder = RewritingFinder()
        sys.meta_path.insert(0, _finder)
    _finder.modules.update(modules)


# -- detailed assertion explanations ------------------------------------------------------------

_comparisons = threading.local()


def _record_comparison(op: str, left: Any, right: Any) -> None:
    """Installed as the rewriter's comparison hook in a fresh child: remembers the failed
    comparison and where it was, so the test process can explain it with its own hooks."""
    frame = sys._getframe(2)  # this <- _call_reprcompare <- the assert
    _comparisons.last = (frame.f_code.co_filename, frame.f_lineno, op, left, right)
    return None


def _install_comparison_recorder() -> None:
    try:
        from _pytest.assertion import util
    except ImportError:
        return
    util._reprcompare = _record_comparison


def _comparison_for(exc: BaseException) -> Optional[tuple[str, Any, Any]]:
    last = getattr(_comparisons, "last", None)
    if last is None or not isinstance(exc, AssertionError):
        return None
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None or (tb.tb_frame.f_code.co_filename, tb.tb_lineno) != last[:2]:
        return None
    return last[2], last[3], last[4]


def explain_comparison(item: pytest.Item, exc: BaseException, comparison: Any) -> None:
    """Insert what ``pytest_assertrepr_compare`` says about a failed comparison into the
    message of the AssertionError that came back from the child."""
    op, left, right = comparison
    try:
        results = item.ihook.pytest_assertrepr_compare(
            config=item.config, op=op, left=left, right=right
        )
    except Exception:
        return
    lines = next((list(r) for r in results if r), None)
    if not lines or len(lines) < 2:
        return
    verbose = item.config.get_verbosity() if hasattr(item.config, "get_verbosity") else 0
    detail = [str(line) for line in lines[1:]]
    if verbose < 2 and len(detail) > 8:
        hidden = len(detail) - 6
        detail = [*detail[:6],
                  f"...Full output truncated ({hidden} lines hidden), use '-vv' to show"]
    message = str(exc.args[0]) if exc.args else ""
    first, _, rest = message.partition("\n")
    # pytest's own explanation replaces the operands' "where" lines: drop them here too.
    rest_lines = [line for line in rest.splitlines() if not line.lstrip().startswith("+")]
    exc.args = ("\n".join([first, *("  " + line for line in detail), *rest_lines]),)


# -- what the child runs ---------------------------------------------------------------------

@dataclass
class BodyCall:
    """Everything the child needs to run one test body; plain data, versioned."""

    test: str
    sidecar_path: str
    module: str = ""
    # Under fork the child inherits these as they are.
    function: Any = None
    kwargs: Optional[dict[str, Any]] = None
    # Otherwise they arrive pickled, one piece per argument, so that a piece that cannot
    # be rebuilt in the child is named: name -> (data, first external, number of externals).
    pieces: dict[str, tuple[bytes, int, int]] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)  # name -> "fixture 'db'"
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
    threads: int = 0
    thread_timeout: float = 0.0
    version: int = BODY_VERSION


FUNCTION_PIECE = "\x00function"


class IsolatedBody:
    """The child's target: rebuilds the test function and its arguments, runs it (in
    threads for ``threads(n)``), and leaves warnings and recorded calls in a side file."""

    def __init__(self, call: BodyCall) -> None:
        self.call = call
        self.__qualname__ = call.test  # names the child after the test

    @property
    def procthread_warmup(self) -> dict[str, Any]:
        """What a warm template imports before it forks the child (see ``_template``)."""
        preload = [self.call.module] if self.call.module else []
        return {"preload": preload, "rewrite": self.call.rewrite}

    def __call__(self, externals: Optional[list[Any]] = None) -> Optional[str]:
        __tracebackhide__ = True
        call = self.call
        sidecar = call.sidecar or Sidecar(call.sidecar_path)
        # A fresh interpreter (spawn, forkserver) has none of the test process's warning
        # filters and logger levels: they come with the call. The child ends with the body,
        # so nothing needs restoring after it; catch_warnings only to load the filters.
        fresh = call.warning_filters is not None
        try:
            with warnings.catch_warnings() if fresh else contextlib.nullcontext():
                if call.warning_filters is not None:
                    warnings.filters[:] = _load_filters(call.warning_filters)  # type: ignore[index]
                    set_logger_levels(call.log_levels)
                route_warnings(sidecar, call.warning_sink, fresh)
                relay_logs(sidecar, call.log_writers, fresh)
                # Importing the test module again may warn or log: pytest showed those.
                sidecar.live = False
                fn, kwargs = self._rebuild(list(externals or []))
                sidecar.live = True
                for value in kwargs.values():
                    if isinstance(value, RecordedCalls):
                        value.sink = sidecar
                    elif isinstance(value, ChildLogCapture):
                        value.start()
                if fresh:
                    restart_recorders(kwargs.values())
                try:
                    if call.threads:
                        from .parallel import fan_out

                        result = fan_out(fn, kwargs, call.threads, call.thread_timeout)
                    else:
                        result = fn(**kwargs)
                except BaseException as exc:
                    comparison = _comparison_for(exc)
                    if comparison is not None:
                        sidecar.put("comparison", comparison)
                    raise
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
            from .errors import ProcThreadError

            raise ProcThreadError(
                f"the isolated child of {call.test} got a call of format {call.version}, "
                f"it reads {BODY_VERSION}: the test process and the child import different "
                f"versions of pytest-procthread"
            )
        if call.function is not None:
            return call.function, dict(call.kwargs or {})
        if call.environ is not None and call.environ != dict(os.environ):
            os.environ.clear()
            os.environ.update(call.environ)
        install_rewriting(call.rewrite)
        _install_comparison_recorder()
        values: dict[str, Any] = {}
        for name, (data, first, count) in call.pieces.items():
            try:
                values[name] = _wire.loads(data, externals[first:first + count])
            except BaseException as exc:
                what = call.labels.get(name, f"argument {name!r}")
                from .errors import ProcThreadError

                raise ProcThreadError(
                    f"the isolated child of {call.test} could not rebuild {what}: "
                    f"{type(exc).__name__}: {exc}. A fresh child (spawn, forkserver) must "
                    f"import everything the test passes it; define it at module level in an "
                    f"importable module, or isolate this test with "
                    f"@pytest.mark.{MARKER}(start_method='fork')."
                ) from exc
        fn = values.pop(FUNCTION_PIECE)
        return fn, values


def _load_filters(blobs: list[bytes]) -> list[Any]:
    filters = []
    for blob in blobs:
        try:
            filters.append(pickle.loads(blob))
        except Exception:
            continue  # a category the child cannot import cannot match there either
    return filters


# -- the test process's side ------------------------------------------------------------------

def _warning_filters() -> list[bytes]:
    blobs = []
    for entry in warnings.filters:
        try:
            blobs.append(pickle.dumps(entry))
        except Exception:
            continue
    return blobs


def _describe_argument(item: pytest.Item, name: str) -> str:
    callspec = getattr(item, "callspec", None)
    if callspec is not None and name in getattr(callspec, "params", {}):
        return f"parameter {name!r}"
    return f"fixture {name!r}"


# What to pass instead, for pytest's own fixtures that hold the live session.
_SESSION_ADVICE = (
    "take from it what the body needs (request.param, request.node.name, a "
    "config.getoption(...) value) in a fixture of your own, and ask for that fixture"
)
_PICKLABLE_ADVICE = {
    "": "let the fixture give something picklable (a path, a setting) and build the live "
        "object inside the test",
    "request": _SESSION_ADVICE,
    "pytestconfig": _SESSION_ADVICE.replace("request.param, request.node.name, a ", "a "),
}


def _pickle_pieces(
    item: pytest.Function, call: BodyCall, fn: Callable[..., Any], kwargs: dict[str, Any],
    method: str,
) -> list[Any]:
    """Pickle the test function and each argument apart, into ``call``; the externals."""
    externals: list[Any] = []
    for name, value in ((FUNCTION_PIECE, fn), *kwargs.items()):
        what = (
            f"the test function {item.nodeid}" if name == FUNCTION_PIECE
            else _describe_argument(item, name)
        )
        call.labels[name] = what
        try:
            data, found = _wire.dumps(value)
        except Exception as exc:
            raise NotPicklableError(
                f"{what} cannot travel to the isolated child of {item.nodeid}, started "
                f"with {method!r}: {_wire.describe_unpicklable('its value', value, exc, '')}"
                f"Under {method!r} every argument of the test is pickled. Isolate this test "
                f"with @pytest.mark.{MARKER}(start_method='fork') where the platform has "
                f"fork (the child then inherits the value as it is), or "
                f"{_PICKLABLE_ADVICE.get(name, _PICKLABLE_ADVICE[''])}.",
                what=what, start_method=method,
            ) from exc
        call.pieces[name] = (data, len(externals), len(found))
        externals += found
    return externals


class _LiveOutput:
    """With ``-s``: copies what the child writes to the terminal while it runs.

    The output files are opened once, at the start: a capture's path is only valid until
    the handle is released (see ``_capture``), and the last copy may run after that.
    """

    def __init__(self, paths: tuple[str, str]) -> None:
        self._files: list[Any] = []
        for path in paths:
            try:
                self._files.append(open(path, "rb"))  # noqa: SIM115  (closed in stop())
            except OSError:
                self._files.append(None)
        self._offsets = [0, 0]
        self.written = [0, 0]  # characters written from each stream
        self._decoders = [
            codecs.getincrementaldecoder("utf-8")("backslashreplace")
            for _ in paths
        ]
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="procthread-isolated-output", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(_STREAM_INTERVAL):
            self.pump()

    def pump(self) -> None:
        for index, (f, stream) in enumerate(zip(self._files, (sys.stdout, sys.stderr))):
            if f is None:
                continue
            try:
                size = os.fstat(f.fileno()).st_size
                if size < self._offsets[index]:  # capsys.readouterr() took it
                    self._offsets[index] = self.written[index] = 0
                f.seek(self._offsets[index])
                data = f.read()
            except (OSError, ValueError):
                continue
            if data:
                self._offsets[index] += len(data)
                text = self._decoders[index].decode(data)
                self.written[index] += len(text)
                with contextlib.suppress(Exception):
                    stream.write(text)
                    stream.flush()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)
        for f in self._files:
            if f is not None:
                f.close()


def _relay_output(outcome: Outcome, live: Optional[_LiveOutput]) -> None:
    done = live.written if live is not None else [0, 0]
    for text, stream, skip in zip((outcome.stdout, outcome.stderr),
                                  (sys.stdout, sys.stderr), done):
        rest = text[skip:]
        if rest:
            stream.write(rest)
            with contextlib.suppress(Exception):
                stream.flush()


_STACK_STARTS = re.compile(
    r"^(Fatal Python error|procthread: no result after|Current thread 0x|Thread 0x"
    r"|Stack \(most recent call first\))"
)
_THREAD_HEADER = re.compile(r"^(Current thread|Thread) 0x[0-9a-fA-F]+ ")
_WATCHER_FRAME = re.compile(r'_child\.py", line \d+ in watch$')


def _without_watcher(text: str) -> str:
    """Drop the lifeline watcher's thread from a stack dump: every child has it, it says
    nothing about the test."""
    out: list[str] = []
    block: list[str] = []
    for line in [*text.splitlines(), ""]:
        if block and (not line.strip() or _THREAD_HEADER.match(line)):
            if not any(_WATCHER_FRAME.search(b) for b in block):
                out += block
            else:
                while out and not out[-1].strip():
                    out.pop()
            block = []
        if _THREAD_HEADER.match(line):
            block = [line]
        elif block:
            block.append(line)
        else:
            out.append(line)
    return "\n".join(out).rstrip()


def _stack_dump(stderr: str) -> str:
    """The stack dump at the end of a child's stderr (faulthandler), made readable."""
    lines = stderr.splitlines()
    start = next((i for i, line in enumerate(lines) if _STACK_STARTS.match(line)), None)
    if start is None:
        return ""
    return _without_watcher(_fold_frames_below_entry("\n".join(lines[start:])))


def _section(title: str, text: str, lines: int = 40) -> list[str]:
    return [f"--- {title} ---", _tail(text, lines)] if text.strip() else []


def _died_message(item: pytest.Item, outcome: Outcome, captured: bool) -> str:
    """What the failure of a crashed or timed-out child says: what died, how, where."""
    where = f"(pid {outcome.pid}, start method {outcome.start_method})"
    how = describe_exit(outcome.exitcode)
    if outcome.timed_out:
        head = (
            f"the isolated child running {item.nodeid} {where} did not finish within "
            f"{outcome.timeout:g} s: the stacks of its threads were dumped, then it and "
            f"every process it started were stopped ({how})"
        )
        stack_title = "the stack of every thread at the timeout"
    elif outcome.crashed:
        head = (f"the isolated child running {item.nodeid} {where} crashed: {how} "
                f"after {outcome.duration:.2f} s")
        stack_title = "its Python stack at the crash (faulthandler)"
    else:  # exit status 0 without a result, or the warm template that forked it died
        from ._template import TEMPLATE_DIED

        why = TEMPLATE_DIED if TEMPLATE_DIED in outcome.stderr else outcome.describe()
        head = f"the isolated child running {item.nodeid} {where} ended without a result: {why}"
        stack_title = "its Python stack"
        if captured:
            return "\n".join([head, *_section("its stderr (last lines)", outcome.stderr, 20)])
    parts = [head]
    stack = _stack_dump(outcome.stderr)
    if captured:
        parts += _section(stack_title, stack, 60)
        if not stack and not outcome.timed_out:
            parts.append("(no Python stack: it was killed outright, or ended with os._exit)")
        if outcome.stdout.strip() or outcome.stderr.strip():
            parts.append("(everything it printed is under 'Captured stdout call' and "
                         "'Captured stderr call')")
    else:
        stderr = _without_watcher(_fold_frames_below_entry(outcome.stderr))
        parts += _section("its stdout (last lines)", outcome.stdout)
        parts += _section(f"its stderr (last lines), with {stack_title}" if stack
                          else "its stderr (last lines)", stderr, 60)
    return "\n".join(parts)


def run(item: pytest.Function, threads: int = 0, thread_timeout: float = 0.0) -> None:
    """Run the body of ``item`` in a child process and report it as pytest would."""
    __tracebackhide__ = True
    from .process import ProcessRunner

    refuse_async(item)
    scratch = _scratch_dir()
    runner = ProcessRunner(config=item.config, marker=marker_of(item), warm=True,
                           scratch_dir=scratch)
    # A memory file where there are memory files (see _capture), like the child's output.
    side = new_capture("side", _scratch_dir)
    try:
        method = runner.start_method
        fn = item.obj
        kwargs = stand_ins(test_kwargs(item), inherited=method == "fork")
        call = BodyCall(test=item.name, sidecar_path=side.path, threads=threads,
                        thread_timeout=thread_timeout, module=getattr(fn, "__module__", "") or "")
        externals: list[Any] = []
        if method == "fork":
            call.function, call.kwargs = fn, kwargs
            call.warning_sink = item.stash.get(WARNING_SINK, None)
            call.sidecar, call.log_writers = Sidecar(side.path), log_writers()
        else:
            try:
                externals = _pickle_pieces(item, call, fn, kwargs, method)
            except NotPicklableError as exc:
                refusal = str(exc)
            else:
                refusal = ""
            if refusal:
                # Outside the except clause: the message says it all, and pytest would
                # print the pickling errors chained under it, the message twice.
                _fail(refusal)
            call.rewrite = rewritten_modules(also=call.module)
            call.warning_filters = _warning_filters()
            call.log_levels = logger_levels()
            call.environ = dict(os.environ)
        fork_relay = relay_to_fork_child(call.sidecar) if call.sidecar else None
        with fork_relay or contextlib.nullcontext():
            handle = runner.start(IsolatedBody(call), externals)
        live = None
        if item.config.getoption("capture", None) == "no":
            live = _LiveOutput((handle._stdout_path, handle._stderr_path))
        try:
            outcome = handle.join()
        finally:
            if live is not None:
                live.stop()
        _relay_output(outcome, live)
        comparison = replay(side, getattr(item, "funcargs", {}))
    finally:
        runner.close()
        side.discard()
    _report(item, outcome, comparison)


_scratch: Optional[str] = None


def _scratch_dir() -> str:
    """One directory for the output files of every isolated child of this session (making
    and removing one per test costs more than the fork on some file systems)."""
    global _scratch
    if _scratch is None or not os.path.isdir(_scratch):
        _scratch = tempfile.mkdtemp(prefix="procthread-isolated-")
    return _scratch


def end_session() -> None:
    """Stop the warm templates and remove the scratch directory (at session end)."""
    global _scratch
    from . import _fork, _warden
    from .process import remove_idle_scratch, stop_templates

    _fork.reap_exiting()
    _warden.settle()  # started at session start for a run whose tests never forked
    stop_templates()
    remove_idle_scratch()
    if _scratch is not None:
        shutil.rmtree(_scratch, ignore_errors=True)
        _scratch = None


def _report(item: pytest.Item, outcome: Outcome, comparison: Any) -> None:
    __tracebackhide__ = True
    exc = outcome.exception
    if exc is not None:
        if comparison is not None:
            explain_comparison(item, exc, comparison)
        raise exc
    if outcome.returned:
        warn_returned(item, outcome.value)
        return
    item.ihook.pytest_procthread_isolated_crash(item=item, outcome=outcome)
    captured = item.config.getoption("capture", None) != "no"
    _fail(_died_message(item, outcome, captured))


def _fail(message: str) -> None:
    # Not hidden from tracebacks: pytest notes "all entries are hidden" when none is left;
    # with pytrace=False it prints only the message.
    pytest.fail(message, pytrace=False)


__all__ = [
    "MARKER",
    "OPTION",
    "BodyCall",
    "CaptureResult",
    "ChildCapture",
    "IsolatedBody",
    "RecordedCalls",
    "RewritingFinder",
    "run",
    "test_kwargs",
    "wanted",
]
