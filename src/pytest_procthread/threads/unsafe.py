"""Which tests cannot run in several threads at once, and why: the decision to run a test
once instead of fanning it out.

A test is thread-unsafe when it says so (``@pytest.mark.thread_unsafe(reason=...)``),
when it uses a fixture whose state is one per process (output capture, ``monkeypatch``,
``recwarn`` before context-aware warnings, the ini key's list), or when its code, or the
code of the functions it calls in the project's own modules (three calls deep), calls
something whose effect is process-wide: catching warnings (``pytest.warns``,
``pytest.deprecated_call``, ``warnings.catch_warnings``, unittest's ``assertWarns``)
before Python 3.14's context-aware warnings, ``unittest.mock.patch`` (also as a
decorator), or a function the ini key lists. Names are resolved to the objects they
are bound to, so ``from unittest.mock import patch as p`` is recognised.
"""

from __future__ import annotations

import ast
import inspect
import os
import sys
import textwrap
import types
import warnings
from typing import Any, Callable, Optional

import pytest

from ..options import THREAD_UNSAFE_MARKER, UNSAFE_FIXTURES_INI, UNSAFE_FUNCTIONS_INI

_DEPTH = 3
# Warnings are caught per thread (and context) only with both flags, Python 3.14+.
WARNINGS_PER_THREAD = bool(getattr(sys.flags, "context_aware_warnings", 0)
                           and getattr(sys.flags, "thread_inherit_context", 0))
_WARNINGS_WHY = "warnings are caught for the whole process (before Python 3.14's " \
                "context-aware warnings)"
_CAPTURE_WHY = "output is captured once for the whole process"
_FIXTURES: dict[str, str] = {
    "capsys": _CAPTURE_WHY,
    "capsysbinary": _CAPTURE_WHY,
    "capfd": _CAPTURE_WHY,
    "capfdbinary": _CAPTURE_WHY,
    "capteesys": _CAPTURE_WHY,
    "monkeypatch": "its patches are made and undone for the whole process",
}
if not WARNINGS_PER_THREAD:
    _FIXTURES["recwarn"] = _WARNINGS_WHY
_MOCK_MODULES = ("unittest.mock", "mock", "mock.mock")
_WARNING_METHODS = ("assertWarns", "assertWarnsRegex", "assertNoLogs", "assertLogs")


def _warning_catchers() -> dict[int, str]:
    if WARNINGS_PER_THREAD:
        return {}
    return {id(pytest.warns): "pytest.warns", id(pytest.deprecated_call):
            "pytest.deprecated_call", id(warnings.catch_warnings): "warnings.catch_warnings"}


class Detector:
    """Decides, once per test function, whether its code is thread-unsafe."""

    def __init__(self, fixtures: frozenset[str] = frozenset(),
                 functions: frozenset[str] = frozenset(), root: str = "") -> None:
        self.fixtures = dict(_FIXTURES)
        for name in fixtures:
            self.fixtures[name] = f"listed in {UNSAFE_FIXTURES_INI}"
        self.functions = functions
        self.root = os.path.abspath(root) if root else ""
        self.catchers = _warning_catchers()
        self._seen: dict[Any, Optional[str]] = {}

    def why(self, item: pytest.Item) -> Optional[str]:
        """Why ``item`` must run in one thread, or None."""
        marker = item.get_closest_marker(THREAD_UNSAFE_MARKER)
        if marker is not None:
            reason = marker.kwargs.get("reason") or (marker.args[0] if marker.args else "")
            return f"marked {THREAD_UNSAFE_MARKER}" + (f": {reason}" if reason else "")
        for name in getattr(item, "fixturenames", ()):
            if name in self.fixtures:
                return f"uses fixture {name!r} ({self.fixtures[name]})"
        fn = getattr(item, "obj", None)
        return self.of_function(fn) if callable(fn) else None

    def of_function(self, fn: Callable[..., Any], depth: int = 0) -> Optional[str]:
        """Why calling ``fn`` in several threads at once is unsafe, or None."""
        if getattr(fn, "patchings", None):
            return "is decorated with unittest.mock.patch (a patch is process-wide)"
        target = inspect.unwrap(fn)
        if getattr(target, "patchings", None):
            return "is decorated with unittest.mock.patch (a patch is process-wide)"
        code = getattr(target, "__code__", None)
        if code is None:
            return None
        if code in self._seen:
            return self._seen[code]
        self._seen[code] = None  # a function calling itself is not unsafe for it
        found = self._read(target, depth)
        self._seen[code] = found
        return found

    def _read(self, fn: Any, depth: int) -> Optional[str]:
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
        except (OSError, TypeError, SyntaxError, ValueError):
            return None  # no source (built at run time, or a C function): nothing to read
        names = _Names(fn)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            chain = _chain(node.func)
            if not chain:
                continue
            if chain[0] == "self" and len(chain) == 2 and chain[1] in _WARNING_METHODS:
                if not WARNINGS_PER_THREAD or chain[1] in ("assertLogs", "assertNoLogs"):
                    what = ("logging handlers are the whole process's"
                            if "Logs" in chain[1] else _WARNINGS_WHY)
                    return f"calls self.{chain[1]} ({what})"
                continue
            target = names.resolve(chain)
            if target is None:
                continue
            reason = self._called(target, ".".join(chain), depth)
            if reason is not None:
                return reason
        return None

    def _called(self, target: Any, spelled: str, depth: int) -> Optional[str]:
        name = self.catchers.get(id(target))
        if name is not None:
            return f"calls {name} ({_WARNINGS_WHY})"
        module = getattr(target, "__module__", None) or ""
        qualname = getattr(target, "__qualname__", None) or getattr(target, "__name__", "")
        if module in _MOCK_MODULES and "patch" in str(qualname):
            return f"calls {spelled} (unittest.mock.patch: a patch is process-wide)"
        if self.functions and _listed(self.functions, module, str(qualname)):
            return f"calls {module}.{qualname} (listed in {UNSAFE_FUNCTIONS_INI})"
        if depth + 1 < _DEPTH and isinstance(target, types.FunctionType) and self._ours(target):
            inner = self.of_function(target, depth + 1)
            if inner is not None:
                return f"{inner}, through {qualname}()"
        return None

    def _ours(self, fn: types.FunctionType) -> bool:
        """A function of the project under test (its file under the rootdir), not of a
        library: only those are read further."""
        filename = os.path.abspath(fn.__code__.co_filename)
        return bool(self.root) and filename.startswith(self.root + os.sep) and \
            os.sep + "site-packages" + os.sep not in filename


def _listed(listed: frozenset[str], module: str, qualname: str) -> bool:
    full = f"{module}.{qualname}"
    for entry in listed:
        if entry == full or (entry.endswith(".*") and
                             (module == entry[:-2] or module.startswith(entry[:-1]))):
            return True
    return False


def _chain(node: ast.expr) -> list[str]:
    """``a.b.c`` as ["a", "b", "c"]; [] for a call on anything but names."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.insert(0, node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return []
    return [node.id, *parts]


class _Names:
    """What a name in a function's code is bound to: its globals, closure, builtins."""

    def __init__(self, fn: Any) -> None:
        self.scope: dict[str, Any] = dict(getattr(fn, "__builtins__", None) or {}) \
            if isinstance(getattr(fn, "__builtins__", None), dict) else {}
        self.scope.update(getattr(fn, "__globals__", {}) or {})
        code, closure = fn.__code__, getattr(fn, "__closure__", None) or ()
        for name, cell in zip(code.co_freevars, closure):
            try:
                self.scope[name] = cell.cell_contents
            except ValueError:  # an empty cell
                continue

    def resolve(self, chain: list[str]) -> Any:
        if chain[0] not in self.scope:
            return None
        value = self.scope[chain[0]]
        for attr in chain[1:]:
            # Only through modules and classes: reading an instance's attribute could run
            # a property's code.
            if not isinstance(value, (types.ModuleType, type)) and not callable(value):
                return None
            try:
                value = inspect.getattr_static(value, attr)
            except AttributeError:
                return None
            if isinstance(value, (staticmethod, classmethod)):
                value = value.__func__
        return value


def plugin_detector(config: pytest.Config) -> Detector:
    """A detector with the ini keys' lists and the run's root directory."""
    return Detector(
        frozenset(config.getini(UNSAFE_FIXTURES_INI) or ()),
        frozenset(config.getini(UNSAFE_FUNCTIONS_INI) or ()),
        str(config.rootpath),
    )


__all__ = ["WARNINGS_PER_THREAD", "Detector", "plugin_detector"]
