"""Paired, interleaved measurement of two sides and a distribution-free confidence interval.

Each pair runs both sides back to back, in alternating order, so that whatever the machine
is doing at that moment weighs on both alike; the figure is the median of the per-pair
ratios, with an order-statistic interval that assumes nothing about their distribution.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Optional


def median_ci(values: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """Confidence interval of the median from order statistics (binomial, exact).

    With fewer than 6 values no such interval exists at 95 %; the full range is returned.
    """
    data = sorted(values)
    n = len(data)
    if n == 0:
        return (math.nan, math.nan)
    alpha = 1.0 - confidence
    # Largest k with P(Binomial(n, 1/2) < k) <= alpha/2: the interval is [x_(k), x_(n-k+1)].
    cumulative = 0.0
    k = 0
    for i in range(n + 1):
        p = math.comb(n, i) / 2.0**n
        if cumulative + p > alpha / 2:
            break
        cumulative += p
        k = i + 1
    if k == 0:
        return (data[0], data[-1])
    return (data[k - 1], data[n - k])


@dataclass
class Paired:
    """The raw samples of both sides and the ratio figure they give."""

    a_label: str
    b_label: str
    a: list[float] = field(default_factory=list)
    b: list[float] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def ratios(self) -> list[float]:
        return [x / y if y > 0 else math.inf for x, y in zip(self.a, self.b)]

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios) if self.a else math.nan

    @property
    def ci(self) -> tuple[float, float]:
        return median_ci(self.ratios)

    def figure(self, unit: str = "s") -> str:
        lo, hi = self.ci
        a_med = statistics.median(self.a) if self.a else math.nan
        b_med = statistics.median(self.b) if self.b else math.nan
        return (
            f"{self.a_label} / {self.b_label} = {self.ratio:.3g}x "
            f"[95% CI {lo:.3g}-{hi:.3g}, {len(self.a)} pairs] "
            f"({_fmt(a_med, unit)} vs {_fmt(b_med, unit)})"
        )

    def as_dict(self) -> dict[str, object]:
        lo, hi = self.ci
        return {
            "a_label": self.a_label, "b_label": self.b_label,
            "a": self.a, "b": self.b, "ratio_median": self.ratio, "ci95": [lo, hi],
            "pairs": len(self.a), "elapsed_s": round(self.elapsed, 4),
        }


def _fmt(value: float, unit: str) -> str:
    if unit == "s":
        if value < 1e-3:
            return f"{value * 1e6:.3g} us"
        if value < 1:
            return f"{value * 1e3:.3g} ms"
        return f"{value:.3g} s"
    if unit == "B":
        for scale, name in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
            if abs(value) >= scale:
                return f"{value / scale:.3g} {name}"
        return f"{value:.0f} B"
    return f"{value:.3g} {unit}"


def timed(fn: Callable[[], object]) -> Callable[[], float]:
    """Turn a callable into a sample: the seconds one call takes."""

    def sample() -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    return sample


def measure_paired(
    a: Callable[[], float],
    b: Callable[[], float],
    *,
    a_label: str,
    b_label: str,
    decided: Callable[[Paired], bool],
    budget: float = 1.5,
    min_pairs: int = 8,
    max_pairs: int = 400,
    warmup: int = 1,
) -> Paired:
    """Sample pairs until ``decided(result)`` or the time budget or ``max_pairs`` runs out."""
    for _ in range(warmup):
        a()
        b()
    result = Paired(a_label, b_label)
    start = time.monotonic()
    while len(result.a) < max_pairs:
        if len(result.a) % 2 == 0:
            x = a()
            y = b()
        else:
            y = b()
            x = a()
        result.a.append(x)
        result.b.append(y)
        result.elapsed = time.monotonic() - start
        if len(result.a) >= min_pairs and decided(result):
            break
        if result.elapsed > budget and len(result.a) >= min_pairs:
            break
    return result


def decide_ratio(
    result: Paired, relation: str, threshold: float
) -> Optional[str]:
    """'holds' / 'refuted' when the interval lies wholly on one side of ``threshold``."""
    lo, hi = result.ci
    if relation == "greater":
        if lo > threshold:
            return "holds"
        if hi < threshold:
            return "refuted"
    elif relation == "less":
        if hi < threshold:
            return "holds"
        if lo > threshold:
            return "refuted"
    else:
        raise ValueError(f"unknown relation {relation!r}; use 'greater' or 'less'")
    return None
