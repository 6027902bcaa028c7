"""A check's verdict on its claim, and how that verdict becomes a pytest outcome.

holds / refuted as expected -> pass (an expected refutation shows as xfail with its reason
and figure); either one unexpected -> fail with the evidence; inconclusive -> skipped with
the figure; unsupported -> skipped with the reason. Never a failure for the last two.
"""

from __future__ import annotations

import json
import math
from typing import Any, Callable, Optional

import pytest

from .expectations import allowed, expected_verdict
from .manifest import Claim
from .records import RECORD_KEY
from .stats import Paired, decide_ratio, measure_paired

__all__ = ["RECORD_KEY", "ClaimCheck"]


def _plain(value: Any) -> Any:
    """Evidence made JSON-safe, so it crosses xdist and lands in the report unchanged."""
    try:
        json.dumps(value, allow_nan=False)
        return value
    except (TypeError, ValueError):
        pass
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return repr(value)


class ClaimCheck:
    """What a conformance check uses to state its verdict (the ``claim`` fixture)."""

    def __init__(
        self,
        claim: Claim,
        variant: str,
        facts: dict[str, Any],
        expectations: list[Any],
        record: Callable[[dict[str, Any]], None],
    ) -> None:
        self.claim = claim
        self.variant = variant
        self.facts = facts
        self.expected, self.expected_reason = expected_verdict(expectations, claim.id, facts)
        self._record = record
        self.verdict: Optional[str] = None
        self.evidence: dict[str, Any] = {}

    # -- the four verdicts
    def holds(self, figure: str, **evidence: Any) -> None:
        self._decide("holds", figure, evidence)

    def refuted(self, figure: str, **evidence: Any) -> None:
        self._decide("refuted", figure, evidence)

    def inconclusive(self, figure: str, **evidence: Any) -> None:
        self._decide("inconclusive", figure, evidence)

    def unsupported(self, reason: str, **evidence: Any) -> None:
        self._decide("unsupported", reason, evidence)

    def decide(self, holds: bool, figure: str, **evidence: Any) -> None:
        """``holds`` if the observation agrees with the claim, else ``refuted``."""
        self._decide("holds" if holds else "refuted", figure, evidence)

    def note(self, **evidence: Any) -> None:
        """Add evidence without deciding yet."""
        self.evidence.update(evidence)

    # -- measured claims
    def compare(
        self,
        a: Callable[[], float],
        b: Callable[[], float],
        *,
        a_label: str,
        b_label: str,
        unit: str = "s",
        budget: float = 1.5,
        min_pairs: int = 8,
        max_pairs: int = 400,
        warmup: int = 1,
        decide: bool = True,
        **evidence: Any,
    ) -> Paired:
        """Sample both sides in pairs and judge the ratio a/b by the claim's relation.

        The claim's ``relation`` ("greater" or "less") and ``margin`` in claims.toml say
        what the ratio must clear: greater than 1 + margin, or less than 1 - margin.
        """
        relation = self.claim.relation or "greater"
        threshold = 1 + self.claim.margin if relation == "greater" else 1 - self.claim.margin
        result = measure_paired(
            a, b, a_label=a_label, b_label=b_label, budget=budget, min_pairs=min_pairs,
            max_pairs=max_pairs, warmup=warmup,
            decided=lambda r: decide_ratio(r, relation, threshold) is not None,
        )
        if decide:
            verdict = decide_ratio(result, relation, threshold) or "inconclusive"
            rule = f"claim needs a/b {'>' if relation == 'greater' else '<'} {threshold:g}"
            self._decide(
                verdict, f"{result.figure(unit)}; {rule}", {**evidence, "samples": result.as_dict()}
            )
        return result

    # -- how a verdict becomes an outcome
    def _decide(self, verdict: str, figure: str, evidence: dict[str, Any]) -> None:
        if self.verdict is not None:
            raise RuntimeError(
                f"claim {self.claim.id!r} was already decided ({self.verdict}); a check "
                f"states one verdict"
            )
        self.verdict = verdict
        self.evidence.update(evidence)
        as_expected = verdict in (*allowed(self.expected), "inconclusive", "unsupported")
        self._record({
            "claim": self.claim.id,
            "variant": self.variant,
            "verdict": verdict,
            "expected": self.expected,
            "expected_reason": self.expected_reason,
            "as_expected": as_expected,
            "figure": figure,
            "evidence": _plain(self.evidence),
        })
        label = f"{self.claim.id} [{self.variant}]"
        if verdict == "inconclusive":
            pytest.skip(f"{label} inconclusive: {figure}")
        if verdict == "unsupported":
            pytest.skip(f"{label} unsupported here: {figure}")
        if not as_expected:
            expected = f"expected {self.expected}"
            if self.expected_reason:
                expected += f" ({self.expected_reason})"
            pytest.fail(
                f"{label} {verdict.upper()} here, {expected}\n"
                f"  claim: {self.claim.statement}\n  figure: {figure}\n"
                f"  evidence: {json.dumps(_plain(self.evidence), default=str)[:2000]}",
                pytrace=False,
            )
        if verdict == "refuted":
            pytest.xfail(f"{label} refuted, as expected: {self.expected_reason}; {figure}")
