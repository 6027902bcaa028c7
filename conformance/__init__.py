"""The conformance pack: every claim of the source documents about processes and threads,
as a check that says whether it holds on the runtime that runs it.

Developed here, in the repository's ``conformance/``; installed as ``pytest_procthread.pack``
and run from there by ``python -m pytest_procthread pack``. Its configuration is its own
``pytest.ini``, so a run from a checkout and a run from the installed package are the same
run whatever directory they start from.
"""
