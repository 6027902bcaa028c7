"""Per-test overhead of ``--isolated`` over a plain run, next to pytest-forked's ``--forked``.

Run it by hand (it is not a test):

    python benchmarks/bench_isolated.py [--python PY [--python PY2]] [--tests 300]
                                        [--rounds 5] [--methods fork,forkserver,spawn]
                                        [--json out.json]

It writes a test file of ``--tests`` trivial tests and runs pytest on it in a subprocess
with the interpreter ``--python`` (default: this one): once plain; once with a bare
``os.fork()`` per test body and nothing else (no output capture, no result, no crash
report); once more so, but forking as ``--isolated`` does, without the standard library's
lock-reset hooks when the process has one thread (``child/forkhooks.py``), which is the floor of
``--isolated`` under fork; once with ``--forked`` where pytest-forked is
installed for that interpreter (it breaks on pytest 9; see benchmarks/README.md for a venv
with pytest 8.4); and once with ``--isolated`` per start method. The variants are
interleaved round by round, so that whatever the machine does at that moment weighs on
all of them. The overhead per test is the median over rounds of (time of the variant -
time of the plain run of the same round) / number of tests; it includes every one-time
cost of the variant (the warm template's start, for instance), spread over the tests.
With ``--python`` twice (two installs of the plugin, before and after a change, say),
the variants of both run in the same rounds, interleaved, and each gets its table.

Goals (issue 4): the fork path costs at most half of pytest-forked's overhead per test;
spawn and forkserver at most 25 ms per test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Optional

GOAL_FORK_VS_FORKED = 0.5
HERE = os.path.dirname(os.path.abspath(__file__))
GOAL_FRESH_MS = 25.0

TEST_FILE = """\
import pytest


@pytest.mark.parametrize("i", range({n}))
def test_trivial(i):
    assert i >= 0
"""

COMMON = ["-q", "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:randomly"]
BARE_FORK = "bare os.fork"
# The same, with the lock-reset hooks left out as --isolated leaves them out (child/forkhooks.py).
TRIMMED_FORK = "bare fork, trimmed (floor)"
FLOORS = {BARE_FORK: "plain", TRIMMED_FORK: "trimmed"}


def _has_module(python: str, name: str) -> bool:
    probe = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({name!r}) is None)"
    return subprocess.run([python, "-c", probe], check=False).returncode == 0


def _versions(python: str) -> str:
    code = (
        "import sys, pytest; v = sys.version_info; "
        "print(f'{sys.implementation.name} {v[0]}.{v[1]}.{v[2]}, pytest {pytest.__version__}')"
    )
    out = subprocess.run([python, "-c", code], check=True, capture_output=True, text=True)
    return out.stdout.strip()


def _run(python: str, directory: str, extra: list[str], tests: int) -> float:
    env = dict(os.environ)
    if len(extra) == 1 and extra[0] in FLOORS:  # the floor: bare_fork.py, beside this file
        env["BENCH_BARE_FORK"] = FLOORS[extra[0]]
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [HERE, env.get("PYTHONPATH")]))
        extra = ["-p", "bare_fork"]
    started = time.perf_counter()
    done = subprocess.run(
        [python, "-m", "pytest", *COMMON, *extra, "test_trivial.py"],
        cwd=directory, capture_output=True, text=True, timeout=600, check=False, env=env,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0 or f"{tests} passed" not in done.stdout:
        raise SystemExit(
            f"pytest {' '.join(extra)} failed (status {done.returncode}):\n"
            f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return elapsed


def _variants(python: str, methods: list[str]) -> dict[str, list[str]]:
    if not _has_module(python, "pytest_procthread"):
        raise SystemExit(f"{python} cannot import pytest_procthread; install it there first")
    variants: dict[str, list[str]] = {"plain": []}
    if hasattr(os, "fork"):
        variants[BARE_FORK] = [BARE_FORK]
        variants[TRIMMED_FORK] = [TRIMMED_FORK]
    if _has_module(python, "pytest_forked"):
        variants["pytest-forked --forked"] = ["--forked"]
    for method in methods:
        variants[f"--isolated {method}"] = ["--isolated", f"--procthread-start-method={method}"]
    return variants


def _report(python: str, samples: dict[str, list[float]], tests: int, rounds: int) -> None:
    plain = samples["plain"]
    overhead = {
        name: [(t - p) / tests * 1000 for t, p in zip(times, plain)]
        for name, times in samples.items() if name != "plain"
    }
    print(f"python: {python} ({_versions(python)}); {tests} trivial tests, "
          f"{rounds} rounds; cpus: {os.cpu_count()}")
    print(f"plain run: median {statistics.median(plain):.2f} s")
    print()
    print(f"{'variant':<26} {'run (s)':>8} {'overhead/test (ms)':>19} {'min..max':>14}  goal")
    forked = overhead.get("pytest-forked --forked")
    forked_median = statistics.median(forked) if forked else None
    floor = overhead.get(TRIMMED_FORK)
    for name, values in overhead.items():
        median = statistics.median(values)
        run = statistics.median(samples[name])
        goal = ""
        if name.endswith(" fork") and forked_median is not None:
            limit = GOAL_FORK_VS_FORKED * forked_median
            verdict = "PASS" if median <= limit else "MISS"
            goal = f"<= {limit:.2f} ms (half of pytest-forked): {verdict}"
            if floor:
                goal += f"; {median / statistics.median(floor):.2f}x the floor"
        elif name.endswith(("forkserver", "spawn")):
            verdict = "PASS" if median <= GOAL_FRESH_MS else "MISS"
            goal = f"<= {GOAL_FRESH_MS:g} ms: {verdict}"
        print(f"{name:<26} {run:>8.2f} {median:>19.2f} "
              f"{min(values):>6.2f}..{max(values):<6.2f}  {goal}")
    print()


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", action="append", default=None,
                        help="interpreter to run pytest with (default: this one); give it "
                        "twice to compare two installs, interleaved in the same rounds")
    parser.add_argument("--tests", type=int, default=300, help="trivial tests per run")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--methods", default="fork,forkserver,spawn",
                        help="start methods for --isolated (those the platform has)")
    parser.add_argument("--json", metavar="PATH", help="also write every sample here")
    args = parser.parse_args(argv)

    pythons = args.python or [sys.executable]
    methods = args.methods.split(",")
    runs = [(python, name, extra) for python in pythons
            for name, extra in _variants(python, methods).items()]
    samples: dict[str, dict[str, list[float]]] = {python: {} for python in pythons}
    with tempfile.TemporaryDirectory(prefix="bench-isolated-") as directory:
        with open(os.path.join(directory, "test_trivial.py"), "w") as f:
            f.write(TEST_FILE.format(n=args.tests))
        for python, _, extra in runs:  # warm-up: bytecode caches, page cache
            _run(python, directory, extra, args.tests)
        for round_no in range(args.rounds):
            order = runs if round_no % 2 == 0 else runs[::-1]
            for python, name, extra in order:
                elapsed = _run(python, directory, extra, args.tests)
                samples[python].setdefault(name, []).append(elapsed)
    for python in pythons:
        _report(python, samples[python], args.tests, args.rounds)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"pythons": pythons, "tests": args.tests, "samples": samples}, f,
                      indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
