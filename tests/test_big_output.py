"""A child that writes a gigabyte to stdout: the test process keeps the first and last
16 MiB, says how much it left out, and its peak memory stays bounded."""

from __future__ import annotations

import sys

import pytest

pytestmark = [pytest.mark.timeout(300),
              pytest.mark.skipif(sys.platform == "win32", reason="ru_maxrss: POSIX")]

INNER = '''
import os
import resource

MiB = 1 << 20


def spew():
    os.write(1, b"first line\\n")
    chunk = b"x" * MiB
    for _ in range(1024):
        os.write(1, chunk)
    os.write(1, b"\\nlast line\\n")


def test_a_gigabyte(isolated_process):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    outcome = isolated_process.options(start_method="fork").run(spew)
    assert outcome.returned
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    grew = (peak - before) * (1 if os.uname().sysname == "Darwin" else 1024)
    out = outcome.stdout
    assert out.startswith("first line") and out.endswith("last line\\n")
    assert "bytes of this output left out here; it was 1,073,741,846 bytes" in out
    assert len(out) < 33 * MiB
    print(f"peak grew by {grew / MiB:.0f} MiB")
    assert grew < 200 * MiB
'''


def test_a_gigabyte_of_output_takes_bounded_memory(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_big=INNER)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rP", timeout=240)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["peak grew by * MiB"])
