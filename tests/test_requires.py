"""The ``requires`` marker: skips with a reason, decided from the runtime facts."""

from __future__ import annotations

import dataclasses

import pytest

from pytest_procthread.markers.requires import unmet
from pytest_procthread.runtime import RuntimeFacts, runtime_facts

ARGS = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "--procthread-check-leaks")

LINUX = dataclasses.replace(
    runtime_facts(), os="linux", system="Linux", implementation="cpython",
    python_version=(3, 13, 1), free_threaded_build=False, gil_enabled=True,
    start_methods=("fork", "spawn", "forkserver"), has_fork=True, usable_cpus=1,
    logical_cpus=8,
)
WINDOWS_FT = dataclasses.replace(
    LINUX, os="win32", system="Windows", start_methods=("spawn",), has_fork=False,
    free_threaded_build=True, gil_enabled=False, usable_cpus=16, logical_cpus=16,
)


def reasons(facts: RuntimeFacts, **needs: object) -> list[str]:
    return unmet(pytest.mark.requires(**needs).mark, facts, "test_x")


@pytest.mark.parametrize(
    ("needs", "on_linux", "on_windows_ft"),
    [
        ({"start_method": "forkserver"}, [],
         ["requires start method 'forkserver', which Windows does not have (it has spawn)"]),
        ({"start_method": ["spawn", "fork"]}, [],
         ["requires start method 'fork', which Windows does not have (it has spawn)"]),
        ({"fork": True}, [], ["requires os.fork, which Windows does not have"]),
        ({"fork": False}, ["requires a platform without fork; Linux has it"], []),
        ({"free_threaded": True},
         ["requires a free-threaded build of Python; this is cpython-3.13, built with the GIL"],
         []),
        ({"free_threaded": False}, [],
         ["requires a build of Python with the GIL; this is cpython-3.13t, free-threaded"]),
        ({"gil": True}, [],
         ["requires the GIL to be enabled; cpython-3.13t runs with it disabled"]),
        ({"gil": False},
         ["requires the GIL to be disabled; cpython-3.13 runs with it enabled"], []),
        ({"cpus": 2},
         ["requires at least 2 usable CPUs; this process may use 1 (affinity mask and cgroup "
          "quota; the machine has 8)"],
         []),
        ({"implementation": "cpython"}, [], []),
        ({"implementation": ("pypy", "graalpy")},
         ["requires implementation 'pypy' or 'graalpy'; this is cpython"],
         ["requires implementation 'pypy' or 'graalpy'; this is cpython"]),
    ],
)
def test_each_requirement(
    needs: dict[str, object], on_linux: list[str], on_windows_ft: list[str]
) -> None:
    assert reasons(LINUX, **needs) == on_linux
    assert reasons(WINDOWS_FT, **needs) == on_windows_ft


def test_several_requirements_give_every_reason() -> None:
    assert reasons(WINDOWS_FT, fork=True, gil=True, cpus=2) == [
        "requires os.fork, which Windows does not have",
        "requires the GIL to be enabled; cpython-3.13t runs with it disabled",
    ]


@pytest.mark.parametrize(
    ("needs", "message"),
    [
        ({"forks": True}, "unknown requirement 'forks' in marker @pytest.mark.requires on test_x; "
                          "the known ones are start_method, fork, free_threaded, gil, cpus, "
                          "implementation"),
        ({"cpus": 0}, "invalid value in marker @pytest.mark.requires(cpus=...)"),
        ({"cpus": "2"}, "invalid value in marker @pytest.mark.requires(cpus=...)"),
        ({"fork": "yes"}, "invalid value in marker @pytest.mark.requires(fork=...)"),
        ({"start_method": "vfork"}, "unknown start method 'vfork'"),
        ({"implementation": []}, "invalid implementation"),
        ({}, "names no requirement"),
    ],
)
def test_bad_requirements(needs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as info:
        reasons(LINUX, **needs)
    assert message in str(info.value)


def test_positional_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="takes keywords only"):
        unmet(pytest.mark.requires("fork").mark, LINUX, "test_x")


def test_in_a_test_run(pytester: pytest.Pytester) -> None:
    facts = runtime_facts()
    pytester.makepyfile(
        f"""
        import pytest

        pytestmark = pytest.mark.requires(implementation="{facts.implementation}")

        @pytest.mark.requires(cpus=1, start_method="{facts.start_methods[0]}")
        def test_met():
            pass

        @pytest.mark.requires(cpus=100000)
        def test_too_few_cpus():
            pass

        @pytest.mark.requires(implementation="no-such-python")
        class TestNotHere:
            def test_method(self):
                pass
        """
    )
    result = pytester.runpytest(*ARGS, "-rs")
    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines_random([
        f"SKIPPED*requires at least 100000 usable CPUs; this process may use "
        f"{facts.usable_cpus} *",
        f"SKIPPED*requires implementation 'no-such-python'; this is {facts.implementation}",
    ])


def test_unknown_keyword_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.requires(gpu=True)
        def test_x():
            pass
        """
    )
    result = pytester.runpytest(*ARGS)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "unknown requirement 'gpu' in marker @pytest.mark.requires on " in result.stderr.str()
