"""The uncertainty of an accuracy and of a change between two iterations (no torch, no scipy).

* :func:`wilson`: the 95 % Wilson score interval of k right out of n.
* :func:`mcnemar`: the paired exact McNemar p-value of a change on the same questions: a
  two-sided exact binomial test on the discordant pairs (``lost``: right before, wrong after;
  ``gained``: wrong before, right after), each discordant pair a fair coin under no change.
"""

from __future__ import annotations

import math

#: z of a two-sided 95 % interval.
Z95 = 1.959963984540054
#: A change whose p-value is below this is called significant.
ALPHA = 0.05


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval (low, high) of the proportion k/n; (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    d = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / d
    half = z / d * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, mid - half), min(1.0, mid + half)


def mcnemar(lost: int, gained: int) -> float:
    """Two-sided exact McNemar p-value: 2 · P(X ≤ min(lost, gained)) for X ~ Binomial(lost + gained, 1/2),
    capped at 1 (1 when there is no discordant pair)."""
    n = lost + gained
    term = tail = 1  # C(n, 0); each next binomial coefficient from the one before (exact integers, and
    for i in range(min(lost, gained)):  # thousands of pairs take milliseconds, not math.comb's seconds)
        term = term * (n - i) // (i + 1)
        tail += term
    return min(1.0, 2 * tail / 2**n)


def significant(p: float) -> bool:
    return p < ALPHA


def describe(k: int, n: int) -> str:
    """An accuracy with its n and 95 % Wilson interval in words: ``26.7 % [14.2–44.4] (8/30)``."""
    lo, hi = wilson(k, n)
    pct = f"{100 * k / n:.1f} %" if n else "–"
    return f"{pct} [{100 * lo:.1f}–{100 * hi:.1f}] ({k}/{n})"


def describe_change(lost: int, gained: int) -> str:
    """A paired change in words: ``+9 −6 questions, p = 0.61 (not significant)``."""
    p = mcnemar(lost, gained)
    return (
        f"+{gained} −{lost} questions, p = {p:.2g} "
        f"({'significant' if significant(p) else 'not significant'} at {ALPHA})"
    )


__all__ = ["ALPHA", "Z95", "describe", "describe_change", "mcnemar", "significant", "wilson"]
