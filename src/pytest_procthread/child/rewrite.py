"""Assertion rewriting in a fresh child: the modules pytest rewrote in the test process,
imported again from the same files and rewritten the same way.

Needed under ``spawn`` and ``forkserver`` (a fork child inherits the rewritten modules),
also under ``--import-mode=importlib``, where those modules are not importable by name
otherwise. pytest's rewriter is imported only when such a module is imported.
"""

from __future__ import annotations

import ast
import importlib.abc
import importlib.util
import os
import sys
from typing import Any, Optional


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
    """Finds the modules named in ``modules`` (name -> source file) and loads them
    rewritten."""

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
    """Import ``modules`` (name -> source file) rewritten from now on, in this process."""
    global _finder
    if _finder is None:
        _finder = RewritingFinder()
        sys.meta_path.insert(0, _finder)
    _finder.modules.update(modules)
