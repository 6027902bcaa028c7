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

CLAIM_MARKER = "claim"
ISOLATED_MARKER = "isolated"
THREADS_MARKER = "threads"
REQUIRES_MARKER = "requires"

MARKER_LINES = (
    f"{CLAIM_MARKER}(id): this test checks the conformance claim `id` (see "
    "conformance/claims.toml).",
    f"{ISOLATED_MARKER}(start_method=None, timeout=None): run the test body in a child "
    "process (fixtures stay in the test process); a crash or a hang fails only this test.",
    f"{THREADS_MARKER}(n, timeout=None): run the test body in n threads at once, released "
    "together by a barrier; every thread's failure is reported. See the thread_index fixture.",
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
    parser.addini(START_METHOD_INI, f"start method of isolated children (see "
                  f"{START_METHOD_OPTION}).", default="")
    parser.addini(TIMEOUT_INI, f"default time limit in seconds (see {TIMEOUT_OPTION}).",
                  default="")


def add_markers(config: pytest.Config) -> None:
    """Register every marker (from ``pytest_configure``)."""
    for line in MARKER_LINES:
        config.addinivalue_line("markers", line)
