"""Real test suites, plain and under ``--isolated``: every result as without it, and the cost.

Run it by hand (it is not a test; a full run takes tens of minutes):

    python benchmarks/real_suites.py prepare [--work DIR]
    python benchmarks/real_suites.py update [--work DIR]      # this checkout, installed again
    python benchmarks/real_suites.py run [--work DIR] [--suites click,attrs] [--modes ...]
                                         [--rounds N] [--json out.json]

``prepare`` downloads the pinned sdists (``pip download --no-binary :all: --no-deps``),
unpacks them, and makes two virtual environments: ``main`` (the newest pytest this
plugin allows, pytest-xdist, this checkout) and ``peer`` (pytest 8.4 with pytest-forked,
which does not work on pytest 9, and this checkout), each with every suite and what its
tests need. ``run`` runs each suite's tests from its unpacked source in every mode, with a
bytecode cache for everything (``PYTHONPYCACHEPREFIX`` under the work directory), one
mode after the other, ``--rounds`` times, and prints per suite and mode: the wall time
(median of the rounds), the overhead per test over the plain run of the same venv and
round, the page faults per test of the whole process tree (``getrusage``), and every test
whose outcome differs from the plain run (from JUnit XML reports).

Modes: ``plain``; ``floor`` (a bare fork per test body, see ``bare_fork.py``);
``isolated-fork``, ``isolated-forkserver``, ``isolated-spawn``; the same with ``-n 2``
(``xdist-plain``, ``xdist-fork``, ``xdist-spawn``); and in the peer venv ``84-plain``,
``84-floor``, ``84-isolated-fork`` and ``84-forked`` (pytest-forked).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RUN_LIMIT = 1800  # seconds for one pytest run of one suite


@dataclass(frozen=True)
class Suite:
    name: str
    version: str
    tests: tuple[str, ...]  # test directories or files, relative to the unpacked sdist
    needs: tuple[str, ...] = ()  # what its tests import besides pytest
    what: str = ""  # what kind of suite it is, for the report
    args: tuple[str, ...] = ()


SUITES = (
    Suite("more-itertools", "10.7.0", ("tests",), what="unittest.TestCase classes"),
    Suite("boltons", "26.2.0", ("tests",), what="plain functions, fixtures"),
    Suite("cachetools", "5.5.2", ("tests",), what="unittest.TestCase classes, mixins"),
    Suite("toolz", "1.0.0", ("toolz/tests",), what="plain functions"),
    Suite("attrs", "25.3.0", ("tests",), ("hypothesis", "pympler", "cloudpickle"),
          "classes, hypothesis, heavy parametrize"),
    # click's own settings make warnings errors, and pytest 9 deprecates an iterator in
    # its parametrize: ignored in every mode alike.
    Suite("click", "8.3.1", ("tests",), what="a CLI library: fixtures, capsys, parametrize",
          args=("-W", "ignore:Passing a non-Collection iterable to parametrize")),
    # Not test_version.py and test_requirements.py: 23,000 more parametrized cases of the
    # same kind, which would make each isolated run last minutes.
    Suite("packaging", "25.0", ("tests/test_markers.py", "tests/test_metadata.py",
                               "tests/test_specifiers.py", "tests/test_tags.py",
                               "tests/test_manylinux.py", "tests/test_musllinux.py",
                               "tests/test_elffile.py", "tests/test_structures.py",
                               "tests/test_utils.py"),
          ("pretend",), "heavy parametrize, monkeypatch"),
    Suite("python-dateutil", "2.9.0.post0", ("tests",),
          ("freezegun", "hypothesis", "six", "pytest-cov"),
          "a date library: unittest classes, hypothesis, warnings as errors",
          args=("-W", "ignore:Passing a non-Collection iterable to parametrize")),
)


@dataclass(frozen=True)
class Mode:
    venv: str  # "main" or "peer"
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    baseline: str = "plain"  # the mode whose results and time this one is compared with


FLOOR = (("BENCH_BARE_FORK", "trimmed"),)
MODES = {
    "plain": Mode("main"),
    "floor": Mode("main", ("-p", "bare_fork"), FLOOR),
    "isolated-fork": Mode("main", ("--isolated", "--procthread-start-method=fork")),
    "isolated-forkserver": Mode("main", ("--isolated", "--procthread-start-method=forkserver")),
    "isolated-spawn": Mode("main", ("--isolated", "--procthread-start-method=spawn")),
    "xdist-plain": Mode("main", ("-n", "2")),
    "xdist-fork": Mode("main", ("-n", "2", "--isolated", "--procthread-start-method=fork"),
                       baseline="xdist-plain"),
    "xdist-spawn": Mode("main", ("-n", "2", "--isolated", "--procthread-start-method=spawn"),
                        baseline="xdist-plain"),
    "84-plain": Mode("peer", baseline="84-plain"),
    "84-floor": Mode("peer", ("-p", "bare_fork"), FLOOR, baseline="84-plain"),
    "84-isolated-fork": Mode("peer", ("--isolated", "--procthread-start-method=fork"),
                             baseline="84-plain"),
    "84-forked": Mode("peer", ("--forked",), baseline="84-plain"),
}
COMMON = ("-p", "no:cacheprovider", "-q", "-o", "junit_family=xunit2")


# -- prepare ---------------------------------------------------------------------------------

def _pip(venv: Path, *args: str) -> None:
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *args],
                   check=True)


def prepare(work: Path) -> None:
    sdists = work / "sdists"
    sdists.mkdir(parents=True, exist_ok=True)
    for suite in SUITES:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-binary", ":all:",
                        "--no-deps", f"{suite.name}=={suite.version}", "-d", str(sdists)],
                       check=True)
    sources = work / "src"
    sources.mkdir(exist_ok=True)
    for archive in sdists.glob("*.tar.gz"):
        with tarfile.open(archive) as tar:
            tar.extractall(sources)
    needs = sorted({need for suite in SUITES for need in suite.needs})
    for venv, pins in (("main", ["pytest-xdist"]), ("peer", ["pytest==8.4.*", "pytest-forked",
                                                            "pytest-xdist"])):
        path = work / f"venv-{venv}"
        if not path.exists():
            subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
        _pip(path, "--upgrade", "pip")
        _pip(path, *pins, *needs, str(REPO))
        for suite in SUITES:
            _pip(path, "--no-deps", str(source_of(work, suite)))
    print(f"prepared in {work}")


def update(work: Path) -> None:
    """Install this checkout again into both venvs (after a change to the plugin)."""
    for venv in ("main", "peer"):
        _pip(work / f"venv-{venv}", "--no-deps", "--force-reinstall", str(REPO))


def source_of(work: Path, suite: Suite) -> Path:
    """The unpacked sdist: newer ones spell the name with underscores."""
    for name in (suite.name, suite.name.replace("-", "_")):
        path = work / "src" / f"{name}-{suite.version}"
        if path.exists():
            return path
    raise SystemExit(f"{suite.name} {suite.version} is not unpacked in {work}; run prepare")


# -- run -------------------------------------------------------------------------------------

@dataclass
class Result:
    seconds: list[float] = field(default_factory=list)
    faults: list[float] = field(default_factory=list)
    outcomes: dict[str, str] = field(default_factory=dict)
    status: int = 0
    tail: str = ""


def _outcomes(xml: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    if not xml.exists():
        return found
    for case in ET.parse(xml).iter("testcase"):
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = child.tag
            elif child.tag == "skipped":
                outcome = "xfailed" if child.get("type") == "pytest.xfail" else "skipped"
        found[f"{case.get('classname', '')}::{case.get('name', '')}"] = outcome
    return found


def _run_once(work: Path, suite: Suite, mode: Mode, xml: Path) -> tuple[float, float, int, str]:
    python = work / f"venv-{mode.venv}" / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    # A fixed hash seed in every mode alike: pytest-xdist needs its workers to collect the
    # same tests (packaging parametrizes over sets), and an object that caches a string's
    # hash (packaging's Tag) must find the same hash in a fresh child.
    env.update(PYTHONPYCACHEPREFIX=str(work / "pycache"), PYTHONPATH=str(HERE), PY_COLORS="0",
               PYTHONHASHSEED="0")
    env.update(dict(mode.env))
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt
    started = time.perf_counter()
    done = subprocess.run(
        [str(python), "-m", "pytest", *suite.tests, *COMMON, f"--junitxml={xml}",
         *suite.args, *mode.args],
        cwd=source_of(work, suite), env=env, capture_output=True, text=True,
        timeout=RUN_LIMIT, check=False,
    )
    elapsed = time.perf_counter() - started
    faults = resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt - before
    return elapsed, faults, done.returncode, (done.stdout + done.stderr)[-2000:]


Results = dict[str, dict[str, Result]]


def run(work: Path, suites: list[Suite], modes: list[str], rounds: int) -> Results:
    results: Results = {s.name: {m: Result() for m in modes} for s in suites}
    reports = work / "reports"
    reports.mkdir(exist_ok=True)
    for suite in suites:  # warm-up: bytecode caches, the page cache
        for venv in sorted({MODES[name].venv for name in modes}):
            _run_once(work, suite, Mode(venv), reports / "warm-up.xml")
    for round_no in range(rounds):
        for suite in suites:
            order = modes if round_no % 2 == 0 else modes[::-1]
            for name in order:
                xml = reports / f"{suite.name}-{name}.xml"
                elapsed, faults, status, tail = _run_once(work, suite, MODES[name], xml)
                result = results[suite.name][name]
                result.seconds.append(elapsed)
                result.faults.append(faults)
                result.status, result.tail = status, tail
                if round_no == 0:
                    result.outcomes = _outcomes(xml)
                print(f"  {suite.name:<16} {name:<20} {elapsed:7.2f} s  status {status}",
                      flush=True)
    return results


def _differences(result: Result, baseline: Result) -> list[str]:
    lines = []
    for test in sorted(set(result.outcomes) | set(baseline.outcomes)):
        was, now = baseline.outcomes.get(test, "absent"), result.outcomes.get(test, "absent")
        if was != now:
            lines.append(f"{test}: {was} -> {now}")
    return lines


def report(suites: list[Suite], results: Results) -> None:
    for suite in suites:
        by_mode = results[suite.name]
        plain = by_mode.get("plain") or next(iter(by_mode.values()))
        tests = len(plain.outcomes) or 1
        print(f"\n== {suite.name} {suite.version} ({tests} tests; {suite.what})")
        print(f"{'mode':<20} {'wall s':>8} {'ms/test over plain':>19} {'faults/test':>12}  "
              f"differs")
        for name, result in by_mode.items():
            baseline = by_mode.get(MODES[name].baseline)
            wall = statistics.median(result.seconds)
            over = ""
            if baseline is not None and baseline is not result:
                pairs = zip(result.seconds, baseline.seconds)
                over = f"{statistics.median((a - b) / tests * 1000 for a, b in pairs):.2f}"
            faults = statistics.median(result.faults) / tests
            diffs = _differences(result, baseline) if baseline is not None else []
            print(f"{name:<20} {wall:>8.2f} {over:>19} {faults:>12.0f}  {len(diffs)}")
            for line in diffs[:40]:
                print(f"    {line}")
            if len(diffs) > 40:
                print(f"    ... and {len(diffs) - 40} more")


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("prepare", "update", "run"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/procthread-real-suites"))
    parser.add_argument("--suites", default=",".join(s.name for s in SUITES))
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write every figure and outcome here")
    args = parser.parse_args(argv)
    if args.command in ("prepare", "update"):
        (prepare if args.command == "prepare" else update)(args.work)
        return 0
    chosen = [s for s in SUITES if s.name in args.suites.split(",")]
    modes = [m for m in args.modes.split(",") if m]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise SystemExit(f"unknown mode {unknown[0]!r}; the modes are {', '.join(MODES)}")
    for needed in {MODES[m].baseline for m in modes} - set(modes):
        modes.insert(0, needed)  # every mode is compared with its plain run
    results = run(args.work, chosen, modes, args.rounds)
    report(chosen, results)
    if args.json:
        args.json.write_text(json.dumps(
            {s: {m: vars(r) for m, r in by.items()} for s, by in results.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
