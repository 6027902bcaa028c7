"""What every pytest start pays for: the plugin loads its hooks, and the machinery of a
feature (the process runner, the isolated body, the pack's statistics) only once a test
uses it. Figures in benchmarks/README.md ("Plugin start-up")."""

from __future__ import annotations

import pytest

# Loaded only by a session that uses them.
HEAVY = (
    "pytest_procthread.process.runner",
    "pytest_procthread.process.fork",
    "pytest_procthread.isolated.body",
    "pytest_procthread.isolated.run",
    "pytest_procthread.claims.verdicts",
    "pytest_procthread.claims.stats",
    "pytest_procthread.matrix",
    "pytest_procthread.threads.fanout",
)


def _loaded(pytester: pytest.Pytester, body: str, *args: str) -> set[str]:
    pytester.copy_example("startup/conftest.py")
    pytester.makepyfile(body)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)
    assert result.ret == 0, result.stdout.str()
    (line,) = [line for line in result.outlines if line.startswith("loaded: ")]
    return set(line.split()[1:])


def test_a_plain_session_loads_no_machinery(pytester: pytest.Pytester) -> None:
    loaded = _loaded(pytester, "def test_x():\n    assert 1 + 1 == 2\n")
    assert "pytest_procthread.plugin" in loaded
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


def test_each_feature_loads_its_own(pytester: pytest.Pytester) -> None:
    processes = _loaded(pytester, "def test_x(isolated_process):\n"
                                  "    assert isolated_process.run(abs, -1).unwrap() == 1\n")
    assert "pytest_procthread.process.runner" in processes
    assert "pytest_procthread.claims.stats" not in processes
    threads = _loaded(pytester, "import pytest\n\n@pytest.mark.threads(2)\n"
                                "def test_x():\n    pass\n")
    assert "pytest_procthread.threads.fanout" in threads
    assert "pytest_procthread.process.runner" not in threads
    isolated = _loaded(pytester, "def test_x():\n    pass\n", "--isolated")
    assert {"pytest_procthread.process.runner", "pytest_procthread.isolated.body"} <= isolated
