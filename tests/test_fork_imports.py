"""A fork child runs no import statement on its common path.

That rule is what the fork path's speed rests on: an import statement in a fork child
walks the import system even for a module already loaded, and every memory page that walk
writes to is copied into the child (see ``process.fork``). The inner run records every
import statement its fork children run (``tests/examples/fork_imports/conftest.py``);
there must be none, for ``isolated_process`` under fork and for ``--isolated`` test bodies
that pass.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_procthread.process.fork import available

pytestmark = [
    pytest.mark.skipif(not available(), reason="no fork here"),
    pytest.mark.timeout(120),
]


INNER_ARGS = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest")


@pytest.fixture
def record(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the inner run's fork children note each import statement they run."""
    path = pytester.path / "imports.txt"
    monkeypatch.setenv("FORK_IMPORTS", str(path))
    pytester.copy_example("fork_imports/conftest.py")
    return path


def test_fork_children_run_no_import_statement(pytester: pytest.Pytester, record: Path) -> None:
    pytester.copy_example("fork_imports/test_bodies.py")
    result = pytester.runpytest_subprocess(*INNER_ARGS, "--procthread-check-leaks")
    result.assert_outcomes(passed=3)
    assert not record.exists() or record.read_text() == "", record.read_text()


def test_the_guard_sees_an_import_in_a_child(pytester: pytest.Pytester, record: Path) -> None:
    """The recording itself works: a child that imports is caught."""
    pytester.makepyfile(
        """
        def imports():
            import json  # noqa: F401

        def test_child_imports(isolated_process):
            assert isolated_process.options(start_method="fork").run(imports).returned
        """
    )
    result = pytester.runpytest_subprocess(*INNER_ARGS)
    result.assert_outcomes(passed=1)
    assert "import json" in record.read_text()
