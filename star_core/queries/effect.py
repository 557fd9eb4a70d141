"""Did the STaR iterations change each group (digit count)? One paired test per group, in words.

The model STaR starts from is the warm-started one when the run has a warm start (phase ``warm_eval``),
else the few-shot model (iteration 0's ``eval``); the model it ends with is the last evaluated iteration.
Each evaluation question is paired with itself in the two evaluations, for two measures: right, and right
with a faithful rationale (every audited step holds). The change is an exact McNemar test on the questions
that changed. No pandas, no torch: a page, the tour and ``star summary`` read it alike.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import asdict, dataclass
from typing import Any

from ..stats import mcnemar, significant
from .connect import open_store

#: The two measures paired: SQL on one sample row (its table alias given), and their words.
_MEASURES = {
    "accuracy": ("({t}.correct = 1)", "right"),
    "faithful_accuracy": ("({t}.correct = 1 AND {t}.audit_faithful = 1)", "right and faithful"),
}


@dataclass(frozen=True)
class GroupEffect:
    """One group's change from the model STaR starts from to the last iteration, on one measure."""

    task: str
    grp: str
    measure: str
    start: str
    """The evaluation STaR starts from: "warm start" or "few-shot"."""
    end_iteration: int
    pairs: int
    before: int
    after: int
    gained: int
    lost: int
    p_value: float
    significant: bool

    def sentence(self) -> str:
        """The change in one sentence, its test included."""
        words = _MEASURES[self.measure][1]
        what = f"{self.task} {self.grp}-digit" if self.grp.isdigit() else f"{self.task} {self.grp}"
        move = (
            f"{self.before} → {self.after} of {self.pairs} {words} (+{self.gained} −{self.lost}, "
            f"exact McNemar p = {self.p_value:.2g})"
        )
        span = f"from the {self.start} model to iteration {self.end_iteration}"
        # a run with a warm start trains every iteration on its references too: say so, not all of it is bootstrapped
        also = "; the iterations also trained on the warm start's references" if self.start == "warm-started" else ""
        if not self.significant:
            return f"{what}: the STaR iterations did not change it significantly {span}: {move}{also}."
        way = "raised" if self.gained > self.lost else "lowered"
        return f"{what}: the STaR iterations {way} it significantly {span}: {move}{also}."


def _pairs(con: sqlite3.Connection, rid: int, start: tuple[int, str], end: int, cond: str) -> list[tuple]:
    """Per task and group: pairs, right before, right after, gained, lost (``cond`` a ``_MEASURES`` SQL)."""
    x, y = cond.format(t="a"), cond.format(t="b")
    return con.execute(
        f"SELECT a.task, a.grp, count(*), sum({x}), sum({y}), sum(NOT {x} AND {y}), sum({x} AND NOT {y})"
        " FROM samples a JOIN samples b ON b.run_id = a.run_id AND b.task = a.task AND b.question_id = a.question_id"
        " AND b.k = a.k AND b.iteration = ? AND b.phase = 'eval'"
        " WHERE a.run_id = ? AND a.iteration = ? AND a.phase = ? GROUP BY a.task, a.grp ORDER BY a.task, a.grp",
        (end, rid, start[0], start[1]),
    ).fetchall()


def _effects(con: sqlite3.Connection, rid: int) -> list[GroupEffect]:
    warm = con.execute(
        "SELECT 1 FROM samples WHERE run_id = ? AND iteration = 0 AND phase = 'warm_eval' LIMIT 1", (rid,)
    ).fetchone()
    start = (0, "warm_eval") if warm else (0, "eval")
    last = con.execute(
        "SELECT max(iteration) FROM samples WHERE run_id = ? AND phase = 'eval' AND iteration > 0", (rid,)
    ).fetchone()[0]
    if last is None:
        return []
    out = []
    for measure, (cond, _) in _MEASURES.items():
        for task, grp, n, before, after, gained, lost in _pairs(con, rid, start, int(last), cond):
            gained, lost = int(gained or 0), int(lost or 0)
            p = mcnemar(lost, gained)
            out.append(
                GroupEffect(
                    task=task,
                    grp=str(grp),
                    measure=measure,
                    start="warm-started" if warm else "few-shot",
                    end_iteration=int(last),
                    pairs=int(n),
                    before=int(before or 0),
                    after=int(after or 0),
                    gained=gained,
                    lost=lost,
                    p_value=p,
                    significant=significant(p),
                )
            )
    return out


def star_effect(run_dir: str | os.PathLike) -> list[GroupEffect]:
    """Per task, group and measure (right; right and faithful): the paired change from the model STaR starts
    from (the warm-started one, else the few-shot one) to the last evaluated iteration; [] before iteration 1
    is evaluated."""
    with open_store(run_dir) as con:
        rid = con.execute("SELECT id FROM runs ORDER BY id LIMIT 1").fetchone()
        return _effects(con, rid[0]) if rid else []


def star_effect_dicts(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """``star_effect`` as plain dicts, each with its ``sentence`` (for JSON)."""
    return [asdict(e) | {"sentence": e.sentence()} for e in star_effect(run_dir)]
