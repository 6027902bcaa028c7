"""The parent's side of an isolated child: start it, wait for it, stop it, read its outcome.

``runner.ProcessRunner.start`` picks the start paths (``launch.choose_launchers``) and
hands the call to one of ``fork``, ``template`` or ``mp``; each gives back a child that
``handle.ProcessHandle`` waits for and turns into an Outcome. ``proctree`` stops a child
with everything it started; ``warden`` stops fork children once the test process is
gone; ``capture`` and ``scratch`` own the files a child writes.
"""

from ..child.lifeline import helper_threads_here
from .handle import STOP_GRACE, ProcessHandle
from .runner import ProcessRunner

__all__ = ["STOP_GRACE", "ProcessHandle", "ProcessRunner", "helper_threads_here"]
