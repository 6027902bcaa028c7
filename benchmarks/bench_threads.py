"""Whole-run cost of ``threads(8)`` on trivial tests, next to pytest-run-parallel's
``force_parallel_threads(8)``.

Run it by hand (it is not a test):

    python benchmarks/bench_threads.py [--python PY] [--tests 200] [--threads 8]
                                       [--rounds 7] [--json out.json]

It writes, in a temporary directory, a test file of ``--tests`` trivial tests (a small
pure-Python computation each; a tenth of them come from two parametrized functions) in
three variants: unmarked (``plain``), every test marked ``@pytest.mark.threads(8)``
(``ours``, pytest-procthread), and every test marked
``@pytest.mark.force_parallel_threads(8)`` (``theirs``, pytest-run-parallel). It runs
pytest on each in a subprocess of the same interpreter, ``--python`` (default: this one),
which must have both plugins installed: ours with ``-p no:run-parallel``, theirs with
``-p no:procthread``, plain with both disabled (the floor: the same tests once each, no
threads). The variants are interleaved round by round, in alternating order, after one
warm-up run of each; every run is timed whole, start-up and collection included.

Every run must exit 0 with all tests passed and ``--strict-markers`` (a marker its plugin
did not register is an error, not a silent single-threaded run); each test body counts
its calls, and a marked variant must have made ``tests x threads`` of them. Anything else
stops the benchmark with the run's output.

Printed: the median wall time of each variant (min..max), its cost per test, the cost
per test over the plain run of the same round, and the ratio ours/theirs: per round and
its median (the figure of the goal), with the ratio of the medians beside it.

The runs use a private bytecode cache (``PYTHONPYCACHEPREFIX`` in the temporary
directory, ``PYTHONDONTWRITEBYTECODE`` unset) so that an editable install of ours is not
compiled again in every run while pip's compiled copy of theirs is read from disk.

Goal (issue 16): ours/theirs <= 1.0x.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Optional

GOAL_RATIO = 1.0
RUN_LIMIT = 600.0  # seconds for one pytest run
PROBE_LIMIT = 60.0  # seconds for one look at the interpreter

PLAIN, OURS, THEIRS = "plain", "ours", "theirs"
MARKERS = {
    PLAIN: "",
    OURS: "@pytest.mark.threads({n})\n",
    THEIRS: "@pytest.mark.force_parallel_threads({n})\n",
}
LABELS = {
    PLAIN: "plain (no threads: the floor)",
    OURS: "ours: threads({n})",
    THEIRS: "theirs: force_parallel_threads({n})",
}
COMMON = ["-q", "-p", "no:cacheprovider", "-p", "no:randomly", "-p", "no:hypothesispytest",
          "--strict-markers"]
DISABLE = {
    PLAIN: ["-p", "no:procthread", "-p", "no:run-parallel"],
    OURS: ["-p", "no:run-parallel"],
    THEIRS: ["-p", "no:procthread"],
}

# Counts the test bodies that ran, so that a variant whose marker did nothing is caught.
COUNTER_MODULE = """\
CALLS = []
"""
CONFTEST = """\
import json
import os
import sys

import bench_calls


def pytest_sessionfinish(session):
    gil = getattr(sys, "_is_gil_enabled", None)
    with open(os.environ["BENCH_THREADS_PROBE"], "w") as f:
        json.dump({"calls": len(bench_calls.CALLS),
                   "gil_enabled": gil() if gil is not None else True}, f)
"""
INI = "[pytest]\n"
HEADER = """\
import pytest

import bench_calls

"""
FUNCTION = """\
{marker}def test_sum_of_squares_{index:03d}():
    total = 0
    for i in range({size}):
        total += i * i
    assert total == {expected}
    bench_calls.CALLS.append(None)


"""
PARAMETRIZED = """\
@pytest.mark.parametrize("word", [{words}])
{marker}def test_{name}(word):
    assert {check}
    bench_calls.CALLS.append(None)


"""
SUMMARY_WORD = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed|deselected)")


def test_source(variant: str, tests: int, threads: int) -> str:
    """The test file of one variant: ``tests`` tests, the same bodies in every variant."""
    marker = MARKERS[variant].format(n=threads)
    per_parametrized = tests // 20  # two parametrized functions: a tenth of the tests
    parts = [HEADER]
    for index in range(tests - 2 * per_parametrized):
        size = 20 + index % 30
        expected = sum(i * i for i in range(size))
        parts.append(FUNCTION.format(marker=marker, index=index, size=size, expected=expected))
    if per_parametrized:
        words = ", ".join(repr(f"w{k:03d}") for k in range(per_parametrized))
        parts.append(PARAMETRIZED.format(words=words, marker=marker, name="upper_lower",
                                         check="word.upper().lower() == word"))
        parts.append(PARAMETRIZED.format(words=words, marker=marker, name="reversed_twice",
                                         check="word[::-1][::-1] == word"))
    return "".join(parts)


def write_variants(root: str, tests: int, threads: int) -> dict[str, str]:
    """One directory per variant, each with the counter, its conftest and its test file."""
    directories = {}
    for variant in MARKERS:
        directory = os.path.join(root, variant)
        os.makedirs(directory)
        files = {"pytest.ini": INI, "conftest.py": CONFTEST, "bench_calls.py": COUNTER_MODULE,
                 "test_trivial.py": test_source(variant, tests, threads)}
        for name, text in files.items():
            with open(os.path.join(directory, name), "w") as f:
                f.write(text)
        directories[variant] = directory
    return directories


def describe(python: str) -> dict[str, Any]:
    """The interpreter, its build and GIL, and the versions of pytest and both plugins."""
    code = (
        "import json, sys, sysconfig\n"
        "from importlib.metadata import version, PackageNotFoundError\n"
        "def v(name):\n"
        "    try:\n"
        "        return version(name)\n"
        "    except PackageNotFoundError:\n"
        "        return None\n"
        "gil = getattr(sys, '_is_gil_enabled', None)\n"
        "print(json.dumps({'implementation': sys.implementation.name,\n"
        "    'version': '.'.join(map(str, sys.version_info[:3])),\n"
        "    'free_threaded_build': bool(sysconfig.get_config_var('Py_GIL_DISABLED')),\n"
        "    'gil_enabled_at_start': gil() if gil is not None else True,\n"
        "    'pytest': v('pytest'), 'pytest-procthread': v('pytest-procthread'),\n"
        "    'pytest-run-parallel': v('pytest-run-parallel')}))\n"
    )
    done = subprocess.run([python, "-c", code], capture_output=True, text=True,
                          timeout=PROBE_LIMIT, check=False)
    if done.returncode != 0:
        raise SystemExit(f"cannot run {python}:\n{done.stderr[-2000:]}")
    info: dict[str, Any] = json.loads(done.stdout)
    for plugin in ("pytest-procthread", "pytest-run-parallel"):
        if info[plugin] is None:
            raise SystemExit(f"{python} has no {plugin}; install both plugins there first")
    return info


def run_env(pycache: str, probe: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONDONTWRITEBYTECODE", "PYTEST_ADDOPTS", "PYTEST_PLUGINS")}
    env.update(PYTHONPYCACHEPREFIX=pycache, BENCH_THREADS_PROBE=probe, PY_COLORS="0")
    return env


def summary_counts(stdout: str) -> dict[str, int]:
    """The outcome counts of pytest's last summary line ("200 passed in 1.23s")."""
    lines = [line for line in stdout.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    return {word.rstrip("s") if word.startswith("error") else word: int(count)
            for count, word in SUMMARY_WORD.findall(last)}


def run_once(python: str, variant: str, directory: str, env: dict[str, str], tests: int,
             threads: int) -> tuple[float, dict[str, Any]]:
    """Wall time of one pytest run of one variant, and what its probe saw; loud on failure."""
    probe = env["BENCH_THREADS_PROBE"]
    if os.path.exists(probe):
        os.unlink(probe)
    command = [python, "-m", "pytest", *COMMON, *DISABLE[variant], "test_trivial.py"]
    started = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=directory, env=env, capture_output=True, text=True,
                              timeout=RUN_LIMIT, check=False)
    except subprocess.TimeoutExpired as exc:
        raise SystemExit(f"{variant}: pytest did not end in {RUN_LIMIT:g} s: "
                         f"{' '.join(command)}") from exc
    elapsed = time.perf_counter() - started
    counts = summary_counts(done.stdout)
    problem = ""
    if done.returncode != 0:
        problem = f"exit status {done.returncode}"
    elif counts.get("passed") != tests or set(counts) - {"passed"}:
        problem = f"expected {tests} passed, the summary says {counts}"
    else:
        with open(probe) as f:
            seen: dict[str, Any] = json.load(f)
        expected_calls = tests if variant == PLAIN else tests * threads
        if seen["calls"] != expected_calls:
            problem = (f"the test bodies ran {seen['calls']} times, expected {expected_calls} "
                       f"({tests} tests x {1 if variant == PLAIN else threads} threads)")
    if problem:
        raise SystemExit(
            f"{variant} run failed: {problem}\ncommand: {' '.join(command)} (in {directory})\n"
            f"--- stdout (tail)\n{done.stdout[-3000:]}\n--- stderr (tail)\n{done.stderr[-3000:]}"
        )
    return elapsed, seen


def _span(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
    return f"{min(values) * scale:.{digits}f}..{max(values) * scale:.{digits}f}"


def report(info: dict[str, Any], python: str, samples: dict[str, list[float]],
           gil_at_end: dict[str, bool], tests: int, threads: int, rounds: int) -> dict[str, Any]:
    gil = "free-threaded build" if info["free_threaded_build"] else "GIL build"
    gil += "; GIL " + ("enabled" if info["gil_enabled_at_start"] else "disabled") + " at start"
    print(f"python: {python} ({info['implementation']} {info['version']}, {gil}; pytest "
          f"{info['pytest']}, pytest-procthread {info['pytest-procthread']}, "
          f"pytest-run-parallel {info['pytest-run-parallel']})")
    print(f"{tests} trivial tests, {threads} threads, {rounds} rounds; cpus: {os.cpu_count()}")
    for variant, enabled in gil_at_end.items():
        if enabled != info["gil_enabled_at_start"]:
            print(f"note: the GIL was {'enabled' if enabled else 'disabled'} at the end of the "
                  f"{variant} runs (an extension module changed it)")
    print()
    plain = samples[PLAIN]
    print(f"{'variant':<36} {'run (s)':>8} {'min..max':>12} {'ms/test':>8} "
          f"{'over plain, ms/test':>20}")
    over: dict[str, list[float]] = {}
    for variant, times in samples.items():
        label = LABELS[variant].format(n=threads)
        median = statistics.median(times)
        extra = ""
        if variant != PLAIN:
            over[variant] = [(t - p) / tests * 1000 for t, p in zip(times, plain)]
            extra = f"{statistics.median(over[variant]):.3f}"
        print(f"{label:<36} {median:>8.3f} {_span(times):>12} {median / tests * 1000:>8.3f} "
              f"{extra:>20}")
    ratios = [o / t for o, t in zip(samples[OURS], samples[THEIRS])]
    ratio = statistics.median(ratios)
    of_medians = statistics.median(samples[OURS]) / statistics.median(samples[THEIRS])
    verdict = "PASS" if ratio <= GOAL_RATIO else "MISS"
    print()
    print(f"ratio ours/theirs: {ratio:.3f}x (median of the rounds; goal <= {GOAL_RATIO:g}x: "
          f"{verdict}); ratio of the medians {of_medians:.3f}x")
    print("  per round: " + ", ".join(f"{r:.3f}" for r in ratios))
    over_ours, over_theirs = statistics.median(over[OURS]), statistics.median(over[THEIRS])
    if over_theirs > 0:
        print(f"  over the plain run: {over_ours:.3f} against {over_theirs:.3f} ms/test "
              f"({over_ours / over_theirs:.3f}x)")
    return {"ratio_median_of_rounds": ratio, "ratio_of_medians": of_medians,
            "ratios": ratios, "over_plain_ms_per_test": over, "verdict": verdict}


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter to run pytest with, with both plugins installed "
                        "(default: this one)")
    parser.add_argument("--tests", type=int, default=200, help="trivial tests per run")
    parser.add_argument("--threads", type=int, default=8, help="threads per test")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds")
    parser.add_argument("--json", metavar="PATH", help="also write every sample here")
    args = parser.parse_args(argv)
    if args.tests < 1 or args.threads < 2 or args.rounds < 1:
        parser.error("--tests and --rounds must be at least 1, --threads at least 2")

    info = describe(args.python)
    samples: dict[str, list[float]] = {variant: [] for variant in MARKERS}
    gil_at_end: dict[str, bool] = {}
    with tempfile.TemporaryDirectory(prefix="bench-threads-") as root:
        directories = write_variants(os.path.join(root, "tests"), args.tests, args.threads)
        env = run_env(os.path.join(root, "pycache"), os.path.join(root, "probe.json"))
        order = [OURS, THEIRS, PLAIN]
        for variant in order:  # warm-up: bytecode caches, the page cache
            run_once(args.python, variant, directories[variant], env, args.tests, args.threads)
        for round_no in range(args.rounds):
            for variant in order if round_no % 2 == 0 else order[::-1]:
                elapsed, seen = run_once(args.python, variant, directories[variant], env,
                                         args.tests, args.threads)
                samples[variant].append(elapsed)
                gil_at_end[variant] = bool(seen["gil_enabled"])
            print(f"  round {round_no + 1}/{args.rounds}: " + ", ".join(
                f"{v} {samples[v][-1]:.3f} s" for v in order), flush=True)
    print()
    figures = report(info, args.python, samples, gil_at_end, args.tests, args.threads,
                     args.rounds)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"python": args.python, "interpreter": info, "tests": args.tests,
                       "threads": args.threads, "rounds": args.rounds, "samples": samples,
                       "gil_enabled_at_end": gil_at_end, **figures}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
