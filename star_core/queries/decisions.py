"""A run's filter decisions: the decision counts, one iteration's funnel (sampled, kept, retried, rescued,
trained), the most frequent rejection reasons, and the training examples stored per iteration and source."""

from __future__ import annotations

import os
import sqlite3
from typing import Any

import pandas as pd

from ..store import has_aggregates
from .connect import _rid, open_store
from .paging import counts_from


def decision_counts(run_dir: str | os.PathLike, task: str | None = None) -> pd.DataFrame:
    """Counts per iteration, task, phase, decision (columns iteration, task, phase, decision, n)."""
    with open_store(run_dir) as con:
        rid = _rid(con)
        sql = f"SELECT iteration, task, phase, decision, sum(n) AS n FROM {counts_from(con)} WHERE run_id=?"
        params: list[Any] = [rid]
        if task:
            sql += " AND task=?"
            params.append(task)
        sql += " GROUP BY iteration, task, phase, decision ORDER BY iteration, task, phase, decision"
        return pd.read_sql_query(sql, con, params=params)


def train_sources(con: sqlite3.Connection, rid: int, iteration: int, task: str | None = None) -> dict[str, int]:
    """The training examples stored for one iteration, counted by source (``TRAIN_SOURCE`` values), from the
    store's per-source counts (:func:`_train_counts_from`)."""
    tsql, tp = (" AND task=?", [task]) if task else ("", [])
    return {
        r[0]: int(r[1])
        for r in con.execute(
            f"SELECT source, sum(n) FROM {_train_counts_from(con)} WHERE run_id=? AND iteration=?{tsql}"
            " GROUP BY source HAVING sum(n) > 0",
            [rid, iteration] + tp,
        )
    }


def funnel(run_dir: str | os.PathLike, iteration: int, task: str | None = None) -> dict[str, Any]:
    """The numbers of one iteration's filter.

    sampled (train-split samples with the previous model), correct (kept as is), failed,
    sample_decisions {decision: n}, retried (hinted retries), rationalized (kept),
    retry_decisions {decision: n}, retry_from {(first decision, retry decision): n},
    kept (= correct + rationalized), train_examples (stored, by source), trained
    (iterations.n_train_examples), eval {decision: n}.
    """
    with open_store(run_dir) as con:
        rid = _rid(con)
        tsql, tp = (" AND task=?", [task]) if task else ("", [])
        counts: dict[str, dict[str, int]] = {}
        src = counts_from(con)
        for r in con.execute(
            f"SELECT phase, decision, sum(n) AS n FROM {src} WHERE run_id=? AND iteration=?"
            f"{tsql} GROUP BY phase, decision",
            [rid, iteration] + tp,
        ):
            counts.setdefault(r["phase"], {})[r["decision"]] = r["n"]
        kept_by_phase = {
            r["phase"]: r["n"]
            for r in con.execute(
                f"SELECT phase, sum(n) AS n FROM {src} WHERE run_id=? AND iteration=? AND kept=1{tsql} GROUP BY phase",
                [rid, iteration] + tp,
            )
        }
        tsql_r = tsql.replace("task", "r.task")
        retry_from: dict[tuple[str, str], int] = {}
        for r in con.execute(
            "SELECT coalesce(s.decision, 'unknown') AS first, r.decision AS retry, count(*) AS n FROM samples r"
            " LEFT JOIN samples s ON s.run_id=r.run_id AND s.iteration=r.iteration AND s.task=r.task"
            " AND s.phase='sample' AND s.question_id=r.question_id AND s.k=r.k"
            f" WHERE r.run_id=? AND r.iteration=? AND r.phase='rationalize'{tsql_r} GROUP BY 1, 2",
            [rid, iteration] + tp,
        ):
            retry_from[(r["first"], r["retry"])] = r["n"]
        te = train_sources(con, rid, iteration, task)
        it = con.execute(
            "SELECT n_train_examples, train_steps, stage FROM iterations WHERE run_id=? AND iteration=?",
            (rid, iteration),
        ).fetchone()
    sd, rd = counts.get("sample", {}), counts.get("rationalize", {})
    sampled, retried = sum(sd.values()), sum(rd.values())
    correct, rationalized = kept_by_phase.get("sample", 0), kept_by_phase.get("rationalize", 0)
    return {
        "iteration": iteration,
        "task": task,
        "sampled": sampled,
        "correct": correct,
        "failed": sampled - correct,
        "sample_decisions": sd,
        "retried": retried,
        "rationalized": rationalized,
        "retry_rejected": retried - rationalized,
        "retry_decisions": rd,
        "retry_from": retry_from,
        "kept": correct + rationalized,
        "train_examples": te,
        "train_examples_total": sum(te.values()),
        "trained": it["n_train_examples"] if it else None,
        "train_steps": it["train_steps"] if it else None,
        "stage": it["stage"] if it else None,
        "eval": counts.get("eval", {}),
    }


def top_reasons(
    run_dir: str | os.PathLike,
    iteration: int | None = None,
    task: str | None = None,
    limit: int = 20,
    rejected_only: bool = True,
) -> pd.DataFrame:
    """The most frequent (phase, decision, reason) triples."""
    with open_store(run_dir) as con:
        rid = _rid(con)
        sql, params = "SELECT phase, decision, reason, count(*) AS n FROM samples WHERE run_id=?", [rid]
        if iteration is not None:
            sql += " AND iteration=?"
            params.append(int(iteration))
        if task:
            sql += " AND task=?"
            params.append(task)
        if rejected_only:
            sql += " AND kept=0 AND phase != 'eval'"
        sql += " GROUP BY phase, decision, reason ORDER BY n DESC LIMIT ?"
        params.append(int(limit))
        return pd.read_sql_query(sql, con, params=params)


def train_counts(run_dir: str | os.PathLike) -> pd.DataFrame:
    """Per iteration: training examples stored by source (correct, rationalized; stored: all of them), reference:
    the warm start's reference examples in its training set (they are stored for iteration 0 and join every
    iteration), the trained count and steps."""
    with open_store(run_dir) as con:
        rid = _rid(con)
        te = pd.read_sql_query(
            "SELECT iteration, sum(n * (source='correct')) AS correct,"
            f" sum(n * (source='rationalized')) AS rationalized, sum(n) AS stored FROM {_train_counts_from(con)}"
            " WHERE run_id=? GROUP BY iteration HAVING sum(n) > 0",
            con,
            params=(rid,),
        )
        it = pd.read_sql_query(
            "SELECT iteration, stage, n_train_examples AS trained, train_steps FROM iterations WHERE run_id=?",
            con,
            params=(rid,),
        )
        warm = train_sources(con, rid, 0).get("reference", 0)
    df = it.merge(te, on="iteration", how="outer").sort_values("iteration").reset_index(drop=True)
    for c in ("correct", "rationalized", "stored"):
        df[c] = df[c].fillna(0).astype(int)
    df["reference"] = int(warm)
    return df


def _train_counts_from(con: sqlite3.Connection) -> str:
    """Training examples per (run, iteration, task, source) as a FROM source with ``n``: the store's
    ``train_counts`` on version 2, a count of the rows on version 1."""
    if has_aggregates(con):
        return "train_counts"
    return "(SELECT run_id, iteration, task, source, 1 AS n FROM train_examples)"
