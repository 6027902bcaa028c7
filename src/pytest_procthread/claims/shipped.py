"""The pack that ships inside the distribution: where it is installed, and running it.

``python -m pytest_procthread pack [pytest args]`` runs the installed
``pytest_procthread.pack`` (developed in the repository's ``conformance/``) with pytest in
this process. The pack's own ``pytest.ini`` is found from its directory, so the run is the
same from any working directory; only the cache moves to the working directory, since
``site-packages`` need not be writable.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path

PACK_PACKAGE = "pytest_procthread.pack"


class PackMissing(RuntimeError):
    """The installation has no pack; the message says how to get one."""


def pack_directory(package: str = PACK_PACKAGE) -> Path:
    """The directory of the installed pack (its claims.toml beside its checks)."""
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        if (Path(location) / "claims.toml").is_file():
            return Path(location)
    where = f" ({', '.join(locations)} has no claims.toml)" if locations else ""
    raise PackMissing(
        f"the conformance pack {package} is not in this installation of "
        f"pytest-procthread{where}: reinstall it (pip install --force-reinstall "
        "pytest-procthread), or run `pytest conformance/` from a checkout of the repository"
    )


def pack_arguments(directory: Path, args: Sequence[str], cwd: Path) -> list[str]:
    """pytest's arguments for a run of the pack at ``directory`` with the user's ``args``.

    The user's arguments come last so that their own ``-o cache_dir=...`` wins. Without the
    cache plugin (``-p no:cacheprovider``) there is no cache to place, and pytest would warn
    of an unknown ``cache_dir``."""
    if any(arg.endswith("no:cacheprovider") for arg in args):
        return [str(directory), *args]
    return [str(directory), "-o", f"cache_dir={cwd / '.pytest_cache'}", *args]


def run_pack(args: Sequence[str]) -> int:
    """Run the installed pack with pytest; pytest's exit code."""
    import pytest

    directory = pack_directory()
    return int(pytest.main(pack_arguments(directory, args, Path(os.getcwd()))))
