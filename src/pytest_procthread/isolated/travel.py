"""What an isolated test's child is given: the test function and its arguments, each
packed apart under ``spawn`` and ``forkserver`` (pickled, or by reference, see
``references``) so that one that cannot travel is named, the test process's warning
filters, and the modules pytest rewrote."""

from __future__ import annotations

import inspect
import os
import pickle
import sys
import types
import warnings
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

from ..errors import NotPicklableError
from ..options import ISOLATED_MARKER as MARKER
from ..wire import pickling
from .references import Reference, function_reference, parameter_reference
from .standins import stand_ins
from .testcase import is_case, run_case

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


def body_of(item: pytest.Function, fresh: bool) -> tuple[Callable[..., Any], dict[str, Any]]:
    """What the child calls for ``item``, and with what: the test function with its
    arguments (stand-ins for the fixtures that need one), or for a unittest method,
    ``testcase.run_case`` with the case. ``fresh``: the child is a new interpreter."""
    if is_case(item):
        return run_case, {"case": item.instance, "fresh": fresh}
    return item.obj, stand_ins(test_kwargs(item), inherited=not fresh)


def conftest_modules(item: pytest.Item) -> tuple[str, ...]:
    """The names of the conftest modules that pytest imported for ``item``, outermost
    first: a fresh child imports them before the test's module, for what their import
    does (``import click.testing`` makes ``click.testing`` an attribute of ``click``)."""
    directory = Path(str(item.path)).parent
    known = item.config.stash.setdefault(_CONFTESTS, {})
    if directory not in known:
        known[directory] = _conftests_of(item.config, directory)
    return known[directory]


_CONFTESTS = pytest.StashKey[dict[Path, tuple[str, ...]]]()


def _conftests_of(config: pytest.Config, directory: Path) -> tuple[str, ...]:
    found = []
    for plugin in config.pluginmanager.get_plugins():
        file = getattr(plugin, "__file__", None)
        if not isinstance(plugin, types.ModuleType) or not file \
                or os.path.basename(file) != "conftest.py":
            continue
        where = Path(file).parent
        if where == directory or where in directory.parents:
            found.append((len(where.parts), plugin.__name__))
    return tuple(name for _, name in sorted(found))


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
    if is_case(item):
        return f"the unittest case {item.nodeid}" if name == "case" else repr(name)
    callspec = getattr(item, "callspec", None)
    if callspec is not None and name in getattr(callspec, "params", {}):
        return f"parameter {name!r}"
    return f"fixture {name!r}"


Pieces = dict[str, tuple[bytes, int, int]]


class Packed:
    """The test function and its arguments, ready to travel: each piece pickled apart
    (name -> (data, first external, number of externals)), or sent as a reference
    (see ``references``); what each piece is ("fixture 'db'"); the externals."""

    __slots__ = ("externals", "labels", "pieces", "references")

    def __init__(self) -> None:
        self.pieces: Pieces = {}
        self.labels: dict[str, str] = {}
        self.externals: list[Any] = []
        self.references: dict[str, Reference] = {}


def pack(item: pytest.Function, fn: Callable[..., Any], kwargs: dict[str, Any],
         method: str) -> Packed:
    """Pack the test function and each argument apart. A parametrize value that is not
    plain data goes as a reference (a fresh import recreates it, as itself); the function
    goes as a reference where pickle cannot take it. Raises NotPicklableError naming the
    piece that cannot travel, and what to do."""
    packed = Packed()
    for name, value in ((FUNCTION_PIECE, fn), *kwargs.items()):
        what = (
            f"the test function {item.nodeid}" if name == FUNCTION_PIECE
            else _describe_argument(item, name)
        )
        packed.labels[name] = what
        reference = None if name == FUNCTION_PIECE else parameter_reference(item, name)
        if reference is not None:
            packed.references[name] = reference
            continue
        try:
            data, found = pickling.dumps(value)
        except Exception as exc:
            reference = function_reference(item) if name == FUNCTION_PIECE else None
            if reference is not None:
                packed.references[name] = reference
                continue
            raise NotPicklableError(
                f"{what} cannot travel to the isolated child of {item.nodeid}, started "
                f"with {method!r}: {pickling.describe_unpicklable('its value', value, exc, '')}"
                f"Under {method!r} every argument of the test is pickled. Isolate this test "
                f"with @pytest.mark.{MARKER}(start_method='fork') where the platform has "
                f"fork (the child then inherits the value as it is), or "
                f"{_PICKLABLE_ADVICE.get(name, _PICKLABLE_ADVICE[''])}.",
                what=what, start_method=method,
            ) from exc
        packed.pieces[name] = (data, len(packed.externals), len(found))
        packed.externals += found
    return packed


# Pickled once per change of the filters; declared before the function that rebinds it
# because PyPy 3.9 rejects an annotated module name that a `global` statement precedes.
_filters_made: Optional[tuple[list[Any], list[bytes]]] = None


def warning_filters() -> list[bytes]:
    """The test process's warning filters, pickled: all in one piece where they can be,
    else each apart (a filter whose category the child cannot import cannot match there
    either). Made again only when the filters change."""
    global _filters_made
    current = list(warnings.filters)
    if _filters_made is not None and _filters_made[0] == current:
        return _filters_made[1]
    try:
        blobs = [pickle.dumps(current)]
    except Exception:
        blobs = []
        for entry in current:
            try:
                blobs.append(pickle.dumps([entry]))
            except Exception:
                continue
    _filters_made = (current, blobs)
    return blobs


def load_filters(blobs: list[bytes]) -> list[Any]:
    """In the child: the filters of :func:`warning_filters` that it can rebuild."""
    filters: list[Any] = []
    for blob in blobs:
        try:
            filters += pickle.loads(blob)
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
