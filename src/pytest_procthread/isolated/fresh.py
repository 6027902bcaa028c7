"""What a fresh child (spawn, forkserver) sets up itself, that the test process set up
for the test before its body: the module's and the class's setup functions.

pytest runs ``setup_module``/``setUpModule`` and ``setup_class``/``setUpClass`` in the
test process, once, as fixtures; what they leave is module and class state (a
``cls.tzinfos`` that the methods read). A fork child inherits it; a fresh child imports
the module anew and has none of it, so it runs them itself around the body, and their
teardowns after it, as pytest calls them (with the module or class as their argument when
they take one). Each such child is set up for its own body only.
"""

from __future__ import annotations

import contextlib
import inspect
import sys
import unittest
from collections.abc import Iterator
from typing import Any, Callable, Optional

# The setups and teardowns of a module and of a class, by the names pytest runs them by:
# pytest's own (xunit style) and unittest's.
_MODULE = (("setup_module", "teardown_module"), ("setUpModule", "tearDownModule"))
_CLASS = (("setup_class", "teardown_class"), ("setUpClass", "tearDownClass"))


def _defined(owner: Any, name: str) -> Optional[Callable[..., Any]]:
    found = getattr(owner, name, None)
    default = getattr(unittest.TestCase, name, None)
    if found is None or (default is not None
                         and getattr(found, "__func__", None) is default.__func__):
        return None  # unittest's own, which does nothing
    return found  # type: ignore[no-any-return]


def _call(function: Callable[..., Any], owner: Any) -> None:
    """As pytest calls an xunit setup: with its owner when it takes an argument."""
    try:
        takes = len(inspect.signature(function).parameters)
    except (TypeError, ValueError):
        takes = 0
    if takes:
        function(owner)
    else:
        function()


@contextlib.contextmanager
def _set_up(owner: Any, set_up_name: str, tear_down_name: str) -> Iterator[None]:
    set_up, tear_down = _defined(owner, set_up_name), _defined(owner, tear_down_name)
    if set_up is not None:
        _call(set_up, owner)
    try:
        yield
    finally:
        if tear_down is not None:
            _call(tear_down, owner)


@contextlib.contextmanager
def module_and_class(cls: Optional[type], module_name: str) -> Iterator[None]:
    """In a fresh child, around the body: the module's setup, then the class's."""
    module = sys.modules.get(module_name)
    with contextlib.ExitStack() as stack:
        if module is not None:
            stack.callback(unittest.case.doModuleCleanups)
            for names in _MODULE:
                stack.enter_context(_set_up(module, *names))
        if cls is not None:
            if issubclass(cls, unittest.TestCase):
                stack.callback(cls.doClassCleanups)
            for names in _CLASS:
                stack.enter_context(_set_up(cls, *names))
        yield
