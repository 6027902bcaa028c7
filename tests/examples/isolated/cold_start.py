"""A plugin for the inner suite (``-p cold_start``): every isolated child starts cold, in a
fresh interpreter, as on Windows or when a template is busy."""

from pytest_procthread.process import runner

runner.template_available = lambda: False
