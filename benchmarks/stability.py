"""Run the conformance pack many times and count verdicts that differ from expectations.

    python benchmarks/stability.py [--serial 20] [--parallel 20] [--loaded 10] [--python PY]

Runs the pack N times serially, N times with ``-n 2`` (pytest-xdist), and N times beside a
CPU-bound load on every usable core, reading each run's JSON report. The goal is zero
unexpected verdicts, with inconclusive verdicts allowed only under load. Not a test: a
person runs it and reads the summary.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BURN = "while True: pass"


def run_pack(python: str, report: Path, extra: list[str]) -> tuple[int, float]:
    start = time.monotonic()
    proc = subprocess.run(
        [python, "-m", "pytest", "conformance/", "-q", "-p", "no:cacheprovider",
         f"--procthread-report={report}", *extra],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600,
    )
    return proc.returncode, time.monotonic() - start


def tally(report: Path) -> tuple[collections.Counter[str], list[str]]:
    data = json.loads(report.read_text())
    counts: collections.Counter[str] = collections.Counter()
    unexpected = []
    for claim in data["claims"]:
        for result in claim["results"]:
            counts[result["verdict"]] += 1
            if result["verdict"] == "inconclusive":
                counts[f"inconclusive:{claim['id']}"] += 1
            if not result["as_expected"]:
                unexpected.append(f"{claim['id']} [{result['variant']}]: {result['verdict']} "
                                  f"(expected {result['expected']}) {result['figure'][:120]}")
    return counts, unexpected


def series(name: str, runs: int, python: str, extra: list[str], loaded: bool) -> dict[str, object]:
    burners = []
    if loaded:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2
        burners = [subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(cores)]
    totals: collections.Counter[str] = collections.Counter()
    unexpected: list[str] = []
    failures = 0
    durations = []
    inconclusive_runs = 0
    try:
        with tempfile.TemporaryDirectory() as scratch:
            for i in range(runs):
                report = Path(scratch) / f"{name}-{i}.json"
                code, seconds = run_pack(python, report, extra)
                durations.append(seconds)
                if not report.exists():
                    failures += 1
                    unexpected.append(f"run {i}: no report (exit code {code})")
                    continue
                counts, bad = tally(report)
                totals.update(counts)
                unexpected.extend(f"run {i}: {line}" for line in bad)
                failures += code != 0
                inconclusive_runs += counts["inconclusive"] > 0
                print(f"  {name} run {i + 1}/{runs}: exit {code}, {seconds:.1f} s, "
                      f"{dict(counts)}", flush=True)
    finally:
        for burner in burners:
            burner.kill()
            burner.wait(10)
    return {"name": name, "runs": runs, "failures": failures, "unexpected": unexpected,
            "verdicts": dict(totals), "inconclusive_runs": inconclusive_runs,
            "max_s": max(durations, default=0.0),
            "median_s": sorted(durations)[len(durations) // 2] if durations else 0.0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serial", type=int, default=20)
    parser.add_argument("--parallel", type=int, default=20)
    parser.add_argument("--loaded", type=int, default=10)
    parser.add_argument("--python", default=sys.executable)
    args = parser.parse_args()
    results = [
        series("serial", args.serial, args.python, [], loaded=False),
        series("xdist-n2", args.parallel, args.python, ["-n", "2"], loaded=False),
        series("serial-under-load", args.loaded, args.python, [], loaded=True),
    ]
    print()
    print(f"{'series':<18} {'runs':>4} {'non-zero exits':>14} {'unexpected':>10} "
          f"{'runs w/ inconclusive':>20} {'median s':>8} {'max s':>6}  verdicts")
    for r in results:
        print(f"{r['name']:<18} {r['runs']:>4} {r['failures']:>14} {len(r['unexpected']):>10} "
              f"{r['inconclusive_runs']:>20} {r['median_s']:>8.1f} {r['max_s']:>6.1f}  "
              f"{r['verdicts']}")
    for r in results:
        for line in r["unexpected"]:
            print(f"UNEXPECTED {r['name']}: {line}")
    bad = sum(len(r["unexpected"]) for r in results)
    unloaded_inconclusive = sum(r["inconclusive_runs"] for r in results[:2])
    print(f"\nunexpected verdicts: {bad}; runs with an inconclusive verdict without load: "
          f"{unloaded_inconclusive}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
