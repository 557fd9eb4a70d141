"""How far the current stage of a run has got: samples x of N, or training step x of K, with a time-left estimate.

No pandas. The totals come from the stored config (n_train, n_eval, samples_per_question, the tasks) and the
stored plan (``iterations.train_steps``); a total that the stored rows already pass is dropped rather than shown
wrong. The estimate is the stage's own pace so far (seconds between its first and last stored row) times what is
left; it is None until two rows give a pace.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any

from .connect import _run_row, open_store, run_config

#: What the engine does next in each stored stage of an iteration (``store.STAGES``).
_NEXT = {"pending": "sample", "sampled": "rationalize", "rationalized": "train", "trained": "eval"}
#: The stage in words, for a progress line.
STAGE_WORDS = {
    "sample": "sampling first attempts",
    "rationalize": "hinted retries (rationalization)",
    "train": "training",
    "eval": "evaluating",
}


def _pace(con: sqlite3.Connection, sql: str, params: list[Any]) -> tuple[int, float | None, float | None]:
    """(rows done, first created_at, last created_at) of a phase."""
    r = con.execute(f"SELECT count(*), min(created_at), max(created_at) FROM samples WHERE {sql}", params).fetchone()
    return int(r[0] or 0), r[1], r[2]


def _left(done: int, total: int | None, t0: float | None, t1: float | None) -> float | None:
    if total is None or done < 2 or t0 is None or t1 is None or t1 <= t0 or done >= total:
        return None
    return (t1 - t0) / (done - 1) * (total - done)


def _int(v: Any) -> int | None:
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 else None


def stage_progress(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The stage in flight: {iteration, stage (sample | rationalize | train | eval), words, done, total (None when
    unknown), unit (samples | steps), seconds_left (None when unknown)}; None before the first iteration row or
    once the last iteration is done."""
    with open_store(run_dir) as con:
        row = _run_row(con)
        rid = row["id"]
        cur = con.execute(
            "SELECT iteration, stage, train_steps FROM iterations WHERE run_id=? ORDER BY iteration DESC LIMIT 1",
            (rid,),
        ).fetchone()
        if cur is None or cur["stage"] not in _NEXT:
            return None
        cfg = run_config(row)
        i, stage = int(cur["iteration"]), _NEXT[cur["stage"]]
        if i == 0 and stage in ("sample", "rationalize", "train"):
            stage = "eval"  # iteration 0 only evaluates (a warm start trains after it; that shows as eval done)
        n_tasks = max(1, len([t for t in str(row["task"] or "").split(",") if t.strip()]))
        base = "run_id=? AND iteration=?"
        if stage == "train":
            r = con.execute(
                "SELECT count(*), max(step), sum(seconds) FROM train_losses WHERE run_id=? AND iteration=?", (rid, i)
            ).fetchone()
            done, total = int(r[1] or 0), _int(cur["train_steps"])
            per = (r[2] / r[0]) if r[0] and r[2] else None
            left = per * (total - done) if per and total and total > done else None
            unit = "steps"
        else:
            if stage == "sample":
                sql, total = base + " AND phase='sample'", None
                n, k = _int(cfg.get("n_train")), _int(cfg.get("samples_per_question")) or 1
                total = n * k * n_tasks if n else None
            elif stage == "rationalize":
                sql = base + " AND phase='rationalize'"
                total = con.execute(
                    "SELECT count(*) FROM (SELECT task, question_id FROM samples WHERE run_id=? AND iteration=?"
                    " AND phase='sample' GROUP BY task, question_id HAVING max(kept) = 0)",
                    (rid, i),
                ).fetchone()[0]
            else:
                sql = base + " AND phase='eval'"
                n = _int(cfg.get("n_eval"))
                total = n * n_tasks if n else None
            done, t0, t1 = _pace(con, sql, [rid, i])
            left = _left(done, total, t0, t1)
            unit = "samples"
    if total is not None and done > total:
        total, left = None, None
    return {
        "iteration": i,
        "stage": stage,
        "words": STAGE_WORDS[stage],
        "done": done,
        "total": total,
        "unit": unit,
        "seconds_left": left,
    }


__all__ = ["STAGE_WORDS", "stage_progress"]
