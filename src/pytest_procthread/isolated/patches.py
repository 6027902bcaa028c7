"""What the test's fixtures patched with ``monkeypatch``, made again in a fresh child.

Fixtures run in the test process. One that patches module state
(``monkeypatch.setattr(sys, "platform", "ios")``, a stand-in module in ``sys.modules``)
changes the test process, which a fork child inherits and a fresh child (spawn,
forkserver) does not have. So the patches recorded on the test's ``monkeypatch`` by the
time its body starts travel with the call, and the child makes them again, in order,
before it rebuilds the body's arguments:

- ``setattr``/``delattr`` on a module, a class, or an object that is an attribute of a
  module (``sys.implementation``), with the value as it is now, pickled;
- ``setitem``/``delitem`` on such a mapping; an entry of ``sys.modules`` travels as the
  module it names (imported by name where it has a file, else made anew with its
  attributes). ``os.environ`` is not replayed: the environment travels whole.

The working directory and ``sys.path`` travel whole as well. A patch whose target or
value cannot travel is left out; the body then runs without it, as it would have before.
"""

from __future__ import annotations

import importlib
import os
import sys
import types
from typing import Any, Optional

from ..wire import pickling

Where = tuple[str, tuple[str, ...]]  # a module's name, and attribute names from it


class Patch:
    """One recorded change: ``kind`` (setattr, delattr, setitem, delitem, module) on the
    object at ``target``, under ``name``, to the pickled ``value``."""

    __slots__ = ("kind", "name", "target", "value")

    def __init__(self, kind: str, target: Optional[Where], name: Any, value: bytes = b"") -> None:
        self.kind, self.target, self.name, self.value = kind, target, name, value

    def __repr__(self) -> str:
        return f"<patch {self.kind} {self.name!r} on {self.target}>"


# -- in the test process ---------------------------------------------------------------------

_MISSING = object()


def recorded(monkeypatch: Any) -> list[Patch]:
    """The patches ``monkeypatch`` holds, as records that travel. Read from its own
    lists, which pytest has kept under these names since its first releases; if they
    are ever gone, nothing is replayed."""
    patches: list[Patch] = []
    for target, name, _ in list(getattr(monkeypatch, "_setattr", ())):
        patch = _attribute_patch(target, name)
        if patch is not None:
            patches.append(patch)
    for mapping, key, _ in list(getattr(monkeypatch, "_setitem", ())):
        patch = _item_patch(mapping, key)
        if patch is not None:
            patches.append(patch)
    return patches


def _attribute_patch(target: Any, name: str) -> Optional[Patch]:
    where = _path_of(target)
    if where is None:
        return None
    value = getattr(target, name, _MISSING)
    if value is _MISSING:
        return Patch("delattr", where, name)
    data = _dumped(value)
    return None if data is None else Patch("setattr", where, name, data)


def _item_patch(mapping: Any, key: Any) -> Optional[Patch]:
    if mapping is os.environ:
        return None  # the environment travels whole
    if mapping is sys.modules:
        module = mapping.get(key)
        return None if module is None else _module_patch(key, module)
    where = _path_of(mapping)
    if where is None:
        return None
    if key not in mapping:
        return Patch("delitem", where, key)
    data = _dumped(mapping[key])
    return None if data is None else Patch("setitem", where, key, data)


def _module_patch(key: str, module: Any) -> Optional[Patch]:
    if not isinstance(module, types.ModuleType):
        data = _dumped(module)
        return None if data is None else Patch("setitem", ("sys", ("modules",)), key, data)
    spec = getattr(module, "__spec__", None)
    if spec is not None:  # imported from somewhere: the child imports it by that name
        return Patch("module", None, key, _dumped(spec.name) or b"")
    attributes = {name: value for name, value in vars(module).items()
                  if not name.startswith("__") and _dumped(value) is not None}
    data = _dumped((module.__name__, attributes))
    return None if data is None else Patch("module", None, key, data)


def _dumped(value: Any) -> Optional[bytes]:
    try:
        data, externals = pickling.dumps(value)
    except Exception:
        return None
    return None if externals else data


def _path_of(target: Any) -> Optional[Where]:
    """Where ``target`` is found from a module: the module itself, a class by its
    qualified name, or an attribute of a loaded module (the first found)."""
    if isinstance(target, types.ModuleType):
        name = getattr(target, "__name__", "")
        return (name, ()) if sys.modules.get(name) is target else None
    if isinstance(target, type) and "<locals>" not in target.__qualname__:
        owner: Any = sys.modules.get(target.__module__)
        path = tuple(target.__qualname__.split("."))
        for part in path:
            owner = getattr(owner, part, None)
        if owner is target:
            return (target.__module__, path)
    known = _found_before.get(id(target))
    if known is not None and known[0] is target:
        return known[1]
    for name, module in list(sys.modules.items()):
        for attribute, value in list(getattr(module, "__dict__", {}).items()):
            if value is target:
                _found_before[id(target)] = (target, (name, (attribute,)))
                return (name, (attribute,))
    return None


# Objects found by the scan of every module, kept (they are module attributes anyway).
_found_before: dict[int, tuple[Any, Where]] = {}


# -- in the child ----------------------------------------------------------------------------

def replay(patches: list[Patch]) -> None:
    """Make the patches again, in order. A patch that fails here is left out, as one
    that could not travel is."""
    for patch in patches:
        try:
            _apply(patch)
        except Exception:
            continue


def _found(path: Where) -> Any:
    owner: Any = importlib.import_module(path[0])
    for part in path[1]:
        owner = getattr(owner, part)
    return owner


def _apply(patch: Patch) -> None:
    if patch.kind == "module":
        sys.modules[patch.name] = _module(pickling.loads(patch.value, []))
        return
    assert patch.target is not None
    target = _found(patch.target)
    if patch.kind == "setattr":
        setattr(target, patch.name, pickling.loads(patch.value, []))
    elif patch.kind == "delattr":
        delattr(target, patch.name)
    elif patch.kind == "setitem":
        target[patch.name] = pickling.loads(patch.value, [])
    elif patch.kind == "delitem":
        del target[patch.name]


def _module(value: Any) -> types.ModuleType:
    if isinstance(value, str):  # a module with a file: the child imports it
        return importlib.import_module(value)
    name, attributes = value
    module = types.ModuleType(name)
    vars(module).update(attributes)
    return module
