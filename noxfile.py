"""nox sessions: the plugin's tests, lint, typing, and the conformance pack on every interpreter.

    nox -l                      the sessions, with the interpreters found on this machine
    nox                         tests, lint, typing, conformance on every interpreter, matrix
    nox -s "conformance(3.9)"   the pack on one interpreter, every start method it has
    nox -s matrix               merge the reports of `conformance` into one table
    nox -s "conformance_method(pypy3.9, method='spawn')"   one start method, to look into it

Interpreters are found by explicit path: every CPython >= 3.9 under
`$(pyenv root)/versions/*/bin/python3.X`, and `pypy3` if present. Override with
NOX_PROCTHREAD_PYTHONS="3.9=/path/to/python3.9 pypy3.9=/usr/bin/pypy3".
"""

# The pack sessions run the pack as a user who installed the package does: `pip install .`
# into the session's venv, then `python -m pytest_procthread pack`, which runs the copy
# installed with the package (pytest_procthread.pack), not the checkout's conformance/.
#
# `conformance` runs every start method in one session per interpreter: the pack
# parametrises itself over fork, forkserver and spawn, and the matrix makes one column per
# (interpreter, start method) out of that one report, with the checks that do not depend
# on the method measured once. `conformance_method` (interpreter x method) runs one method
# (--procthread-pack-start-methods), to look into it; its report has that method's column.

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
REPORTS = ROOT / "reports" / "nox"
START_METHODS = ("fork", "forkserver", "spawn")
LINT_PATHS = ("src", "tests", "conformance", "benchmarks", "noxfile.py")

nox.options.sessions = ["tests", "lint", "typing", "conformance", "matrix"]
nox.options.download_python = "never"  # only what is on this machine
nox.options.error_on_missing_interpreters = True


def _pyenv_root() -> Path:
    if os.environ.get("PYENV_ROOT"):
        return Path(os.environ["PYENV_ROOT"])
    if shutil.which("pyenv"):
        try:
            out = subprocess.run(["pyenv", "root"], capture_output=True, text=True, timeout=10)
            if out.returncode == 0 and out.stdout.strip():
                return Path(out.stdout.strip())
        except (OSError, subprocess.TimeoutExpired):
            pass
    return Path.home() / ".pyenv"


def _version_key(text: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", text))


def find_interpreters() -> dict[str, str]:
    """Session id ("3.9", "3.13t", "pypy3.9") -> absolute path of the interpreter."""
    override = os.environ.get("NOX_PROCTHREAD_PYTHONS")
    if override:
        return dict(item.split("=", 1) for item in override.split())
    found: dict[str, str] = {}
    versions = _pyenv_root() / "versions"
    # Newest patch release first, so that it wins when a minor version is there twice.
    for exe in sorted(glob.glob(str(versions / "*" / "bin" / "python3.*")),
                      key=lambda p: _version_key(Path(p).parents[1].name), reverse=True):
        match = re.fullmatch(r"python3\.(\d+)(t?)", Path(exe).name)
        if match and int(match.group(1)) >= 9:
            found.setdefault(f"3.{match.group(1)}{match.group(2)}", exe)
    ordered = dict(sorted(found.items(), key=lambda kv: _version_key(kv[0])))
    pypy = shutil.which("pypy3")
    if pypy:
        try:
            out = subprocess.run(
                [pypy, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True, text=True, timeout=30,
            )
            version = out.stdout.strip()
            if out.returncode == 0 and _version_key(version) >= (3, 9):
                ordered[f"pypy{version}"] = os.path.realpath(pypy)
        except (OSError, subprocess.TimeoutExpired):
            pass
    return ordered


INTERPRETERS = find_interpreters()
PYTHONS = [nox.param(path, id=name) for name, path in INTERPRETERS.items()]
def _name(session: nox.Session) -> str:
    return next(n for n, path in INTERPRETERS.items() if path == session.python)


@nox.session
def tests(session: nox.Session) -> None:
    """README (b): install with the test extra and run the plugin's tests."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff, as CI runs it."""
    session.install("ruff>=0.5")
    session.run("ruff", "check", *LINT_PATHS, *session.posargs)


@nox.session
def typing(session: nox.Session) -> None:
    """mypy --strict over the package (configured in pyproject.toml)."""
    session.install("-e", ".[lint]")
    session.run("mypy", *session.posargs)


@nox.session
@nox.parametrize("python", PYTHONS)
def conformance(session: nox.Session) -> None:
    """README (a) on one interpreter: every start method it has, one JSON report."""
    session.install(".")
    REPORTS.mkdir(parents=True, exist_ok=True)
    session.run(
        "python", "-m", "pytest_procthread", "pack", "-p", "no:cacheprovider",
        f"--procthread-report={REPORTS / (_name(session) + '.json')}", *session.posargs,
    )


@nox.session
@nox.parametrize("method", START_METHODS)
@nox.parametrize("python", PYTHONS)
def conformance_method(session: nox.Session, method: str) -> None:
    """The pack under one start method, and the checks that depend on none."""
    session.install(".")
    REPORTS.mkdir(parents=True, exist_ok=True)
    session.run(
        "python", "-m", "pytest_procthread", "pack", "-p", "no:cacheprovider",
        f"--procthread-pack-start-methods={method}",
        f"--procthread-report={REPORTS / 'method' / f'{_name(session)}-{method}.json'}",
        *session.posargs,
    )


@nox.session
def matrix(session: nox.Session) -> None:
    """Merge the reports of `conformance` into one table: Markdown (printed) and HTML."""
    reports = [REPORTS / f"{name}.json" for name in INTERPRETERS]
    present = [str(p) for p in reports if p.is_file()]
    missing = [p.stem for p in reports if not p.is_file()]
    if not present:
        session.error(f"no reports in {REPORTS}: run `nox -s conformance` first")
    if missing:
        session.warn(f"no report for {', '.join(missing)}: their columns are left out")
    for path in present:
        unexpected = json.loads(Path(path).read_text(encoding="utf-8")).get("unexpected")
        session.log(f"{Path(path).name}: {unexpected} unexpected")
    session.install(".")
    command = ["python", "-m", "pytest_procthread", "matrix", *present]
    session.run(*command, "--format", "html", "-o", str(REPORTS / "matrix.html"))
    session.run(*command, "--format", "markdown", "-o", str(REPORTS / "matrix.md"))
    session.run(*command, "--format", "markdown", "--fail-on-unexpected")
    session.log(f"written: {REPORTS / 'matrix.md'}, {REPORTS / 'matrix.html'}")
