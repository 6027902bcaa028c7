"""The pack ships inside the distribution and runs from it: ``python -m pytest_procthread pack``.

The pyproject's package list is kept by hand (find cannot map ``conformance/`` to
``pytest_procthread.pack``), so one test holds it to the tree. The others run the pack as
installed here, from a directory with no copy of it, as a user without a checkout does.
CI runs the same from a non-editable ``pip install .`` on every interpreter.
"""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_procthread.claims.shipped import PackMissing, pack_arguments, pack_directory
from pytest_procthread.matrix import build_matrix

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
WAIT = 240  # seconds: a bound for each pack run below


def _pyproject() -> dict:  # type: ignore[type-arg]
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["tool"]["setuptools"]  # type: ignore[no-any-return]


def test_every_package_of_the_tree_is_in_the_distribution() -> None:
    setup = _pyproject()
    on_disk = {
        ".".join(init.parent.relative_to(SRC).parts) for init in SRC.rglob("__init__.py")
    }
    listed = set(setup["packages"])
    assert listed - on_disk == {"pytest_procthread.pack"}
    assert on_disk - listed == set(), "packages under src/ missing from pyproject's list"
    assert setup["package-dir"]["pytest_procthread.pack"] == "conformance"
    assert (ROOT / "conformance" / "__init__.py").is_file()


def test_every_data_file_of_the_pack_is_shipped() -> None:
    patterns = _pyproject()["package-data"]["pytest_procthread.pack"]
    data = [p.name for p in (ROOT / "conformance").iterdir()
            if p.is_file() and p.suffix not in (".py", ".pyc")]
    assert {"claims.toml", "expectations.toml", "pytest.ini"} <= set(data)
    unshipped = [name for name in data if not any(fnmatch.fnmatch(name, p) for p in patterns)]
    assert not unshipped, f"files of conformance/ that the wheel would leave out: {unshipped}"


def test_every_data_file_of_the_package_is_shipped() -> None:
    # The matrix page's style sheet, py.typed: a file that is not Python reaches the wheel
    # only through package-data.
    patterns = _pyproject()["package-data"]
    unshipped = []
    for path in (SRC / "pytest_procthread").rglob("*"):
        parts = path.relative_to(SRC).parts
        if not path.is_file() or path.suffix in (".py", ".pyc") or any(
                part == "__pycache__" or part.startswith(".") for part in parts):
            continue  # caches of tools that ran in the tree
        package = ".".join(path.parent.relative_to(SRC).parts)
        if not any(fnmatch.fnmatch(path.name, p) for p in patterns.get(package, [])):
            unshipped.append(str(path.relative_to(SRC)))
    assert not unshipped, f"files of the package that the wheel would leave out: {unshipped}"


def test_the_installed_pack_is_found() -> None:
    directory = pack_directory()
    assert (directory / "claims.toml").is_file()
    assert (directory / "pytest.ini").is_file()
    # An editable install maps it to the checkout; a wheel puts it in site-packages.
    assert directory.name in ("conformance", "pack")


def test_a_missing_pack_is_a_clear_error() -> None:
    with pytest.raises(PackMissing, match=r"pytest_procthread\.nopack is not in this "
                       r"installation.*reinstall it.*pytest conformance/"):
        pack_directory("pytest_procthread.nopack")


def test_the_users_arguments_come_after_the_pack(tmp_path: Path) -> None:
    args = pack_arguments(Path("/p"), ["-k", "fork", "-o", "cache_dir=x"], tmp_path)
    assert args[0] == str(Path("/p"))
    assert args[1:3] == ["-o", f"cache_dir={tmp_path / '.pytest_cache'}"]
    assert args[3:] == ["-k", "fork", "-o", "cache_dir=x"]  # the last -o wins
    for off in (["-p", "no:cacheprovider"], ["-pno:cacheprovider"]):
        assert pack_arguments(Path("/p"), off, tmp_path) == [str(Path("/p")), *off]


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=WAIT)


def test_python_m_pack_runs_the_checks_and_writes_the_report(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    done = _run(tmp_path, "-m", "pytest_procthread", "pack", "-k", "each_process_has_its_own_pid",
                "--procthread-pack-start-methods=spawn", f"--procthread-report={report}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"configfile: {Path('pytest.ini')}" in done.stdout  # the pack's own, not ours
    assert "procthread claims (pack" in done.stdout
    data = json.loads(report.read_text(encoding="utf-8"))
    assert data["runtime"]["start_methods"] == ["spawn"]
    (entry,) = [c for c in data["claims"] if c["id"] == "process-has-own-identity"]
    assert [r["verdict"] for r in entry["results"]] == ["holds"]
    assert entry["results"][0]["variant"].startswith("spawn")
    # The matrix of that report has the one column that was run.
    assert [c.split()[-1] for c in build_matrix([data])["columns"]] == ["spawn"]
    assert (tmp_path / ".pytest_cache").is_dir()  # in the working directory, not the pack's


def test_pytest_pyargs_finds_the_pack(tmp_path: Path) -> None:
    done = _run(tmp_path, "-m", "pytest_procthread", "pack", "--collect-only", "-q",
                "-p", "no:cacheprovider", "-W", "error::pytest.PytestConfigWarning")
    assert done.returncode == 0, done.stdout + done.stderr
    done = _run(tmp_path, "-m", "pytest", "--pyargs", "pytest_procthread.pack",
                "--collect-only", "-q", "-p", "no:cacheprovider")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "test_identity.py::" in done.stdout


def test_a_wrong_start_method_is_a_usage_error(tmp_path: Path) -> None:
    done = _run(tmp_path, "-m", "pytest_procthread", "pack", "--collect-only",
                "--procthread-pack-start-methods=fork,sporn", "-p", "no:cacheprovider")
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout + done.stderr
    assert "'sporn' is not a start method; give one or more of fork, forkserver, spawn" in (
        done.stderr)


def test_only_the_chosen_start_method_is_collected(tmp_path: Path) -> None:
    done = _run(tmp_path, "-m", "pytest_procthread", "pack", "--collect-only", "-q",
                "--procthread-pack-start-methods=fork", "-p", "no:cacheprovider")
    assert done.returncode == 0, done.stdout + done.stderr
    ids = [line for line in done.stdout.splitlines() if "::" in line]
    assert any("[fork" in i for i in ids)
    assert not any("[spawn" in i or "[forkserver" in i for i in ids)
    assert any("[" not in i for i in ids)  # the checks that depend on no start method stay
