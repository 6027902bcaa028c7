"""Exceptions that cross from a child to the test process as themselves.

tblib makes an exception and its chain (``__cause__``, ``__context__``, an exception
group's members) picklable with its traceback; the traceback itself travels as
``tracebacks`` carries it. Two kinds of class need more than tblib gives them:

- built-in exceptions, whose ``__init__`` sets what their arguments say
  (``SystemExit.code``, ``StopIteration.value``): tblib would rebuild them without
  calling it, so they are rebuilt by calling the class;
- classes that misstate their ``__module__`` (pytest's Skipped, Failed and Exit say
  ``builtins``): pickle would look them up there and fail, so they go by the module they
  can really be imported from.

An exception that still cannot make the round trip is replaced by a RemoteException that
keeps its type's name, its message and its traceback.
"""

from __future__ import annotations

import sys
from typing import Any, Optional

from ..errors import RemoteException
from . import pickling


def format_exception(exc: BaseException) -> str:
    """The exception and its traceback as text, as Python prints them."""
    import traceback  # only on failure: it pulls in linecache and tokenize

    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def picklable(exc: BaseException) -> BaseException:
    """The exception itself when it survives a round trip, else a faithful stand-in."""
    _install_pickling(exc)
    try:
        data, externals = pickling.dumps(exc)
        if not externals:
            pickling.loads(data, [])
            return exc
    except Exception:
        pass
    stand_in = RemoteException(
        f"{type(exc).__module__}.{type(exc).__qualname__}", str(exc), format_exception(exc)
    )
    stand_in.__traceback__ = exc.__traceback__
    _install_pickling(stand_in)
    return stand_in


def _install_pickling(exc: BaseException) -> None:
    import copyreg

    from tblib import pickling_support

    pickling_support.install(exc)
    _carry_tracebacks()
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        cls = type(current)
        home = real_home(cls)
        if home is not None and home != cls.__module__:
            copyreg.pickle(cls, _reduce_relocated)
        elif cls.__module__ == "builtins" or callable(getattr(current, "derive", None)):
            # Exception groups too: the backport (Python < 3.11) has its own __init__.
            copyreg.pickle(cls, _reduce_builtin)
        todo += [e for e in (current.__cause__, current.__context__) if e is not None]
        todo += [e for e in getattr(current, "exceptions", ()) if isinstance(e, BaseException)]


def _carry_tracebacks() -> None:
    """Tracebacks go as ``tracebacks`` carries them (source span, arguments, locals,
    ``__tracebackhide__``), not as tblib's bare frames; tblib still rebuilds the exceptions
    around them. After tblib's ``install``, which registers its own reducer each time."""
    import copyreg
    import types

    from . import tracebacks

    copyreg.pickle(types.TracebackType, tracebacks.reduce_traceback)


def _chain(exc: BaseException) -> tuple[Any, ...]:
    return (exc.__cause__, exc.__traceback__, exc.__context__, exc.__suppress_context__,
            getattr(exc, "__notes__", None))


def _reduce_builtin(exc: BaseException) -> Any:
    from tblib import pickling_support

    reduced: Any = exc.__reduce__()  # a tuple for every built-in exception
    func, args, *state = reduced
    return (pickling_support.unpickle_exception, (func, args, *_chain(exc)), *state)


def real_home(cls: type) -> Optional[str]:
    """The module a class can be imported from. Usually its ``__module__``; but some classes
    misstate it for nicer messages, and pickle, which looks a class up by that name, would
    then fail or copy the class by value."""
    named = sys.modules.get(cls.__module__)
    if named is not None and getattr(named, cls.__qualname__, None) is cls:
        return str(cls.__module__)
    for name, module in list(sys.modules.items()):
        if getattr(module, cls.__name__, None) is cls:
            return name
    return None


def rebuild_relocated(module: str, qualname: str, *args: Any) -> BaseException:
    """In the test process: an instance of the class at ``module.qualname``."""
    import importlib

    cls = importlib.import_module(module)
    for part in qualname.split("."):
        cls = getattr(cls, part)
    return cls(*args)  # type: ignore[operator,no-any-return]


def _reduce_relocated(exc: BaseException) -> Any:
    import functools

    from tblib import pickling_support

    reduced: Any = exc.__reduce__()
    _, args, *state = reduced
    home = real_home(type(exc)) or type(exc).__module__
    rebuild = functools.partial(rebuild_relocated, home, type(exc).__qualname__)
    return (pickling_support.unpickle_exception, (rebuild, args, *_chain(exc)), *state)
