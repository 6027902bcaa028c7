"""The pickling policy: how calls, arguments and results are turned into bytes.

Plain pickle first (it is what multiprocessing does and keeps children light); cloudpickle
when plain pickle cannot do it (lambdas, closures, functions defined inside a test).
Objects that only multiprocessing knows how to send (pipes, queues, locks, shared values,
sockets, our own pipe ends) are lifted out of the payload and handed to multiprocessing,
which passes them while it starts the child, the only moment it allows that.
"""

from __future__ import annotations

import io
import pickle
from typing import Any, Callable, Optional

from ..errors import NotPicklableError


def _multiprocessing_reducers() -> dict[type, Any]:
    from multiprocessing import reduction

    return dict(getattr(reduction.ForkingPickler, "_extra_reducers", {}))


def is_external(obj: Any) -> bool:
    """Whether ``obj`` must travel through multiprocessing rather than in our payload."""
    cls = type(obj)
    if getattr(cls, "__procthread_external__", False):
        return True
    module = getattr(cls, "__module__", "") or ""
    if module.startswith("multiprocessing.") and module != "multiprocessing.shared_memory":
        return True
    # multiprocessing also registers reducers for functions, methods and partials (on PyPy
    # plain functions among them); pickle handles those itself, so only the rest counts.
    if module in ("builtins", "functools"):
        return False
    return cls in _multiprocessing_reducers()


def _unsendable_types() -> tuple[type, ...]:
    import threading
    import types

    return (
        io.IOBase, types.GeneratorType, types.CoroutineType, types.AsyncGeneratorType,
        type(threading.Lock()), type(threading.RLock()), threading.Thread,
    )


_UNSENDABLE = _unsendable_types()


class _ExternalsMixin:
    externals: list[Any]

    def persistent_id(self, obj: Any) -> Any:
        # PyPy pickles these without complaint into objects that are broken on arrival;
        # refuse them everywhere, as CPython does.
        if isinstance(obj, _UNSENDABLE):
            raise TypeError(f"cannot pickle {type(obj).__qualname__!r} object")
        if is_external(obj):
            self.externals.append(obj)
            return len(self.externals) - 1
        return None


class _PlainPickler(_ExternalsMixin, pickle.Pickler):
    pass


def _cloud_pickler_class() -> type:
    import cloudpickle

    class _CloudPickler(_ExternalsMixin, cloudpickle.Pickler):  # type: ignore[misc]
        pass

    return _CloudPickler


def _dump_with(pickler_cls: type, obj: Any) -> tuple[bytes, list[Any]]:
    buf = io.BytesIO()
    pickler = pickler_cls(buf, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.externals = []
    pickler.dump(obj)
    return buf.getvalue(), pickler.externals


_BY_VALUE: set[str] = set()


def _fresh_origin(name: str) -> Optional[str]:
    """Where a fresh interpreter with this ``sys.path`` would find module ``name``.

    Searches the path only, ignoring ``sys.modules``, where pytest may have placed
    packages of its own making that a child would not have.
    """
    import sys
    from importlib.machinery import PathFinder

    search: Optional[list[str]] = list(sys.path)
    spec = None
    for part in name.split("."):
        if search is None:
            return None
        spec = PathFinder.find_spec(part if spec is None else f"{spec.name}.{part}", search)
        if spec is None:
            return None
        locations = spec.submodule_search_locations
        search = list(locations) if locations is not None else None
    return getattr(spec, "origin", None)


def send_by_value(module: Any) -> None:
    """Send functions and classes of ``module`` by value to spawned children, if a fresh
    interpreter could not import it by name (a test module under
    ``--import-mode=importlib``).

    Importable modules keep going by reference: a by-value copy of a function is not the
    module's own, and code in the child that pickles it again (a Pool) would then fail.
    """
    name = getattr(module, "__name__", None)
    if not name or name in _BY_VALUE or name == "__main__":
        return
    import os
    import sys

    if sys.modules.get(name) is not module:
        return
    origin = _fresh_origin(name)
    here = getattr(module, "__file__", None)
    if origin and here and os.path.realpath(origin) == os.path.realpath(here):
        return
    import cloudpickle

    cloudpickle.register_pickle_by_value(module)
    _BY_VALUE.add(name)


class _NeedsSlowPath(Exception):
    pass


class _FastPickler(pickle.Pickler):
    # pickle consults reducer_override for everything but plain data (None, numbers, str,
    # bytes, lists, tuples, dicts, sets): plain data pickles at C speed with no Python
    # call per object, and anything else that needs care goes the slow, careful way.
    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, _UNSENDABLE) or is_external(obj):
            raise _NeedsSlowPath
        return NotImplemented


def dumps(obj: Any, *, by_value_first: bool = False) -> tuple[bytes, list[Any]]:
    """Pickle ``obj``; returns the bytes and the objects lifted out for multiprocessing."""
    if not by_value_first:
        try:
            buf = io.BytesIO()
            _FastPickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
            return buf.getvalue(), []
        except Exception:
            pass
    first: type = _PlainPickler
    second: Optional[type] = None
    if by_value_first:
        first, second = _cloud_pickler_class(), _PlainPickler
    try:
        return _dump_with(first, obj)
    except Exception:
        # Plain pickle refuses lambdas and local functions; cloudpickle takes them by value.
        # By value fails where a referenced global cannot be pickled; by reference may not.
        return _dump_with(second or _cloud_pickler_class(), obj)


class _Unpickler(pickle.Unpickler):
    # A method, not an instance attribute: CPython 3.13.0 made the attribute read-only.
    def __init__(self, data: bytes, externals: list[Any]) -> None:
        super().__init__(io.BytesIO(data))
        self._externals = externals

    def persistent_load(self, pid: Any) -> Any:
        return self._externals[pid]


def loads(data: bytes, externals: list[Any]) -> Any:
    return _Unpickler(data, externals).load()


def _describe(obj: Any) -> str:
    try:
        text = repr(obj)
    except Exception:
        text = f"<{type(obj).__qualname__} object>"
    if len(text) > 120:
        text = text[:117] + "..."
    return f"{text} (type {type(obj).__module__}.{type(obj).__qualname__})"


def _culprit(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[str, Any, BaseException]:
    parts: list[tuple[str, Any]] = [("the target", fn)]
    parts += [(f"argument {i}", a) for i, a in enumerate(args)]
    parts += [(f"keyword argument {k!r}", v) for k, v in kwargs.items()]
    for label, part in parts:
        try:
            dumps(part)
        except Exception as exc:
            return label, part, exc
    return "the call", (fn, args, kwargs), RuntimeError("unknown")


def dump_call(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], start_method: str
) -> tuple[bytes, list[Any]]:
    """Pickle a call for a child, or raise NotPicklableError naming the object at fault."""
    by_value = getattr(fn, "__module__", None) in _BY_VALUE
    try:
        return dumps((fn, args, kwargs), by_value_first=by_value)
    except Exception:
        pass
    label, obj, exc = _culprit(fn, args, kwargs)
    raise NotPicklableError(
        f"cannot send {label} to a child started with {start_method!r}: {_describe(obj)} "
        f"cannot be pickled ({type(exc).__name__}: {exc}). Pass something picklable instead "
        f"(a path rather than an open file, plain data rather than a live object), create it "
        f"inside the target, or use start_method='fork' where the platform has it, which "
        f"copies the target instead of pickling it.",
        what=label,
        start_method=start_method,
    ) from exc


def describe_unpicklable(label: str, obj: Any, exc: BaseException, advice: str) -> str:
    return (
        f"{label} {_describe(obj)} cannot be pickled "
        f"({type(exc).__name__}: {exc}). {advice}"
    )
