"""Every Python example in the README runs and passes, under each start method."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pytest_procthread.runtime import runtime_facts

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_readme_has_examples() -> None:
    assert len(BLOCKS) >= 6


@pytest.mark.parametrize("start_method", runtime_facts().start_methods)
def test_readme_examples_pass(pytester: pytest.Pytester, start_method: str) -> None:
    files = {f"test_readme_{i}": block for i, block in enumerate(BLOCKS)}
    pytester.makepyfile(**files)
    tests = sum(len(re.findall(r"^def test_", block, re.M)) for block in BLOCKS)
    result = pytester.runpytest_subprocess(
        f"--procthread-start-method={start_method}", "--procthread-check-leaks", "-q",
        "-p", "no:cacheprovider",
    )
    result.assert_outcomes(passed=tests)


# Every import path the README names, as written there.
DOCUMENTED = sorted(set(re.findall(r"`(pytest_procthread(?:\.\w+)+)",
                                   README.read_text(encoding="utf-8"))))


def test_documented_import_paths_resolve() -> None:
    import importlib

    assert DOCUMENTED, "the README names no import path"
    for path in DOCUMENTED:
        module_name, _, attribute = path.rpartition(".")
        try:
            importlib.import_module(path)
        except ImportError:
            module = importlib.import_module(module_name)
            assert hasattr(module, attribute), f"{path}, named in the README, is gone"


def test_the_public_names_of_the_package_and_of_process() -> None:
    import pytest_procthread
    from pytest_procthread import process

    for name in pytest_procthread.__all__:
        assert getattr(pytest_procthread, name) is not None, name
    for name in ("ProcessRunner", "ProcessHandle", "STOP_GRACE", "helper_threads_here"):
        assert getattr(process, name) is not None, name
