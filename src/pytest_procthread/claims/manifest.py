"""Loading and checking ``claims.toml``: every claim with a stable id, statement and source."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

KINDS = ("semantic", "measured", "observational")


@dataclass(frozen=True)
class Claim:
    id: str
    statement: str
    source: tuple[str, ...]
    kind: str
    relation: str = ""
    margin: float = 0.0
    beyond: bool = False


def _fail(path: Path, message: str) -> ValueError:
    return ValueError(f"{path}: {message}")


def load_claims(path: Path) -> dict[str, Claim]:
    """Read and validate a claims manifest; errors name the file and the claim."""
    with open(path, "rb") as f:
        data: dict[str, Any] = tomllib.load(f)
    claims: dict[str, Claim] = {}
    for index, raw in enumerate(data.get("claim", [])):
        cid = raw.get("id")
        if not cid or not isinstance(cid, str):
            raise _fail(path, f"claim number {index + 1} has no string 'id'")
        if cid in claims:
            raise _fail(path, f"claim id {cid!r} appears twice")
        for key in ("statement", "source", "kind"):
            if not raw.get(key):
                raise _fail(path, f"claim {cid!r} has no {key!r}")
        if raw["kind"] == "measured" and raw.get("relation") not in ("greater", "less"):
            raise _fail(path, f"measured claim {cid!r} needs relation 'greater' or 'less'")
        if raw["kind"] not in KINDS:
            raise _fail(path, f"claim {cid!r}: kind {raw['kind']!r} is not one of {KINDS}")
        source = raw["source"]
        claims[cid] = Claim(
            id=cid,
            statement=raw["statement"],
            source=tuple(source) if isinstance(source, list) else (str(source),),
            kind=raw["kind"],
            relation=raw.get("relation", ""),
            margin=float(raw.get("margin", 0.0)),
            beyond=bool(raw.get("beyond", False)),
        )
    return claims
