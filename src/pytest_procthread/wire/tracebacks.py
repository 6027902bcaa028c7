"""Tracebacks that cross from a child process and still read like local ones.

tblib carries a frame as file, function and line, and rebuilds it from a stub that starts
at the failing line: pytest then shows one line of source, no arguments, no locals for
``-l``, and carets (3.11+) under the wrong columns. Here each frame also carries where its
function starts, the span of the failing expression, the names pytest shows as the
function's arguments and bounded reprs of its locals; the test process compiles, per
frame, a stub whose code starts on the function's first line, takes those arguments, and
fails at the same line and columns. pytest reads everything else (the source) from the
file, as it would for a local frame.

Only exceptions take this path, so none of it costs a passing test anything.
"""

from __future__ import annotations

import functools
import itertools
import keyword
import linecache
import sys
import types
from typing import Any, Callable, NamedTuple, Optional

_CO_VARARGS, _CO_VARKEYWORDS = 0x04, 0x08
# Bounds on what a traceback carries: the frames nearest the failure, per frame.
_MAX_FRAMES = 100
_MAX_LOCALS = 50
_MAX_REPR = 240  # pytest's own bound for a local's repr (saferepr's maxsize)
_RAISER = "_procthread_raise"
_LOCALS = "_procthread_locals"

Position = Optional[tuple[Optional[int], Optional[int], Optional[int], Optional[int]]]
# positional, *args, keyword-only and **kwargs names of the frame's function
Signature = tuple[tuple[str, ...], Optional[str], tuple[str, ...], Optional[str]]
# file, function, qualified name, line, first line, position, signature, locals, hidden
Entry = tuple[str, str, str, int, int, Position, Signature, dict[str, str], bool]


class LocalRepr(str):
    """A local's repr made in the child: ``repr()`` gives it back as it was."""

    def __repr__(self) -> str:
        return str(self)


# -- in the child ----------------------------------------------------------------------------

def reduce_traceback(tb: types.TracebackType) -> tuple[Any, tuple[list[Entry]]]:
    """copyreg reducer for tracebacks: the whole chain as plain data."""
    chain = []
    current: Optional[types.TracebackType] = tb
    while current is not None:
        chain.append(current)
        current = current.tb_next
    first_carrying = len(chain) - _MAX_FRAMES
    return rebuild, ([_entry(t, i >= first_carrying) for i, t in enumerate(chain)],)


def _entry(tb: types.TracebackType, carry: bool) -> Entry:
    frame = tb.tb_frame
    code = frame.f_code
    try:
        f_locals = frame.f_locals
    except Exception:
        f_locals = {}
    hidden = f_locals.get("__tracebackhide__") is True
    values: dict[str, str] = {}
    signature: Signature = ((), None, (), None)
    # A module's locals are its globals: pytest shows them, but they say little and are many.
    if carry and f_locals is not frame.f_globals:
        for name, value in itertools.islice(f_locals.items(), _MAX_LOCALS):
            if _usable_name(name):
                values[name] = _safe_repr(value)
        signature = _signature(code)
    lineno = tb.tb_lineno if tb.tb_lineno is not None else code.co_firstlineno
    return (code.co_filename, code.co_name, getattr(code, "co_qualname", code.co_name),
            lineno, code.co_firstlineno, _position(tb), signature, values, hidden)


def _signature(code: types.CodeType) -> Signature:
    names = code.co_varnames
    count, kwcount = code.co_argcount, code.co_kwonlyargcount
    at = count + kwcount
    varargs = names[at] if code.co_flags & _CO_VARARGS else None
    at += varargs is not None
    varkw = names[at] if code.co_flags & _CO_VARKEYWORDS else None
    return tuple(names[:count]), varargs, tuple(names[count:count + kwcount]), varkw


def _usable_name(name: Any) -> bool:
    # "@py_assert1" and the like are the assertion rewriter's, which pytest never shows.
    return (isinstance(name, str) and bool(name) and not name.startswith("@")
            and name not in ("__tracebackhide__", _RAISER, _LOCALS))


def _plain_repr(value: Any) -> str:
    """Outside pytest: a bounded repr that survives a failing ``__repr__``."""
    try:
        text = repr(value)
    except Exception as exc:
        text = f"<[{type(exc).__name__} raised in repr()] {type(value).__name__} object>"
    return text if len(text) <= _MAX_REPR else text[:_MAX_REPR - 3] + "..."


_repr_function: Optional[Callable[[Any], str]] = None


def _safe_repr(value: Any) -> str:
    """pytest's own repr of a local, so that it reads the same in the report; looked up
    once, since a failed import would walk the import system again for every local."""
    global _repr_function
    if _repr_function is None:
        try:
            from _pytest._io.saferepr import saferepr
        except ImportError:
            _repr_function = _plain_repr
        else:
            _repr_function = functools.partial(saferepr, maxsize=_MAX_REPR)
    return str(_repr_function(value))


def _position(tb: types.TracebackType) -> Position:
    positions = getattr(tb.tb_frame.f_code, "co_positions", None)
    if positions is None or tb.tb_lasti < 0:
        return None
    try:
        return next(itertools.islice(positions(), tb.tb_lasti // 2, None))  # type: ignore[no-any-return]
    except Exception:
        return None


# -- in the test process ---------------------------------------------------------------------

# Without co_positions (before 3.11, PyPy 3.9) tracebacks have no columns, so a stub's
# expression may sit anywhere on its line.
_COLUMNS_FREE = not hasattr(types.CodeType, "co_positions")
# Names the stubs use; none of them can be a local of the stub at the same time.
_TABLES = ("_L", "_LL", "_LLL", _LOCALS)


def rebuild(entries: list[Entry]) -> Optional[types.TracebackType]:
    """The traceback of the child's chain, frame by frame (see the module's docstring)."""
    head: Optional[types.TracebackType] = None
    last: Optional[types.TracebackType] = None
    for entry in entries:
        tb = _frame(*entry)
        if tb is None:
            continue
        if last is None:
            head = tb
        else:
            last.tb_next = tb
        last = tb
    return head


class _Stub(NamedTuple):
    source: str
    function: bool = False
    renamed: dict[str, str] = {}
    first: int = 0  # co_firstlineno to set, for a stub of one line


def _frame(filename: str, name: str, qualname: str, lineno: int, first: int,
           position: Position, signature: Signature, values: dict[str, str],
           hidden: bool) -> Optional[types.TracebackType]:
    span = _span(filename, lineno, position)
    local_values: dict[str, Any] = {n: LocalRepr(v) for n, v in values.items()}
    if hidden:
        local_values["__tracebackhide__"] = True
    signature = _hiding(signature, local_values)
    for make in (_function_stub, _module_stub, _line_stub):
        stub = make(name, first, span, signature, local_values)
        if stub is None:
            continue
        try:
            code = compile(stub.source, filename, "exec")
            if stub.function:
                code = next(c for c in code.co_consts if isinstance(c, types.CodeType))
                code = code.replace(
                    co_varnames=tuple(stub.renamed.get(v, v) for v in code.co_varnames))
            if stub.first:
                code = code.replace(co_firstlineno=stub.first)
            code = code.replace(co_name=name)
            if hasattr(code, "co_qualname"):
                code = code.replace(co_qualname=qualname)  # type: ignore[call-arg,unused-ignore]
            return _run(code, stub.function, signature, local_values)
        except Exception:
            continue
    return None


def _span(filename: str, lineno: int, position: Position) -> tuple[int, int, int, int]:
    """Where the failing expression is: the child's position when it is on the failing
    line, else the whole line (pytest draws no carets under a whole line)."""
    if position is not None:
        line, end_line, col, end_col = position
        if (line == lineno and end_line is not None and col is not None
                and end_col is not None and (end_line > line or end_col > col)):
            return line, end_line, col, end_col
    text = linecache.getline(filename, lineno).rstrip()
    indent = len(text) - len(text.lstrip())
    if not text.strip():
        return lineno, lineno, 4, 5
    return lineno, lineno, len(text[:indent].encode()), len(text.encode())


def _expression(span: tuple[int, int, int, int], values: dict[str, Any]) -> list[str]:
    """The lines, from the span's first to its last, of an expression that raises with
    exactly that span: an unknown name on one line, a call across several."""
    line, end_line, col, end_col = span
    if end_line == line:
        for char in "_QZ":
            unknown = char * (end_col - col)
            if unknown not in values:
                return [" " * col + unknown]
    return ([" " * col + _RAISER + "("] + [""] * (end_line - line - 1)
            + [" " * max(end_col - 1, 0) + ")"])


def _function_stub(name: str, first: int, span: tuple[int, int, int, int],
                   signature: Signature, values: dict[str, Any]) -> Optional[_Stub]:
    """The stub's def on the function's first line (pytest shows the source from there),
    with the function's own parameters (pytest lists them as its arguments); the other
    locals are set between the def and the failing expression, where there is room."""
    line, _, col, _ = span
    if name == "<module>" or not 0 < first <= line or col < 1:
        return None
    positional, varargs, kwonly, varkw = signature
    # A parameter whose name is no identifier (a comprehension's ".0") gets one here,
    # and its own name back in the compiled code.
    renamed: dict[str, str] = {}
    for index, param in enumerate((*positional, *kwonly)):
        if not param.isidentifier():
            renamed[next(f"_{index}{'_' * n}" for n in range(9)
                         if f"_{index}{'_' * n}" not in values)] = param
    alias = {real: stand for stand, real in renamed.items()}
    params = [alias.get(n, n) for n in positional]
    if varargs or kwonly:
        params.append(f"*{varargs or ''}")
    params += [alias.get(n, n) for n in kwonly]
    if varkw:
        params.append(f"**{varkw}")
    header = f"def _({', '.join(params)}):"  # short: on a lambda's line it must fit
    taken = {*positional, *kwonly}  # *args and **kwargs are set with the other locals
    table = next(n for n in _TABLES if n not in values)
    assigns = "; ".join(f"{n}={table}[{n!r}]" for n in values
                        if n not in taken and n.isidentifier() and not keyword.iskeyword(n))
    if _COLUMNS_FREE:  # move the expression right, to make room before it
        room = len(f"{header} {assigns}; ") if line == first else len(assigns) + 3
        if room > col:
            span = (line, span[1], room, span[3] + room - col)
            col = room
    expression = _expression(span, values)
    if line == first:  # a lambda, a comprehension: the def shares the failing line
        prefix = f"{header} {assigns}; " if assigns else f"{header} "
        if len(prefix) > col:
            prefix = f"{header} "
        if len(prefix) > col:
            return None
        expression[0] = prefix + expression[0][len(prefix):]
        lines = [""] * (first - 1)
    else:
        lines = [""] * (first - 1) + [header] + [""] * (line - first - 1)
        if assigns and line - first >= 2:
            lines[first] = " " * col + assigns
        elif assigns and col >= len(assigns) + 3:
            expression[0] = f" {assigns}; " + expression[0][len(assigns) + 3:]
    return _Stub("\n".join(lines + expression) + "\n", function=True, renamed=renamed)


def _module_stub(name: str, first: int, span: tuple[int, int, int, int],
                 signature: Signature, values: dict[str, Any]) -> Optional[_Stub]:
    """A module's code starts at line 1; an indented expression goes in an "if" block."""
    line, _, col, _ = span
    if name != "<module>" or (col > 0 and line < 2):
        return None
    lines = [""] * (line - 1)
    if col > 0:
        lines[-1] = "if 1:"
    return _Stub("\n".join(lines + _expression(span, values)) + "\n")


def _line_stub(name: str, first: int, span: tuple[int, int, int, int],
               signature: Signature, values: dict[str, Any]) -> Optional[_Stub]:
    """One line, renumbered: pytest shows that line only (as tblib's frames do). The
    expression keeps its columns where an "if" block leaves room for them."""
    line, end_line, col, end_col = span
    if col < 6:
        col, end_col = 0, max(end_col - col, 1)
    lines = _expression((1, 1 + end_line - line, col, end_col), values)
    if col:
        lines[0] = "if 1:" + lines[0][5:]
    return _Stub("\n".join(lines) + "\n", first=line)


def _hiding(signature: Signature, values: dict[str, Any]) -> Signature:
    """A hidden frame's ``__tracebackhide__`` as one more keyword-only parameter: pytest
    never shows a hidden frame's arguments, and a parameter needs no line of its own."""
    if "__tracebackhide__" not in values:
        return signature
    positional, varargs, kwonly, varkw = signature
    return positional, varargs, (*kwonly, "__tracebackhide__"), varkw


def _raise(*args: Any, **kwargs: Any) -> None:
    raise RuntimeError("traceback stub")


def _run(code: types.CodeType, function: bool, signature: Signature,
         values: dict[str, Any]) -> Optional[types.TracebackType]:
    """Run the stub once; its frame, which holds the child's locals, is the entry."""
    # No builtins: the unknown name must not be found anywhere.
    namespace: dict[str, Any] = {"__builtins__": {}, _RAISER: _raise}
    namespace.update(dict.fromkeys(_TABLES, values))
    try:
        if function:
            positional, _, kwonly, _ = signature
            missing = LocalRepr("<not set>")
            stub = types.FunctionType(
                code, namespace, None, tuple(values.get(n, missing) for n in positional)
            )
            stub.__kwdefaults__ = {n: values.get(n, missing) for n in kwonly}
            stub()
        else:
            exec(code, namespace, dict(values))
    except Exception:
        tb = sys.exc_info()[2]
        entry = tb.tb_next if tb is not None else None
        if entry is not None:
            entry.tb_next = None  # the raiser's own frame, under a call across lines
        return entry
    return None
