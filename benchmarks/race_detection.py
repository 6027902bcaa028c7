"""How often ``threads(8)`` catches a real race, next to pytest-run-parallel's
``force_parallel_threads(8)``, on the same racy code.

Run it by hand (it is not a test):

    python benchmarks/race_detection.py [--python PY] [--runs 10] [--threads 8]
                                        [--iterations 200] [--filler 1500]
                                        [--ours-arg ARG ...] [--theirs-arg ARG ...]
                                        [--json out.json]

The racy code is a shared-buffer formatter, the kind of thing a free-threading port
hunts for: one module-level object formats each record by appending its pieces to a list
it keeps between calls (to spare an allocation), then joins the list and clears it. That
read-modify-write spans a loop over the record's fields, with no lock, so a thread that
is switched out inside it finds another thread's pieces in its output, or its own pieces
cleared. The test formats ``--iterations`` records per thread, each built first by a
pure-Python checksum of ``--filler`` steps (work outside the race, which keeps the window
a small part of each iteration: on a GIL build the race shows only when threads switch
often, so detection depends on the tool), and fails if any record came back garbled.

The test runs with ours (``@pytest.mark.threads(N)``, ``-p no:run-parallel``, plus every
``--ours-arg``, e.g. ``--ours-arg=--procthread-switch-interval=off``) and with theirs
(``@pytest.mark.force_parallel_threads(N)``, ``-p no:procthread``, plus every
``--theirs-arg``) in subprocesses of the same interpreter ``--python`` (default: this
one), ``--runs`` times each, interleaved (ours first in even runs, theirs first in odd
ones). A run that fails on garbled records is a detection; a run that passes is none;
anything else (another failure, a usage error, a time-out, a body that did not run in N
threads at once) stops the script with the run's output. Each test body records, besides
its garbled count, its thread, its wall time and the switch interval it ran under, and
the run records whether the GIL was enabled at its end.

Printed per tool: detected k/N, the garbled records per run, the median wall time of the
test body, the switch interval the bodies saw, and the interpreter and its GIL state.

Goal (issue 16), on CPython 3.13 and on free-threaded 3.13t: ours detects at least as
often as theirs.
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
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

RUN_LIMIT = 600.0  # seconds for one pytest run
PROBE_LIMIT = 60.0  # seconds for one look at the interpreter
OURS, THEIRS = "ours", "theirs"
TOOLS = (OURS, THEIRS)
MARKERS = {OURS: "threads", THEIRS: "force_parallel_threads"}
DISABLE = {OURS: ["-p", "no:run-parallel"], THEIRS: ["-p", "no:procthread"]}
COMMON = ["-q", "-p", "no:cacheprovider", "-p", "no:randomly", "-p", "no:hypothesispytest",
          "--strict-markers"]
GARBLED = "garbled records:"  # the test's failure message: a detection, nothing else is

# The code under test. Nothing here is specific to a tool.
RACY_MODULE = '''\
"""A formatter that reuses one buffer between calls: fine in one thread, racy in many."""

import threading

FILLER = {filler}


class SharedBufferFormatter:
    def __init__(self):
        self._buffer = []

    def format(self, fields):
        buffer = self._buffer
        buffer.append("{{")
        for key, value in fields:
            buffer.append(key)
            buffer.append("=")
            buffer.append(value)
            buffer.append(";")
        buffer.append("}}")
        text = "".join(buffer)
        buffer.clear()
        return text


FORMATTER = SharedBufferFormatter()


def make_record(seq):
    """A record with its thread, its number and a checksum computed in pure Python."""
    digest = seq
    for step in range(FILLER):
        digest = (digest * 31 + step) % 1000003
    return (("thread", str(threading.get_ident())), ("seq", str(seq)), ("digest", str(digest)))


def expected(fields):
    return "{{" + "".join(key + "=" + value + ";" for key, value in fields) + "}}"
'''

# What each test body saw, written out at the end of the session; a lock of its own, so
# the record keeping cannot hide or cause a race in the formatter.
PROBE_MODULE = """\
import json
import sys
import threading
import time

_lock = threading.Lock()
BODIES = []


def body_ran(started, garbled):
    entry = {"thread": threading.get_ident(), "started": started, "ended": time.perf_counter(),
             "garbled": garbled, "switch_interval": sys.getswitchinterval()}
    with _lock:
        BODIES.append(entry)


def write(path):
    gil = getattr(sys, "_is_gil_enabled", None)
    with open(path, "w") as f:
        json.dump({"bodies": BODIES, "gil_enabled": gil() if gil is not None else True,
                   "switch_interval_after": sys.getswitchinterval()}, f)
"""
CONFTEST = """\
import os

import race_probe


def pytest_sessionfinish(session):
    race_probe.write(os.environ["RACE_PROBE"])
"""
TEST_MODULE = """\
import os
import time

import pytest

import race_probe
import racy

ITERATIONS = {iterations}
MARK = getattr(pytest.mark, os.environ["RACE_MARKER"])


@MARK({threads})
def test_formatter_keeps_records_intact():
    started = time.perf_counter()
    garbled = []
    for seq in range(ITERATIONS):
        record = racy.make_record(seq)
        text = racy.FORMATTER.format(record)
        if text != racy.expected(record):
            garbled.append(text)
    race_probe.body_ran(started, len(garbled))
    assert not garbled, f"{garbled_word} {{len(garbled)}} of {{ITERATIONS}}, e.g. {{garbled[0]!r}}"
"""


@dataclass
class Tally:
    args: list[str]
    detected: list[bool] = field(default_factory=list)
    garbled: list[int] = field(default_factory=list)  # garbled records per run, all threads
    body_seconds: list[float] = field(default_factory=list)  # first start to last end
    run_seconds: list[float] = field(default_factory=list)  # the whole pytest run
    switch_intervals: list[float] = field(default_factory=list)  # seen inside the bodies
    gil_enabled: list[bool] = field(default_factory=list)  # at the end of each run


def write_tests(directory: str, threads: int, iterations: int, filler: int) -> None:
    files = {
        "pytest.ini": "[pytest]\n",
        "conftest.py": CONFTEST,
        "race_probe.py": PROBE_MODULE,
        "racy.py": RACY_MODULE.format(filler=filler),
        "test_racy.py": TEST_MODULE.format(iterations=iterations, threads=threads,
                                           garbled_word=GARBLED),
    }
    for name, text in files.items():
        with open(os.path.join(directory, name), "w") as f:
            f.write(text)


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
        "    'default_switch_interval': sys.getswitchinterval(),\n"
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


def run_once(python: str, tool: str, extra: list[str], directory: str, pycache: str,
             threads: int, tally: Tally) -> None:
    """One pytest run of the racy test with one tool; adds its outcome to ``tally``."""
    probe = os.path.join(directory, f"probe-{tool}.json")
    if os.path.exists(probe):
        os.unlink(probe)
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONDONTWRITEBYTECODE", "PYTEST_ADDOPTS", "PYTEST_PLUGINS")}
    env.update(PYTHONPYCACHEPREFIX=pycache, RACE_PROBE=probe, RACE_MARKER=MARKERS[tool],
               PY_COLORS="0")
    command = [python, "-m", "pytest", *COMMON, *DISABLE[tool], *extra, "test_racy.py"]
    started = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=directory, env=env, capture_output=True, text=True,
                              timeout=RUN_LIMIT, check=False)
    except subprocess.TimeoutExpired as exc:
        raise SystemExit(f"{tool}: pytest did not end in {RUN_LIMIT:g} s: "
                         f"{' '.join(command)}") from exc
    elapsed = time.perf_counter() - started

    def fail(problem: str) -> SystemExit:
        return SystemExit(
            f"{tool} run failed: {problem}\ncommand: {' '.join(command)} (in {directory})\n"
            f"--- stdout (tail)\n{done.stdout[-4000:]}\n--- stderr (tail)\n{done.stderr[-3000:]}"
        )

    if done.returncode not in (0, 1) or not os.path.exists(probe):
        raise fail(f"exit status {done.returncode}, not a test outcome")
    with open(probe) as f:
        seen: dict[str, Any] = json.load(f)
    bodies: list[dict[str, Any]] = seen["bodies"]
    if len(bodies) != threads or len({body["thread"] for body in bodies}) != threads:
        raise fail(f"the test body ran {len(bodies)} times in "
                   f"{len({body['thread'] for body in bodies})} threads, expected {threads} "
                   f"threads at once")
    garbled = sum(int(body["garbled"]) for body in bodies)
    detected = done.returncode == 1
    if detected != (garbled > 0) or (detected and GARBLED not in done.stdout):
        raise fail(f"exit status {done.returncode} with {garbled} garbled records: the run "
                   f"failed for another reason, or passed over a race")
    tally.detected.append(detected)
    tally.garbled.append(garbled)
    tally.body_seconds.append(max(b["ended"] for b in bodies) - min(b["started"] for b in bodies))
    tally.run_seconds.append(elapsed)
    tally.switch_intervals.extend(float(body["switch_interval"]) for body in bodies)
    tally.gil_enabled.append(bool(seen["gil_enabled"]))


def _last_run(tool: str, tally: Tally) -> str:
    outcome = "DETECTED" if tally.detected[-1] else "passed"
    return f"{tool} {outcome} ({tally.garbled[-1]} garbled, body {tally.body_seconds[-1]:.2f} s)"


def _interval(values: list[float]) -> str:
    distinct = sorted(set(values))
    return ", ".join(f"{value:g} s" for value in distinct) if distinct else "-"


def report(info: dict[str, Any], python: str, tallies: dict[str, Tally], runs: int,
           threads: int, iterations: int, filler: int) -> None:
    build = "free-threaded build" if info["free_threaded_build"] else "GIL build"
    print(f"python: {python} ({info['implementation']} {info['version']}, {build}; GIL "
          f"{'enabled' if info['gil_enabled_at_start'] else 'disabled'} at start; default "
          f"switch interval {info['default_switch_interval']:g} s)")
    print(f"pytest {info['pytest']}, pytest-procthread {info['pytest-procthread']}, "
          f"pytest-run-parallel {info['pytest-run-parallel']}; cpus: {os.cpu_count()}")
    print(f"racy test: {threads} threads x {iterations} records, {filler} filler steps per "
          f"record; {runs} runs per tool, interleaved")
    print()
    print(f"{'tool':<34} {'detected':>9} {'garbled/run (median, max)':>26} {'body s':>7}  "
          f"switch interval in the body; GIL at end")
    for tool, tally in tallies.items():
        label = f"{tool}: {MARKERS[tool]}({threads})" + (" *" if tally.args else "")
        gil = sorted({"enabled" if g else "disabled" for g in tally.gil_enabled})
        garbled = f"{statistics.median(tally.garbled):g}, {max(tally.garbled)}"
        print(f"{label:<34} {sum(tally.detected):>4}/{len(tally.detected):<4} {garbled:>26} "
              f"{statistics.median(tally.body_seconds):>7.3f}  "
              f"{_interval(tally.switch_intervals)}; {'/'.join(gil)}")
    for tool, tally in tallies.items():
        if tally.args:
            print(f"* {tool} ran with: {' '.join(tally.args)}")
    ours, theirs = sum(tallies[OURS].detected), sum(tallies[THEIRS].detected)
    verdict = "PASS" if ours >= theirs else "MISS"
    print()
    print(f"ours {ours}/{runs}, theirs {theirs}/{runs}: goal ours >= theirs: {verdict}")
    body = statistics.median(tallies[OURS].body_seconds + tallies[THEIRS].body_seconds)
    if not 0.1 <= body <= 0.5:
        print(f"note: the test body took {body:.2f} s (median), outside the 0.1-0.5 s it is "
              f"tuned for on the development machine; --iterations sets it")


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter to run pytest with, with both plugins installed "
                        "(default: this one)")
    parser.add_argument("--runs", type=int, default=10, help="pytest runs per tool")
    parser.add_argument("--threads", type=int, default=8, help="threads of the racy test")
    parser.add_argument("--iterations", type=int, default=200,
                        help="records each thread formats per run")
    parser.add_argument("--filler", type=int, default=1500,
                        help="pure-Python steps to build each record (work outside the race)")
    parser.add_argument("--ours-arg", action="append", default=[], metavar="ARG",
                        help="extra pytest argument for our runs (repeatable), e.g. "
                        "--ours-arg=--procthread-switch-interval=off")
    parser.add_argument("--theirs-arg", action="append", default=[], metavar="ARG",
                        help="extra pytest argument for pytest-run-parallel's runs (repeatable)")
    parser.add_argument("--json", metavar="PATH", help="also write every run's figures here")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.threads < 2 or args.iterations < 1 or args.filler < 0:
        parser.error("--runs and --iterations must be at least 1, --threads at least 2")

    info = describe(args.python)
    tallies = {OURS: Tally(list(args.ours_arg)), THEIRS: Tally(list(args.theirs_arg))}
    with tempfile.TemporaryDirectory(prefix="race-detection-") as root:
        directory = os.path.join(root, "tests")
        os.makedirs(directory)
        write_tests(directory, args.threads, args.iterations, args.filler)
        pycache = os.path.join(root, "pycache")
        for run_no in range(args.runs):
            for tool in TOOLS if run_no % 2 == 0 else TOOLS[::-1]:
                tally = tallies[tool]
                run_once(args.python, tool, tally.args, directory, pycache, args.threads, tally)
            print(f"  run {run_no + 1}/{args.runs}: "
                  + ", ".join(_last_run(tool, tallies[tool]) for tool in TOOLS), flush=True)
    print()
    report(info, args.python, tallies, args.runs, args.threads, args.iterations, args.filler)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"python": args.python, "interpreter": info, "runs": args.runs,
                       "threads": args.threads, "iterations": args.iterations,
                       "filler": args.filler,
                       "tools": {tool: {"marker": f"{MARKERS[tool]}({args.threads})",
                                        **asdict(tally)} for tool, tally in tallies.items()}},
                      f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
