"""Every command-line option, ini key and marker of pytest-procthread, declared once.

``settings`` resolves the values (marker, command line, ini); the hooks that act on them
are in ``plugin``, ``markers.plugin`` and ``claims.hooks``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # settings imports this module, and children import settings
    import pytest

START_METHOD_OPTION = "--procthread-start-method"
START_METHOD_INI = "procthread_start_method"
TIMEOUT_OPTION = "--procthread-timeout"
TIMEOUT_INI = "procthread_timeout"
CHECK_LEAKS_OPTION = "--procthread-check-leaks"
ISOLATED_OPTION = "--isolated"
REPORT_OPTION = "--procthread-report"
PACK_METHODS_OPTION = "--procthread-pack-start-methods"
THREADS_OPTION = "--procthread-threads"
THREADS_INI = "procthread_threads"
ITERATIONS_OPTION = "--procthread-iterations"
ITERATIONS_INI = "procthread_iterations"
SWITCH_INTERVAL_OPTION = "--procthread-switch-interval"
SWITCH_INTERVAL_INI = "procthread_switch_interval"
SKIP_UNSAFE_OPTION = "--procthread-skip-thread-unsafe"
UNSAFE_FIXTURES_INI = "procthread_thread_unsafe_fixtures"
UNSAFE_FUNCTIONS_INI = "procthread_thread_unsafe_functions"

CLAIM_MARKER = "claim"
ISOLATED_MARKER = "isolated"
THREADS_MARKER = "threads"
REQUIRES_MARKER = "requires"
THREAD_UNSAFE_MARKER = "thread_unsafe"

MARKER_LINES = (
    f"{CLAIM_MARKER}(id): this test checks the conformance claim `id` (see "
    "conformance/claims.toml).",
    f"{ISOLATED_MARKER}(start_method=None, timeout=None): run the test body in a child "
    "process (fixtures stay in the test process); a crash or a hang fails only this test.",
    f"{THREADS_MARKER}(n, iterations=1, max=None, timeout=None): run the test body in n "
    "threads at once (n may be 'auto'), each k iterations, released together by a barrier "
    "before each; max= caps the run's count; every thread's failure is reported. See the "
    "thread_index, iteration_index and thread_count fixtures.",
    f"{THREAD_UNSAFE_MARKER}(reason=None): run this test in one thread even when the run or "
    f"a {THREADS_MARKER} marker fans tests out; the reason is shown in its status.",
    f"{REQUIRES_MARKER}(**needs): skip unless this runtime has what the test needs: "
    "start_method=, fork=, free_threaded=, gil=, cpus=, implementation=.",
)


def add_options(parser: pytest.Parser) -> None:
    """Declare every option and ini key (from ``pytest_addoption``)."""
    group = parser.getgroup("procthread", "pytest-procthread: processes and threads")
    group.addoption(
        START_METHOD_OPTION, dest="procthread_start_method", default=None, metavar="METHOD",
        help="start method of isolated children: fork, forkserver, spawn or default "
        "(the interpreter's own default).",
    )
    group.addoption(
        TIMEOUT_OPTION, dest="procthread_timeout", default=None, metavar="SECONDS",
        help="default time limit of every join, recv and wait of this plugin (default 60).",
    )
    group.addoption(
        CHECK_LEAKS_OPTION, dest="procthread_check_leaks", action="store_true", default=False,
        help="fail the run if it leaves a process, thread or file descriptor behind.",
    )
    group.addoption(
        ISOLATED_OPTION, action="store_true", dest="procthread_isolated", default=False,
        help="run the body of every test in its own child process, as if each had "
        f"@pytest.mark.{ISOLATED_MARKER} (start method and time limit: "
        f"{START_METHOD_OPTION}, {TIMEOUT_OPTION}).",
    )
    group.addoption(
        REPORT_OPTION, dest="procthread_report", default=None, metavar="PATH",
        help="write the conformance claims report as JSON to PATH.",
    )
    group.addoption(
        PACK_METHODS_OPTION, dest="procthread_pack_start_methods", default=None,
        metavar="METHODS",
        help="conformance pack: run the checks of these start methods only (comma-separated, "
        "e.g. fork,spawn) and those that do not depend on one; the report has columns for "
        "these only.",
    )
    _add_thread_options(group)
    parser.addini(START_METHOD_INI, f"start method of isolated children (see "
                  f"{START_METHOD_OPTION}).", default="")
    parser.addini(TIMEOUT_INI, f"default time limit in seconds (see {TIMEOUT_OPTION}).",
                  default="")
    _add_thread_inis(parser)


def _add_thread_options(group: pytest.OptionGroup) -> None:
    group.addoption(
        THREADS_OPTION, dest="procthread_threads", default=None, metavar="N|auto",
        help=f"run every test body in N threads at once (auto: the CPUs this process may "
        f"use); a @pytest.mark.{THREADS_MARKER} marker overrides it for its test. Also the "
        f"ini key {THREADS_INI}.",
    )
    group.addoption(
        ITERATIONS_OPTION, dest="procthread_iterations", default=None, metavar="K",
        help=f"each thread runs the body K times, the threads meeting at a barrier before "
        f"each (ini key {ITERATIONS_INI}).",
    )
    group.addoption(
        SWITCH_INTERVAL_OPTION, dest="procthread_switch_interval", default=None,
        metavar="SECONDS|off",
        help="sys.setswitchinterval while the threads of a test run, so that races show on "
        f"GIL builds too (default 1e-6; off: leave it; ini key {SWITCH_INTERVAL_INI}).",
    )
    group.addoption(
        SKIP_UNSAFE_OPTION, dest="procthread_skip_thread_unsafe", action="store_true",
        default=False,
        help="skip the tests that cannot run in several threads at once, instead of "
        "running them once.",
    )


def _add_thread_inis(parser: pytest.Parser) -> None:
    parser.addini(THREADS_INI, f"threads per test body (see {THREADS_OPTION}).", default="")
    parser.addini(ITERATIONS_INI, f"iterations per thread (see {ITERATIONS_OPTION}).",
                  default="")
    parser.addini(SWITCH_INTERVAL_INI, f"switch interval during a fan-out (see "
                  f"{SWITCH_INTERVAL_OPTION}).", default="")
    parser.addini(UNSAFE_FIXTURES_INI, "fixtures that make a test run in one thread, one "
                  "per line.", type="linelist", default=[])
    parser.addini(UNSAFE_FUNCTIONS_INI, "functions (module.name, or module.* for all of a "
                  "module's) whose call in a test makes it run in one thread, one per line.",
                  type="linelist", default=[])


def add_markers(config: pytest.Config) -> None:
    """Register every marker (from ``pytest_configure``)."""
    for line in MARKER_LINES:
        config.addinivalue_line("markers", line)
