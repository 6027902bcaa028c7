"""Where a claim is expected to come out other than "holds", and why.

An expectation names a claim, the verdict expected, a reason, and conditions over runtime
facts (any field of RuntimeFacts, plus ``start_method`` and ``python``). The verdict may
be a list, for a measured claim that goes one way or the other by the machine, not by
anything the runtime facts can tell (it is then written "holds or refuted"). A condition
value is matched exactly, a list matches any of its items, and a string such as ``">=2"`` or
``"<3.12"`` compares numbers or versions. The first matching expectation wins.
"""

from __future__ import annotations

import operator
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

VERDICTS = ("holds", "refuted", "inconclusive", "unsupported")
EITHER = " or "  # joins the verdicts of an expectation that allows several


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge, "<=": operator.le, "==": operator.eq, "!=": operator.ne,
    ">": operator.gt, "<": operator.lt,
}


def allowed(expected: str) -> tuple[str, ...]:
    """The verdicts an expected verdict ("refuted", "holds or refuted") allows."""
    return tuple(expected.split(EITHER))


@dataclass(frozen=True)
class Expectation:
    claim: str
    verdict: str
    reason: str
    when: tuple[tuple[str, Any], ...]

    def matches(self, facts: dict[str, Any]) -> bool:
        return all(_match(facts.get(key), wanted, key) for key, wanted in self.when)


def _as_number(text: str) -> Any:
    if "." in text and text.replace(".", "").isdigit() and text.count(".") >= 1:
        return tuple(int(p) for p in text.split("."))
    return float(text)


def _match(actual: Any, wanted: Any, key: str) -> bool:
    if isinstance(wanted, list):
        return any(_match(actual, w, key) for w in wanted)
    if isinstance(wanted, str):
        for symbol in (">=", "<=", "==", "!=", ">", "<"):
            if wanted.startswith(symbol):
                bound = _as_number(wanted[len(symbol):].strip())
                value = actual
                if isinstance(bound, tuple) and isinstance(actual, (tuple, list)):
                    value = tuple(actual)[: len(bound)]
                elif isinstance(bound, tuple):
                    value = _as_number(str(actual))
                return bool(_OPS[symbol](value, bound))
    return bool(actual == wanted)


def load_expectations(path: Path, known_claims: set[str], fact_keys: set[str]) -> list[Expectation]:
    """Read expectations; errors name the file, the entry and what is wrong."""
    if not path.exists():
        return []
    with open(path, "rb") as f:
        data = tomllib.load(f)
    found = []
    for index, raw in enumerate(data.get("expect", [])):
        where = f"{path}: expectation number {index + 1}"
        claim = raw.get("claim")
        if claim not in known_claims:
            raise ValueError(f"{where} names unknown claim {claim!r}")
        verdict = raw.get("verdict")
        verdicts = verdict if isinstance(verdict, list) else [verdict]
        if not verdicts or any(v not in VERDICTS for v in verdicts):
            raise ValueError(
                f"{where}: verdict {verdict!r} is not one of {VERDICTS} (or a list of them)"
            )
        verdict = EITHER.join(verdicts)
        if not raw.get("reason"):
            raise ValueError(f"{where} for {claim!r} gives no reason")
        when = raw.get("when", {})
        unknown = set(when) - fact_keys
        if unknown:
            raise ValueError(
                f"{where} for {claim!r}: unknown condition(s) {sorted(unknown)}; "
                f"use {sorted(fact_keys)}"
            )
        found.append(Expectation(claim, verdict, raw["reason"], tuple(sorted(when.items()))))
    return found


def expected_verdict(
    expectations: list[Expectation], claim: str, facts: dict[str, Any]
) -> tuple[str, str]:
    """The verdict expected for ``claim`` under ``facts`` and the reason ("" by default)."""
    for expectation in expectations:
        if expectation.claim == claim and expectation.matches(facts):
            return expectation.verdict, expectation.reason
    return "holds", ""
