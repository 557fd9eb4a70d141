"""Accuracy from stored eval samples (no torch).

Metrics are computed from the store, not from memory, so a resumed evaluation
counts every sample exactly once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any


def accuracy_rows(samples: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Group eval samples into metric rows: one 'all' row per task/split, plus one per group."""
    counts: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    for s in samples:
        for grp in {"all", s["grp"]}:
            c = counts[(s["task"], s["split"], grp)]
            c[0] += 1
            c[1] += int(s["correct"])
    return [
        {"task": t, "split": sp, "grp": g, "n": n, "n_correct": k, "accuracy": k / n if n else 0.0}
        for (t, sp, g), (n, k) in sorted(counts.items(), key=lambda kv: (kv[0][0], kv[0][1], _grp_key(kv[0][2])))
    ]


def _grp_key(g: str) -> tuple[int, int | str]:
    if g == "all":
        return (0, 0)
    return (1, int(g)) if g.isdigit() else (2, g)
