"""The digit curriculum (``curriculum=digits``) and the training set that keeps what it learned.

Curriculum: iteration t trains only up to a frontier digit count,
``frontier = (largest digit count whose right-and-faithful rate on the evaluation of M(t-1) is at least
curriculum_rate) + 1``, clamped to ``train_digits`` (the lowest count when none reaches the rate). It draws
every training question of the frontier's digit count and a seeded share ``curriculum_keep`` of each earlier
count; counts above the frontier wait. Samples at temperature (``samples_per_question``) and rationalization
apply only at the frontier; below it each question gets one greedy sample and no hint. Evaluations always
cover every digit count. The frontier of each iteration is stored in the store's ``meta`` table under
``curriculum.<t>`` (a JSON record), so stores of schema 2 stay as they are and older ones read as before.

Training set (``accumulate_kept``): the examples kept in every iteration so far (and the warm start's
references) instead of only this iteration's, identical (prompt, completion) pairs once, at most
``max_train_per_group`` per digit count (a seeded choice), and ``train_epochs`` passes over it when that
takes more steps than ``steps_for(i)``.

Nothing here imports torch or pandas.
"""

from __future__ import annotations

import json
import math
import random
import sqlite3
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from .store.vocab import FRONTIER_PREFIX

#: The curriculum settings (``curriculum``).
CURRICULA = ("off", "digits")


def previous_eval(con: sqlite3.Connection, run_id: int, iteration: int) -> tuple[int, str]:
    """The evaluation of M(iteration - 1): the warm-started model's for iteration 1 when there is one,
    else the eval phase of the iteration before."""
    if iteration == 1:
        row = con.execute(
            "SELECT 1 FROM samples WHERE run_id=? AND iteration=0 AND phase='warm_eval' LIMIT 1", (run_id,)
        ).fetchone()
        if row:
            return 0, "warm_eval"
    return iteration - 1, "eval"


def solved_rates(con: sqlite3.Connection, run_id: int, iteration: int, phase: str) -> dict[int, tuple[int, int]]:
    """Per digit count of one evaluation: (right with a faithful rationale, evaluated)."""
    rows = con.execute(
        "SELECT grp, COUNT(*), SUM(correct = 1 AND audit_faithful = 1) FROM samples"
        " WHERE run_id=? AND iteration=? AND phase=? GROUP BY grp",
        (run_id, iteration, phase),
    ).fetchall()
    return {int(g): (int(k or 0), int(n)) for g, n, k in rows if str(g).isdigit()}


def frontier(rates: dict[int, tuple[int, int]], rate: float, digits: tuple[int, int]) -> int:
    """The largest digit count solved at ``rate`` or more, plus one, within ``digits`` (inclusive)."""
    lo, hi = digits
    solved = [d for d, (k, n) in rates.items() if n and k / n >= rate]
    return min(hi, max(lo, max(solved) + 1 if solved else lo))


def choose(problems: Sequence[Any], front: int, keep: float, seed: int) -> list[Any]:
    """The training questions of an iteration at ``front``: all of its digit count, a seeded share ``keep`` of
    each earlier count (rounded up), none above; in the order given."""
    by: dict[int, list[int]] = defaultdict(list)
    for i, p in enumerate(problems):
        by[int(p.group)].append(i)
    rng = random.Random(seed)
    take: set[int] = set(by.get(front, []))
    for d in sorted(by):
        if d < front and keep > 0:
            idx = by[d]
            take |= set(rng.sample(idx, min(len(idx), math.ceil(keep * len(idx)))))
    return [p for i, p in enumerate(problems) if i in take]


def load(con: sqlite3.Connection) -> dict[int, dict[str, Any]]:
    """Every stored frontier record by iteration ({} for a run without the curriculum, or an older store); the
    writer stores them (``RunStore.save_frontier``, in ``meta`` under ``FRONTIER_PREFIX``)."""
    out: dict[int, dict[str, Any]] = {}
    try:
        rows = con.execute("SELECT key, value FROM meta WHERE key LIKE ?", (f"{FRONTIER_PREFIX}%",)).fetchall()
    except sqlite3.Error:
        return out
    for key, value in rows:
        tail = key[len(FRONTIER_PREFIX) :]
        try:
            rec = json.loads(value)
        except ValueError:
            continue
        if tail.isdigit() and isinstance(rec, dict) and isinstance(rec.get("frontier"), int):
            out[int(tail)] = rec
    return out


def plan(con: sqlite3.Connection, run_id: int, iteration: int, cfg: Any, problems: Sequence[Any]) -> dict[str, Any]:
    """Iteration ``iteration``'s frontier record, computed from the evaluation before it (the stored one when
    there is one, so a resumed run keeps its choice): {frontier, rate, keep, measured_on, rates (per digit
    count: [right and faithful, evaluated]), questions (per digit count: how many it draws)}."""
    stored = load(con).get(iteration)
    if stored is not None:
        return stored
    it, phase = previous_eval(con, run_id, iteration)
    rates = solved_rates(con, run_id, it, phase)
    front = frontier(rates, cfg.curriculum_rate, tuple(cfg.train_digits))
    record = {"frontier": front, "keep": cfg.curriculum_keep}
    chosen = questions(record, problems, cfg.seed, iteration)
    counts: dict[str, int] = defaultdict(int)
    for p in chosen:
        counts[str(p.group)] += 1
    return {
        "frontier": front,
        "rate": cfg.curriculum_rate,
        "keep": cfg.curriculum_keep,
        "measured_on": {"iteration": it, "phase": phase},
        "rates": {str(d): list(v) for d, v in sorted(rates.items())},
        "questions": dict(sorted(counts.items(), key=lambda kv: int(kv[0]))),
    }


def questions(record: dict[str, Any], problems: Sequence[Any], seed: int, iteration: int) -> list[Any]:
    """The training questions a frontier record draws (the same on every call: ``choose`` is seeded)."""
    return choose(problems, int(record["frontier"]), float(record.get("keep", 0.0)), seed * 7919 + iteration)


def describe(rec: dict[str, Any]) -> str:
    """A frontier record (star_core.curriculum) in words."""
    on = rec.get("measured_on") or {}
    rates = ", ".join(f"{d}: {k}/{n}" for d, (k, n) in (rec.get("rates") or {}).items())
    drawn = ", ".join(f"{d}: {n}" for d, n in (rec.get("questions") or {}).items())
    return (
        f"frontier {rec['frontier']} digits (solved = right and faithful >= {rec.get('rate')} on iteration "
        f"{on.get('iteration')} {on.get('phase')}: {rates or 'none'}); questions drawn by digits: {drawn or 'none'}"
    )


# ---- the training set ------------------------------------------------------------------
def training_rows(con: sqlite3.Connection, run_id: int, iteration: int) -> list[dict[str, Any]]:
    """Every example kept up to ``iteration`` (the warm start's references at 0 included) with its digit
    count (``grp`` of its sample), oldest first."""
    return [
        dict(r)
        for r in con.execute(
            "SELECT t.*, s.grp AS grp FROM train_examples t JOIN samples s ON s.id = t.sample_id"
            " WHERE t.run_id=? AND t.iteration<=? ORDER BY t.iteration, t.id",
            (run_id, iteration),
        )
    ]


def grow(rows: Sequence[dict[str, Any]], cap: int, seed: int) -> list[dict[str, Any]]:
    """The accumulated training set: identical (prompt, completion) pairs once (the first kept), then at most
    ``cap`` per digit count (``grp``; 0 = no cap), a seeded choice; in the order given."""
    seen: set[tuple[str, str]] = set()
    unique = []
    for r in rows:
        key = (r["prompt"], r["completion"])
        if key not in seen:
            seen.add(key)
            unique.append(r)
    if cap <= 0:
        return unique
    by: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(unique):
        by[str(r.get("grp"))].append(i)
    rng = random.Random(seed)
    take: set[int] = set()
    for g in sorted(by):
        idx = by[g]
        take |= set(idx if len(idx) <= cap else rng.sample(idx, cap))
    return [r for i, r in enumerate(unique) if i in take]


def steps(base: int, n_examples: int, epochs: float, per_step: int) -> int:
    """Optimizer steps: ``base``, or ``epochs`` passes over ``n_examples`` at ``per_step`` examples a step
    when that is more."""
    if epochs <= 0 or n_examples <= 0:
        return base
    return max(base, math.ceil(epochs * n_examples / max(1, per_step)))
