"""Pieces of a test that travel to a fresh child by where they are written, not by value.

A fresh child (spawn, forkserver) imports the test's module itself, and what that import
recreates need not be pickled. Sending it by value is often impossible, and where it is
possible it may give the child a copy that is no longer the module's own object:

- the test function, found as the attribute it is bound to in its module: a decorated
  function (hypothesis's ``@given`` among them) has its wrapper's ``__qualname__``
  (``given.<locals>.run_test``), which pickle cannot follow back to the module;
- a value of ``@pytest.mark.parametrize``, found by its place in the marker's arguments:
  a stream, a lock, a sentinel that the code under test compares with ``is``, a function
  made at import (attrs' ``setters.pipe(...)``).

The test process says where each piece is (:func:`function_reference`,
:func:`parameter_reference`), having checked that the place holds that very object; the
child finds it again there (:meth:`Reference.resolve`).
"""

from __future__ import annotations

import importlib
import types
from typing import Any, Optional

import pytest

# Values that plain pickle sends as themselves: for these, by value is as good as by place.
_PLAIN = (type(None), bool, int, float, complex, str, bytes)


class UnresolvedReference(LookupError):
    """A reference that the child could not follow (its module changed, or it is made
    differently on each import)."""


class Reference:
    """Where a piece of the test is: a module, a path of attributes in it, and, for a
    parametrize value, which marker and which of its values."""

    __slots__ = ("mark", "module", "path", "position", "value_index")

    def __init__(self, module: str, path: tuple[str, ...], mark: Optional[int] = None,
                 value_index: int = 0, position: Optional[int] = None) -> None:
        self.module = module
        self.path = path  # attribute names from the module to the object, or to the marks' owner
        self.mark = mark  # the index in the owner's pytestmark list, for a parametrize value
        self.value_index = value_index  # which of the marker's argvalues
        self.position = position  # which of several argnames, or None for one

    def __repr__(self) -> str:
        where = ".".join((self.module, *self.path))
        if self.mark is None:
            return f"<reference to {where}>"
        return f"<reference to value {self.value_index} of mark {self.mark} on {where}>"

    def resolve(self) -> Any:
        """In the child: the object this reference names."""
        owner: Any = importlib.import_module(self.module)
        try:
            for name in self.path:
                owner = getattr(owner, name)
            found = owner
            if self.mark is not None:
                mark = _mark_of(_marks(owner)[self.mark])
                found = _unpacked(_argvalues(mark)[self.value_index], self.position)
        except (AttributeError, IndexError, TypeError, ValueError) as exc:
            raise UnresolvedReference(f"{self!r} finds nothing there: {exc}") from None
        # What the child's import made there, which need not be of the same type as the
        # test process's: sys.stdout is pytest's capture there, a plain stream here.
        return found


def _marks(owner: Any) -> list[Any]:
    marks = getattr(owner, "pytestmark", [])
    return marks if isinstance(marks, list) else [marks]


def _mark_of(entry: Any) -> pytest.Mark:
    mark = getattr(entry, "mark", entry)  # a MarkDecorator carries its Mark
    if not isinstance(mark, pytest.Mark):
        raise TypeError(f"{entry!r} is not a mark")
    return mark


def _argnames(mark: pytest.Mark) -> list[str]:
    names = mark.args[0] if mark.args else mark.kwargs.get("argnames", ())
    if isinstance(names, str):
        return [name.strip() for name in names.split(",") if name.strip()]
    return list(names)


def _argvalues(mark: pytest.Mark) -> list[Any]:
    values = mark.args[1] if len(mark.args) > 1 else mark.kwargs.get("argvalues", ())
    return list(values)


_PARAMETER_SET = type(pytest.param(None))  # what pytest.param(...) makes


def _unpacked(value: Any, position: Optional[int]) -> Any:
    """The value for one argname out of an entry of argvalues."""
    if isinstance(value, _PARAMETER_SET):
        value = value.values if position is not None else value.values[0]
    return value if position is None else value[position]


def function_reference(item: pytest.Function) -> Optional[Reference]:
    """The test function of ``item`` by its module and name, where that finds it."""
    fn = item.obj
    module = getattr(item, "module", None)
    if isinstance(fn, types.MethodType) or module is None:
        return None  # a method travels with its instance, as getattr(instance, name)
    name = getattr(item, "originalname", item.name)
    if getattr(module, name, None) is not fn:
        return None
    return Reference(module.__name__, (name,))


def parameter_reference(item: pytest.Function, argname: str) -> Optional[Reference]:
    """The value of parameter ``argname`` of ``item`` by its place in the
    ``@pytest.mark.parametrize`` that gives it; None for plain data (it travels as itself)
    or where the value comes from elsewhere (a hook's ``metafunc.parametrize``)."""
    callspec = getattr(item, "callspec", None)
    module = getattr(item, "module", None)
    if callspec is None or module is None or argname not in callspec.params:
        return None
    value = callspec.params[argname]
    if type(value) in _PLAIN or item.funcargs.get(argname) is not value:
        return None  # plain data, or an indirect parameter (the fixture made the value)
    # Found by identity: callspec.indices counts the item's combinations, not the
    # marker's values, once several parametrize marks combine.
    for path, owner in _mark_owners(item, module):
        for mark_index, entry in enumerate(_marks(owner)):
            found = _place(entry, argname, value)
            if found is not None:
                return Reference(module.__name__, path, mark_index, *found)
    return None


def _mark_owners(item: pytest.Function, module: Any) -> list[tuple[tuple[str, ...], Any]]:
    """The objects whose ``pytestmark`` may hold the item's parametrize marks, with their
    paths from the module: the function, its class (and the classes it is in), the
    module."""
    owners: list[tuple[tuple[str, ...], Any]] = []
    cls = getattr(item, "cls", None)
    name = getattr(item, "originalname", item.name)
    class_path: Optional[tuple[str, ...]] = None
    if cls is not None:
        qualname = getattr(cls, "__qualname__", "")
        if "<locals>" not in qualname:
            class_path = tuple(qualname.split("."))
    if cls is None:
        owners.append(((name,), getattr(module, name, None)))
    elif class_path is not None:
        owners.append(((*class_path, name), getattr(cls, name, None)))
        for depth in range(len(class_path), 0, -1):
            owner: Any = module
            for part in class_path[:depth]:
                owner = getattr(owner, part, None)
            owners.append((class_path[:depth], owner))
    owners.append(((), module))
    return [(path, owner) for path, owner in owners if owner is not None]


def _place(entry: Any, argname: str, value: Any) -> Optional[tuple[int, Optional[int]]]:
    """``(value index, position)`` if ``entry`` is a parametrize mark that gives ``value``
    to ``argname``; else None."""
    try:
        mark = _mark_of(entry)
    except TypeError:
        return None
    if mark.name != "parametrize":
        return None
    names = _argnames(mark)
    if argname not in names:
        return None
    position = None if len(names) == 1 else names.index(argname)
    try:
        values = _argvalues(mark)
    except TypeError:
        return None
    for index, candidate in enumerate(values):
        try:
            if _unpacked(candidate, position) is value:
                return index, position
        except (IndexError, TypeError):
            continue
    return None
