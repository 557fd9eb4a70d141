"""The tour's right-hand side: the STaR objective evaluated on one iteration of a run, and the paired change of
its eval accuracy. Read-only queries, like :mod:`.tour` (which re-exports them); no streamlit, no
torch."""

from __future__ import annotations

import os
import sqlite3
from typing import Any

from ..stats import mcnemar, significant
from .changes import changes_frame
from .connect import _run_row, open_store, run_config
from .decisions import train_sources

_FALSE = {"false", "0", "no", "off", "none", ""}


def as_bool(v: Any) -> bool | None:
    """A config flag as a bool (configs written by hand or by a CLI may hold strings); None if unknown."""
    if v is None:
        return None
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)):
        return bool(v)
    s = str(v).strip().lower()
    if s in ("true", "1", "yes", "on"):
        return True
    if s in _FALSE:
        return False
    return None


# --------------------------------------------------------------------------
# the objective, with this run's numbers
# --------------------------------------------------------------------------
def _eval_accuracy(
    con: sqlite3.Connection, rid: int, iteration: int, task: str | None, phase: str = "eval"
) -> dict[str, Any] | None:
    """The eval accuracy of M(iteration): from the metrics, or for the warm-started model (phase warm_eval)
    from its samples. ``phase`` is returned with it."""
    if phase == "eval":
        sql = (
            "SELECT sum(n) AS n, sum(n_correct) AS c FROM metrics WHERE run_id=? AND iteration=? AND split='eval'"
            " AND grp='all'"
        )
    else:
        sql = (
            "SELECT count(*) AS n, sum(correct) AS c FROM samples WHERE run_id=? AND iteration=? AND phase='warm_eval'"
        )
    params: list[Any] = [rid, iteration]
    if task:
        sql += " AND task=?"
        params.append(task)
    r = con.execute(sql, params).fetchone()
    if r is None or not r["n"]:
        return None
    return {
        "iteration": iteration,
        "phase": phase,
        "n": int(r["n"]),
        "n_correct": int(r["c"] or 0),
        "accuracy": (r["c"] or 0) / r["n"],
    }


def objective_numbers(run_dir: str | os.PathLike, iteration: int, task: str | None = None) -> dict[str, Any]:
    """The STaR objective evaluated on one iteration of this run (optionally one task).

    Keys: iteration, task, stage, rationalize (config flag or None);
    sampled (first-attempt samples drawn with M(i-1)), questions (distinct questions sampled),
    correct (samples with 1(ŷ=y)=1), kept_first (of those, kept by the filter: weight 1),
    correct_rejected (right answer, but the filter dropped it: e.g. unfaithful steps), dropped (weight 0),
    questions_failed (no kept first attempt), retried (hinted retries), rescued (retries kept:
    rationalized), rescued_questions, K (kept samples = kept_first + rescued), train_examples (rows of
    train_examples stored for the iteration), train_by_source, trained (iterations.n_train_examples),
    train_steps, warm_examples (the warm start's reference examples in M(i)'s training set: supervised, not
    sampled), eval_prev / eval_now ({iteration, phase, n, n_correct, accuracy} or None; eval_prev of iteration 1
    is the warm-started model's, phase warm_eval, when the run has a warm start).
    """
    iteration = int(iteration)
    with open_store(run_dir) as con:
        row = _run_row(con)
        rid = row["id"]
        cfg = run_config(row)
        tsql, tp = (" AND task=?", [task]) if task else ("", [])
        s = con.execute(
            "SELECT count(*) AS n, count(DISTINCT task || char(31) || question_id) AS q,"
            " coalesce(sum(correct), 0) AS c, coalesce(sum(kept), 0) AS k,"
            " coalesce(sum(correct = 1 AND kept = 0), 0) AS cr"
            f" FROM samples WHERE run_id=? AND iteration=? AND phase='sample'{tsql}",
            [rid, iteration] + tp,
        ).fetchone()
        failed_q = con.execute(
            "SELECT count(*) FROM (SELECT task, question_id FROM samples WHERE run_id=? AND iteration=?"
            f" AND phase='sample'{tsql} GROUP BY task, question_id HAVING max(kept) = 0)",
            [rid, iteration] + tp,
        ).fetchone()[0]
        r = con.execute(
            "SELECT count(*) AS n, coalesce(sum(kept), 0) AS k,"
            " count(DISTINCT CASE WHEN kept = 1 THEN task || char(31) || question_id END) AS kq"
            f" FROM samples WHERE run_id=? AND iteration=? AND phase='rationalize'{tsql}",
            [rid, iteration] + tp,
        ).fetchone()
        te = train_sources(con, rid, iteration, task)
        it = con.execute(
            "SELECT stage, n_train_examples, train_steps FROM iterations WHERE run_id=? AND iteration=?",
            (rid, iteration),
        ).fetchone()
        warm = train_sources(con, rid, 0, task).get("reference", 0)  # the warm start's, stored for iteration 0
        ev_prev = (_eval_accuracy(con, rid, 0, task, "warm_eval") if iteration == 1 and warm else None) or (
            _eval_accuracy(con, rid, iteration - 1, task) if iteration >= 1 else None
        )
        ev_now = _eval_accuracy(con, rid, iteration, task)
    sampled, kept_first, rescued = int(s["n"]), int(s["k"]), int(r["k"])
    return {
        "iteration": iteration,
        "task": task,
        "stage": it["stage"] if it else None,
        "rationalize": as_bool(cfg.get("rationalize")),
        "sampled": sampled,
        "questions": int(s["q"]),
        "correct": int(s["c"]),
        "kept_first": kept_first,
        "correct_rejected": int(s["cr"]),
        "dropped": sampled - kept_first,
        "questions_failed": int(failed_q),
        "retried": int(r["n"]),
        "rescued": rescued,
        "rescued_questions": int(r["kq"]),
        "K": kept_first + rescued,
        "train_examples": sum(te.values()),
        "train_by_source": te,
        "trained": it["n_train_examples"] if it else None,
        "train_steps": it["train_steps"] if it else None,
        "warm_examples": int(warm) if iteration >= 1 else 0,
        "eval_prev": ev_prev,
        "eval_now": ev_now,
    }


def eval_change(run_dir: str | os.PathLike, iteration: int, task: str | None = None) -> dict[str, Any] | None:
    """The paired change of eval accuracy of M(iteration) against the evaluation before it (the iteration before,
    or the warm start's), question by question, on one task or all together: {since, since_phase, pairs, lost,
    gained, p_value (exact McNemar), significant}; None when nothing is paired."""
    df = changes_frame(run_dir)
    if df.empty:
        return None
    df = df[(df["iteration"] == int(iteration)) & (df["phase"] == "eval") & (df["split"] == "eval")]
    df = df[df["grp"] == "all"]
    if task:
        df = df[df["task"] == task]
    if df.empty:
        return None
    lost, gained = int(df["lost"].sum()), int(df["gained"].sum())
    p = mcnemar(lost, gained)
    return {
        "since": int(df["since"].iloc[0]),
        "since_phase": str(df["since_phase"].iloc[0]),
        "pairs": int(df["pairs"].sum()),
        "lost": lost,
        "gained": gained,
        "p_value": p,
        "significant": significant(p),
    }
