"""The parent's side of an isolated child: start it, wait for it, stop it, read its outcome.

``runner.ProcessRunner.start`` picks the start paths (``launch.choose_launchers``) and
hands the call to one of ``fork``, ``template`` or ``mp``; each gives back a child that
``handle.ProcessHandle`` waits for and turns into an Outcome. ``proctree`` stops a child
with everything it started; ``warden`` stops fork children once the test process is
gone; ``capture`` and ``scratch`` own the files a child writes.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..child.lifeline import helper_threads_here
    from .handle import STOP_GRACE, ProcessHandle
    from .runner import ProcessRunner

# Loaded on first use: the plugin imports light modules of this package (launch, session)
# at every pytest start, and a run that starts no child should not pay for the rest.
_LAZY = {
    "ProcessRunner": "pytest_procthread.process.runner",
    "ProcessHandle": "pytest_procthread.process.handle",
    "STOP_GRACE": "pytest_procthread.process.handle",
    "helper_threads_here": "pytest_procthread.child.lifeline",
}

__all__ = ["STOP_GRACE", "ProcessHandle", "ProcessRunner", "helper_threads_here"]


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'pytest_procthread.process' has no attribute {name!r}")
    return getattr(importlib.import_module(module_name), name)
