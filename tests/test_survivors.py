"""Issue 17's faults, end to end: ``benchmarks/survivors.py`` SIGKILLs a pytest process
in each scenario under each start method and counts what it left (0 everywhere). A
scenario that leaves nothing ends as soon as it is clean, so this takes a few seconds
per scenario; one that leaves something waits its whole window.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pytest_procthread.process import warden as wardens

pytestmark = [
    pytest.mark.skipif(not wardens._supported(), reason="no pidfd here: no warden"),
    pytest.mark.timeout(300),
]
PROBE = Path(__file__).parent.parent / "benchmarks" / "survivors.py"


def test_nothing_outlives_a_sigkilled_test_process() -> None:
    done = subprocess.run(
        [sys.executable, str(PROBE), "--window", "10"],  # every scenario, every start method
        capture_output=True, text=True, timeout=280, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
