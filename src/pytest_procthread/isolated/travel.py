"""What an isolated test's child is given: the test function and its arguments, each
pickled apart under ``spawn`` and ``forkserver`` so that one that cannot travel is named,
the test process's warning filters, and the modules pytest rewrote."""

from __future__ import annotations

import inspect
import pickle
import sys
import warnings
from typing import Any, Callable, Optional

import pytest

from ..errors import NotPicklableError
from ..options import ISOLATED_MARKER as MARKER
from ..wire import pickling

FUNCTION_PIECE = "\x00function"

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


def _describe_argument(item: pytest.Item, name: str) -> str:
    callspec = getattr(item, "callspec", None)
    if callspec is not None and name in getattr(callspec, "params", {}):
        return f"parameter {name!r}"
    return f"fixture {name!r}"


Pieces = dict[str, tuple[bytes, int, int]]


def pickle_pieces(
    item: pytest.Function, fn: Callable[..., Any], kwargs: dict[str, Any], method: str,
) -> tuple[Pieces, dict[str, str], list[Any]]:
    """The test function and each argument pickled apart: name -> (data, first external,
    number of externals); name -> what it is ("fixture 'db'"); the externals.

    Raises NotPicklableError naming the piece that cannot travel and what to do."""
    pieces: Pieces = {}
    labels: dict[str, str] = {}
    externals: list[Any] = []
    for name, value in ((FUNCTION_PIECE, fn), *kwargs.items()):
        what = (
            f"the test function {item.nodeid}" if name == FUNCTION_PIECE
            else _describe_argument(item, name)
        )
        labels[name] = what
        try:
            data, found = pickling.dumps(value)
        except Exception as exc:
            raise NotPicklableError(
                f"{what} cannot travel to the isolated child of {item.nodeid}, started "
                f"with {method!r}: {pickling.describe_unpicklable('its value', value, exc, '')}"
                f"Under {method!r} every argument of the test is pickled. Isolate this test "
                f"with @pytest.mark.{MARKER}(start_method='fork') where the platform has "
                f"fork (the child then inherits the value as it is), or "
                f"{_PICKLABLE_ADVICE.get(name, _PICKLABLE_ADVICE[''])}.",
                what=what, start_method=method,
            ) from exc
        pieces[name] = (data, len(externals), len(found))
        externals += found
    return pieces, labels, externals


def warning_filters() -> list[bytes]:
    """The test process's warning filters, each pickled apart (a filter whose category
    the child cannot import cannot match there either)."""
    blobs = []
    for entry in warnings.filters:
        try:
            blobs.append(pickle.dumps(entry))
        except Exception:
            continue
    return blobs


def load_filters(blobs: list[bytes]) -> list[Any]:
    """In the child: the filters of :func:`warning_filters` that it can rebuild."""
    filters = []
    for blob in blobs:
        try:
            filters.append(pickle.loads(blob))
        except Exception:
            continue
    return filters


def _rewriting_hook_class() -> Optional[type]:
    try:
        from _pytest.assertion.rewrite import AssertionRewritingHook
    except ImportError:
        return None
    return AssertionRewritingHook


_REWRITING_HOOK = _rewriting_hook_class()
_rewritten_cache: tuple[int, dict[str, tuple[int, str]]] = (-1, {})


def _rewritten_origin(module: Any) -> Optional[str]:
    spec = getattr(module, "__spec__", None)
    origin = getattr(spec, "origin", None)
    if (_REWRITING_HOOK is not None and isinstance(getattr(spec, "loader", None), _REWRITING_HOOK)
            and isinstance(origin, str)):
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
