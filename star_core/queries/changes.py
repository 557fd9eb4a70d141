"""What changed between evaluations, question by question: the paired change of eval accuracy (lost, gained,
exact McNemar) of every evaluation against the one before, and the questions solved, newly solved and lost per
iteration. On a version 2 store both are counted from the store's per-question bit masks (``question_outcomes``,
``mask_counts``) without reading the samples; else from the samples."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..stats import mcnemar, significant
from ..store import OUTCOME_BITS, has_aggregates, sql_list
from .connect import _rid, open_store
from .measures import CHAINED_PHASES, _runs_frame, _with_all

#: The first attempts whose solved questions are followed across iterations: train questions as sampled,
#: evaluation questions.
_SOLVE_IN = sql_list(("sample", "eval"))


def solve_transitions(run_dir: str | os.PathLike, task: str | None = None) -> pd.DataFrame:
    """Exploration over iterations: per task, split and iteration, how many questions are solved
    (some sample correct), newly solved and lost against the previous iteration, and ever solved.

    The train split uses the plain ``sample`` phase (the previous model's own attempts, no hint),
    the eval split the ``eval`` phase. The first iteration of a split has nothing to compare with:
    its newly_solved/lost are NaN.
    """
    with open_store(run_dir) as con:
        rid = _rid(con)
        if has_aggregates(con):
            top = con.execute("SELECT max(iteration) FROM sample_counts WHERE n > 0").fetchone()[0]
            if top is None or top < OUTCOME_BITS:
                return _transitions_from_masks(con, rid, task)
        sql = (
            "SELECT task, phase, iteration, question_id, max(correct) AS solved FROM samples"
            f" WHERE run_id=? AND phase IN {_SOLVE_IN}"
        )
        params: list[Any] = [rid]
        if task:
            sql += " AND task=?"
            params.append(task)
        sql += " GROUP BY task, phase, iteration, question_id"
        df = pd.read_sql_query(sql, con, params=params)
    cols = ["task", "split", "iteration", "questions", "solved", "newly_solved", "lost", "ever_solved"]
    if df.empty:
        return pd.DataFrame(columns=cols)
    out = []
    for (t, ph), g in df.groupby(["task", "phase"], sort=True):
        # question x iteration: 1 solved, 0 asked but not solved, NaN not asked
        m = g.pivot(index="question_id", columns="iteration", values="solved").sort_index(axis=1)
        solved = m.eq(1)
        asked = m.notna()
        prev = solved.shift(1, axis=1, fill_value=False)
        newly = (solved & ~prev).sum()
        lost = (prev & asked & ~solved).sum()
        ever = solved.cummax(axis=1).sum()
        for j, it in enumerate(m.columns):
            out.append(
                {
                    "task": t,
                    "split": "train" if ph == "sample" else "eval",
                    "iteration": int(it),
                    "questions": int(asked[it].sum()),
                    "solved": int(solved[it].sum()),
                    "newly_solved": float(newly[it]) if j else float("nan"),
                    "lost": float(lost[it]) if j else float("nan"),
                    "ever_solved": int(ever[it]),
                }
            )
    return pd.DataFrame(out, columns=cols)


def _mask_bits(masks: np.ndarray, it: int) -> np.ndarray:
    return (masks >> it & 1).astype(bool)


def _transitions_from_masks(con: sqlite3.Connection, rid: int, task: str | None) -> pd.DataFrame:
    """``solve_transitions`` from ``question_outcomes`` (one row per question and phase, its iterations asked
    and solved as bit masks, kept by the store's triggers), counted per distinct pair of masks: the same
    numbers without reading the samples."""
    sql, params = (
        "SELECT task, phase, asked, solved, sum(q) AS q FROM mask_counts WHERE run_id=?"
        f" AND phase IN {_SOLVE_IN} AND q > 0",
        [rid],
    )
    if task:
        sql += " AND task=?"
        params.append(task)
    df = pd.read_sql_query(sql + " GROUP BY task, phase, asked, solved", con, params=params)
    cols = ["task", "split", "iteration", "questions", "solved", "newly_solved", "lost", "ever_solved"]
    out = []
    for (t, ph), g in df.groupby(["task", "phase"], sort=True):
        asked, solved, w = (g["asked"].to_numpy(np.int64), g["solved"].to_numpy(np.int64), g["q"].to_numpy(np.int64))
        present = int(np.bitwise_or.reduce(asked))
        prev = ever = np.zeros(len(g), dtype=bool)
        for j, it in enumerate(i for i in range(OUTCOME_BITS) if present >> i & 1):
            a, sv = _mask_bits(asked, it), _mask_bits(solved, it)
            ever = ever | sv
            out.append(
                {
                    "task": t,
                    "split": "train" if ph == "sample" else "eval",
                    "iteration": it,
                    "questions": int(w[a].sum()),
                    "solved": int(w[sv].sum()),
                    "newly_solved": float(w[sv & ~prev].sum()) if j else float("nan"),
                    "lost": float(w[prev & a & ~sv].sum()) if j else float("nan"),
                    "ever_solved": int(w[ever].sum()),
                }
            )
            prev = sv
    return pd.DataFrame(out, columns=cols)


_CHANGE_COLS = [
    "task",
    "split",
    "grp",
    "iteration",
    "phase",
    "since",
    "since_phase",
    "pairs",
    "lost",
    "gained",
    "p_value",
    "significant",
]
#: An evaluation's rank in the sequence of ``CHAINED_PHASES`` (SQL), and the evaluation of a rank ``r``.
_RANK = "iteration * 2 + (phase = 'warm_eval')"
_OF_RANK = "{t}.iteration = {r} / 2 AND {t}.phase = CASE {r} % 2 WHEN 1 THEN 'warm_eval' ELSE 'eval' END"


def _changes_from_masks(con: sqlite3.Connection, rid: int, since: int | None) -> pd.DataFrame | None:
    """``_changes``'s pairs, lost and gained per group from ``question_outcomes`` (the iterations each question
    was evaluated and answered right, as bit masks; the evaluation and the warm start's evaluation of a
    question side by side), counted per distinct combination of masks; None where a question has several
    samples in one evaluation (pairs are then per sample: the samples' self-join counts them)."""
    df = _outcome_masks(con, rid)
    cols = ["task", "split", "grp", "iteration", "phase", "since", "since_phase", "pairs", "lost", "gained"]
    if df is None:
        return None  # a warm-start evaluation of a question never evaluated before it: leave it to the join
    if df.empty:
        return pd.DataFrame(columns=cols)
    ones = [bin(int(a)).count("1") + bin(int(b)).count("1") for a, b in zip(df["ea"], df["wa"])]
    if (df["n"] != ones).any():
        return None
    out = []
    for t, g in df.groupby("task", sort=True):
        out += _task_changes(t, g, since)
    return pd.DataFrame(out, columns=cols)


def _outcome_masks(con: sqlite3.Connection, rid: int) -> pd.DataFrame | None:
    """Per task, group and distinct combination of masks: n (samples), the eval's asked and solved masks (ea,
    es), the warm start's evaluation's (wa, ws; 0 without one) and q (questions). None when the warm start
    evaluated a question that no evaluation before it did."""
    warm = con.execute(
        "SELECT 1 FROM mask_counts WHERE run_id = ? AND phase = 'warm_eval' AND q > 0 LIMIT 1", (rid,)
    ).fetchone()
    # without a warm start: one row per distinct combination (mask_counts); with one, each question's
    # evaluation and warm-start evaluation side by side (question_outcomes)
    df = (
        pd.read_sql_query(
            "SELECT task, grp, n, asked AS ea, solved AS es, 0 AS wa, 0 AS ws, q FROM mask_counts"
            " WHERE run_id = ? AND phase = 'eval' AND q > 0",
            con,
            params=(rid,),
        )
        if warm is None
        else pd.read_sql_query(
            "SELECT e.task, e.grp, e.n + coalesce(w.n, 0) AS n, e.asked AS ea, e.solved AS es,"
            " coalesce(w.asked, 0) AS wa, coalesce(w.solved, 0) AS ws, count(*) AS q"
            " FROM question_outcomes e LEFT JOIN question_outcomes w ON w.run_id = e.run_id AND w.task = e.task"
            " AND w.phase = 'warm_eval' AND w.question_id = e.question_id"
            " WHERE e.run_id = ? AND e.phase = 'eval' GROUP BY 1, 2, 3, 4, 5, 6, 7",
            con,
            params=(rid,),
        )
    )
    orphans = con.execute(
        "SELECT count(*) FROM question_outcomes w WHERE run_id = ? AND phase = 'warm_eval' AND NOT"
        " EXISTS (SELECT 1 FROM question_outcomes e WHERE e.run_id = w.run_id AND e.task = w.task"
        " AND e.phase = 'eval' AND e.question_id = w.question_id)",
        (rid,),
    ).fetchone()[0]
    return None if orphans else df


def _task_changes(task: str, g: pd.DataFrame, since: int | None) -> list[dict[str, Any]]:
    """The rows of ``_changes_from_masks`` for one task (``g``: its rows of ``_outcome_masks``)."""
    masks = {
        ("asked", "eval"): g["ea"].to_numpy(np.int64),
        ("solved", "eval"): g["es"].to_numpy(np.int64),
        ("asked", "warm_eval"): g["wa"].to_numpy(np.int64),
        ("solved", "warm_eval"): g["ws"].to_numpy(np.int64),
    }
    w, grp = g["q"].to_numpy(np.int64), g["grp"].to_numpy()
    ranks = sorted(
        2 * i + k
        for k, ph in enumerate(CHAINED_PHASES)
        for i in range(OUTCOME_BITS)
        if int(np.bitwise_or.reduce(masks[("asked", ph)])) >> i & 1
    )
    if since is None:
        steps = [(max(a for a in ranks if a < b), b) for b in ranks if any(a < b for a in ranks)]
    else:
        steps = [(2 * int(since), b) for b in ranks if b > 2 * int(since)]
    out = []
    for ra, rb in steps:
        pa, pb = CHAINED_PHASES[ra % 2], CHAINED_PHASES[rb % 2]
        both = _mask_bits(masks[("asked", pa)], ra // 2) & _mask_bits(masks[("asked", pb)], rb // 2)
        sa, sb = _mask_bits(masks[("solved", pa)], ra // 2), _mask_bits(masks[("solved", pb)], rb // 2)
        for gv in sorted(set(grp[both])):
            m = both & (grp == gv)
            out.append(
                {
                    "task": task,
                    "split": "eval",
                    "grp": gv,
                    "iteration": rb // 2,
                    "phase": pb,
                    "since": ra // 2,
                    "since_phase": pa,
                    "pairs": int(w[m].sum()),
                    "lost": int(w[m & sa & ~sb].sum()),
                    "gained": int(w[m & ~sa & sb].sum()),
                }
            )
    return out


def _changes(con: sqlite3.Connection, rid: int, since: int | None = None) -> pd.DataFrame:
    """Eval correctness of each evaluation paired, question by question, with the evaluation before it (the
    iteration before, or the warm start's when there is one; see ``CHAINED_PHASES``), or with the few-shot
    evaluation of iteration ``since``; per task, split and group ("all" included)."""
    df = _changes_from_masks(con, rid, since) if has_aggregates(con) else None
    if df is None:
        df = _changes_sql(con, rid, since)
    if df.empty:
        return pd.DataFrame(columns=_CHANGE_COLS)
    df = _with_all(df, ["task", "split", "iteration", "phase", "since", "since_phase"], ["pairs", "lost", "gained"])
    df["p_value"] = [mcnemar(int(lost), int(gained)) for lost, gained in zip(df["lost"], df["gained"])]
    df["significant"] = df["p_value"].map(significant)
    return (
        df[_CHANGE_COLS]
        .sort_values(["task", "split", "iteration", "phase", "since"], kind="stable")
        .reset_index(drop=True)
    )


def _changes_sql(con: sqlite3.Connection, rid: int, since: int | None = None) -> pd.DataFrame:
    """``_changes`` before its "all" group and tests, from the samples (a paired self-join)."""
    chained = sql_list(CHAINED_PHASES)
    if since is None:
        pairs = (
            "SELECT b.task, b.split, max(a.r) AS ra, b.r AS rb FROM ranks a JOIN ranks b ON a.task = b.task"
            " AND a.split = b.split AND a.r < b.r GROUP BY b.task, b.split, b.r"
        )
        params: tuple = (rid, rid)
    else:
        pairs = "SELECT task, split, ? * 2 AS ra, r AS rb FROM ranks WHERE r > ? * 2"
        params = (rid, int(since), int(since), rid)
    df = pd.read_sql_query(
        f"WITH ranks AS (SELECT DISTINCT task, split, {_RANK} AS r FROM samples"
        f" WHERE run_id = ? AND phase IN {chained}), steps AS ({pairs})"
        " SELECT a.task, a.split, a.grp, b.iteration, b.phase, a.iteration AS since, a.phase AS since_phase,"
        " count(*) AS pairs, sum(a.correct > b.correct) AS lost, sum(a.correct < b.correct) AS gained"
        # CROSS JOIN fixes the order: each step, then its questions (samples_browse), then their pairs
        # (samples_question); any other order pairs every sample with every other
        " FROM steps s CROSS JOIN samples a CROSS JOIN samples b"
        f" WHERE a.run_id = ? AND a.task = s.task AND a.split = s.split AND {_OF_RANK.format(t='a', r='s.ra')}"
        " AND b.run_id = a.run_id AND b.question_id = a.question_id AND b.task = a.task AND b.split = a.split"
        f" AND b.k = a.k AND {_OF_RANK.format(t='b', r='s.rb')}"
        " GROUP BY a.task, a.split, a.grp, b.iteration, b.phase, a.iteration, a.phase",
        con,
        params=params,
    )
    return df


def changes_frame(run_dirs: str | os.PathLike | Sequence[str | os.PathLike], since: int | None = None) -> pd.DataFrame:
    """Paired changes of eval accuracy on the same questions, for one or several runs: run, run_dir, task,
    split, grp, iteration and phase (the evaluation: eval, or warm_eval for the warm-started model at
    iteration 0), since and since_phase (the evaluation compared with: the one before, or the few-shot
    evaluation of iteration ``since``), pairs, lost (right before, wrong now), gained (wrong before, right
    now), p_value (exact McNemar, two-sided) and significant (p < 0.05)."""
    return _runs_frame(run_dirs, _CHANGE_COLS, lambda con, rid: _changes(con, rid, since))
