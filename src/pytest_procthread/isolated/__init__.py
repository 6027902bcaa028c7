"""Whole-test isolation: the ``isolated`` marker and ``--isolated``.

pytest sets up and tears down the fixtures in the test process, as always; only the body
of the test function runs in a child process, through the same runner as the
``isolated_process`` fixture (``run``). Under ``fork`` the child inherits the fixture
values; under ``spawn`` and ``forkserver`` they travel pickled (``travel``).

Inside the child (``body``):

- ``pytest.skip``, ``pytest.xfail``, ``pytest.fail`` and every other exception come back
  and are raised again in the test process, so pytest reports them as usual;
- a fresh child imports the modules that pytest rewrote, rewritten the same way, so a
  failing ``assert`` explains itself; the detailed comparison (``pytest_assertrepr_compare``)
  is worked out back in the test process, by its own hooks (``comparison``);
- warnings, log records and the calls on ``record_property`` and its kind go to a side
  file as they happen and are made again in the test process (``sidecar``);
- ``capsys``, ``capfd`` (and the binary kinds), ``caplog`` and ``monkeypatch`` have
  stand-ins where the real ones cannot work (``standins``);
- everything the child writes on fd 1 and 2 is written to the test process's
  ``sys.stdout`` and ``sys.stderr``, and with ``-s`` copied to the terminal while the
  test runs (``output``).

A child that crashes or runs out of time fails the test with what happened, its stacks
(faulthandler) and what it printed (``failure``), after ``pytest_procthread_isolated_crash``.
"""
