"""pytest-procthread: run code in another process or thread and see what happened there.

The package root stays import-light on purpose: spawned children import it before
running a target, and every module loaded here is paid for in every child.

PYTEST_DONT_REWRITE: ``python -m pytest_procthread pack`` imports this module before pytest
starts, and pytest would warn that it cannot rewrite it; it has no assertions to rewrite.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Outcome": "pytest_procthread.outcome",
    "describe_exit": "pytest_procthread.outcome",
    "ProcessRunner": "pytest_procthread.process",
    "ProcessHandle": "pytest_procthread.process",
    "ThreadRunner": "pytest_procthread.thread",
    "ThreadHandle": "pytest_procthread.thread",
    "IpcPipe": "pytest_procthread.ipc",
    "PipeEnd": "pytest_procthread.ipc",
    "RuntimeFacts": "pytest_procthread.runtime",
    "runtime_facts": "pytest_procthread.runtime",
    "ProcThreadError": "pytest_procthread.errors",
    "NotPicklableError": "pytest_procthread.errors",
    "ChildDiedError": "pytest_procthread.errors",
    "ChildTimeoutError": "pytest_procthread.errors",
    "RemoteException": "pytest_procthread.errors",
    "ThreadProblem": "pytest_procthread.errors",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'pytest_procthread' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module_name), name)
