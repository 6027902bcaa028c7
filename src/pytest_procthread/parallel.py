"""The public names of the thread fan-out (``threads`` marker, ``--procthread-threads``).

``current_thread_index()`` and ``current_iteration_index()`` give the helpers a test calls
what the ``thread_index`` and ``iteration_index`` fixtures give the test; ``fan_out`` runs
a callable as a fanned-out test body. The work is done in the ``threads`` package.
"""

from __future__ import annotations

from .threads.fanout import FanOut, current_iteration_index, current_thread_index, fan_out

__all__ = ["FanOut", "current_iteration_index", "current_thread_index", "fan_out"]
