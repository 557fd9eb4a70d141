"""The numbers of a run: the three measures of every evaluation, accuracies, losses, paired changes,
filter decisions and the funnel, and the summary the CLI prints (``star summary``)."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..curriculum import load as curriculum_records
from ..liveness import RESUMABLE, effective_status
from ..stats import mcnemar, significant, wilson
from ..store import EVAL_PHASES, OUTCOME_BITS, has_aggregates
from .connect import _rid, _run_row, open_store
from .paging import counts_from

#: The three numbers reported for every evaluation, in words. Right and faithful: the right answer with
#: the audit verdict ``faithful``. Shows a rationale: the audit verdict is not ``no_rationale`` (an output
#: without a parsed answer is not audited and counts as showing one; so does a CommonsenseQA answer naming no
#: choice in words). Both are given only where every output was audited under today's rules (version 2 and
#: later): under version 1 a bare answer was faithful and no verdict said "no rationale".
MEASURES = {"accuracy": "accuracy", "faithful_accuracy": "right and faithful", "rationale_share": "shows a rationale"}
#: The sequence of a run's evaluations: the model after iteration i (phase eval; iteration 0 is the few-shot
#: model), and at iteration 0, after it, the warm-started model (phase warm_eval). direct_eval is a reference
#: beside iteration 0, not a step of the sequence.
CHAINED_PHASES = ("eval", "warm_eval")
#: Where the evaluation after the warm start sits on the accuracy curves: between iteration 0 and 1.
WARM_POINT = 0.5
#: What the warm start is, wherever it appears.
WARM_NOTE = (
    "supervised, not bootstrapped: fine-tuned on reference rationales written by the task, not on the model's own"
)

#: The paper's GPT-J 6B numbers (percent), for reference lines. (task, split) -> {label: value}.
PAPER_REFERENCE: dict[tuple[str, str], dict[str, float]] = {
    ("commonsenseqa", "eval"): {"few-shot CoT (GPT-J)": 36.6, "direct fine-tuned (GPT-J)": 60.0, "STaR (GPT-J)": 72.5},
    ("gsm8k", "eval"): {"few-shot CoT (GPT-J)": 3.1, "direct fine-tuned (GPT-J)": 5.8, "STaR (GPT-J)": 10.7},
}


# --------------------------------------------------------------------------
# evaluations: where they sit, what they are called, the three measures
# --------------------------------------------------------------------------
def eval_point(iteration: int, phase: str) -> float:
    """The x position of an evaluation on the accuracy curves (the warm start's at ``WARM_POINT``)."""
    return WARM_POINT if phase == "warm_eval" else float(iteration)


def eval_label(iteration: int, phase: str) -> str:
    """An evaluation in words: "iteration 0 (few-shot)", "after the warm start", "iteration 2", ..."""
    if phase == "warm_eval":
        return "after the warm start (supervised)"
    if phase == "direct_eval":
        return "direct answer (few-shot, no rationale)"
    return "iteration 0 (few-shot)" if iteration == 0 else f"iteration {iteration}"


def _with_all(df: pd.DataFrame, keys: list[str], sums: list[str]) -> pd.DataFrame:
    """Add an "all" group summing the groups of each key (a task without groups has its "all" row already)."""
    groups = df[df["grp"] != "all"]
    alls = groups.groupby(keys, as_index=False)[sums].sum().assign(grp="all")
    return pd.concat([alls, df], ignore_index=True)


def _phases_sql(phases: Sequence[str]) -> str:
    """An SQL list of fixed phase names (never user input): ``('eval', 'warm_eval')``."""
    return "(" + ", ".join(f"'{p}'" for p in phases) + ")"


def _counts(con: sqlite3.Connection, rid: int) -> pd.DataFrame:
    """Per evaluation (iteration, phase), task, split and group ("all" included): n, right, right and faithful,
    and the outputs that show a rationale (from the store's ``eval_counts`` on a version 2 store)."""
    if has_aggregates(con):
        df = pd.read_sql_query(
            "SELECT iteration, phase, task, split, grp, n, n_correct AS accuracy, n_faithful AS faithful_accuracy,"
            " n_rationale AS rationale_share, n_audited AS audited FROM eval_counts WHERE run_id = ? AND n > 0"
            " ORDER BY iteration, phase, task, split, grp",
            con,
            params=(rid,),
        )
        return _with_all(df, ["iteration", "phase", "task", "split"], ["n", *MEASURES, "audited"])
    df = pd.read_sql_query(
        "SELECT iteration, phase, task, split, grp, count(*) AS n, sum(correct) AS accuracy,"
        " sum(correct = 1 AND audit_faithful = 1) AS faithful_accuracy,"
        " sum(coalesce(CASE WHEN json_valid(audit_json) THEN json_extract(audit_json, '$.verdict') END, '')"
        " != 'no_rationale') AS rationale_share,"
        " sum(coalesce(CASE WHEN json_valid(audit_json) THEN json_extract(audit_json, '$.version') END, 1) >= 2)"
        " AS audited"
        f" FROM samples WHERE run_id = ? AND phase IN {_phases_sql(EVAL_PHASES)}"
        " GROUP BY iteration, phase, task, split, grp ORDER BY iteration, phase, task, split, grp",
        con,
        params=(rid,),
    )
    return _with_all(df, ["iteration", "phase", "task", "split"], ["n", *MEASURES, "audited"])


_MEASURE_COLS = ["iteration", "phase", "point", "task", "split", "grp", "measure", "k", "n", "value", "low", "high"]


def _measures(con: sqlite3.Connection, rid: int) -> pd.DataFrame:
    c = _counts(con, rid)
    if c.empty:
        return pd.DataFrame(columns=_MEASURE_COLS)
    long = c.melt(
        id_vars=["iteration", "phase", "task", "split", "grp", "n", "audited"],
        value_vars=list(MEASURES),
        var_name="measure",
        value_name="k",
    )
    long = long[(long["measure"] == "accuracy") | (long["audited"] == long["n"])]  # see MEASURES
    ci = [wilson(int(k), int(n)) for k, n in zip(long["k"], long["n"])]
    long = long.assign(
        point=[eval_point(i, ph) for i, ph in zip(long["iteration"], long["phase"])],
        value=long["k"] / long["n"],
        low=[lo for lo, _ in ci],
        high=[hi for _, hi in ci],
    )
    return (
        long[_MEASURE_COLS]
        .sort_values(["task", "split", "measure", "grp", "point"], kind="stable")
        .reset_index(drop=True)
    )


def measures_frame(run_dirs: str | os.PathLike | Sequence[str | os.PathLike]) -> pd.DataFrame:
    """The three measures (``MEASURES``) of every evaluation of one or several runs, computed from the stored
    eval samples: run, run_dir, iteration, phase (eval | warm_eval | direct_eval), point (x position:
    ``eval_point``), task, split, grp, measure, k (questions counted), n, value (k / n), low, high (its 95 %
    Wilson interval). An evaluation with outputs audited under audit version 1 has only its accuracy."""
    return _runs_frame(run_dirs, _MEASURE_COLS, _measures)


def _nest(df: pd.DataFrame, keys: list[str], leaf) -> dict:
    """``{k1: {k2: ... leaf(row)}}`` of a frame's rows."""
    out: dict = {}
    for r in df.itertuples(index=False):
        d = out
        for key in keys[:-1]:
            d = d.setdefault(getattr(r, key), {})
        d[getattr(r, keys[-1])] = leaf(r)
    return out


def _measure_dict(r) -> dict[str, Any]:
    return {"k": int(r.k), "n": int(r.n), "value": float(r.value), "ci95": [float(r.low), float(r.high)]}


def _change_dict(r) -> dict[str, Any]:
    return {
        "since": int(r.since),
        "since_phase": r.since_phase,
        "pairs": int(r.pairs),
        "lost": int(r.lost),
        "gained": int(r.gained),
        "p_value": float(r.p_value),
        "significant": bool(r.significant),
    }


# --------------------------------------------------------------------------
# summary (the CLI prints this)
# --------------------------------------------------------------------------
def summary(run_dir: str | os.PathLike) -> dict[str, Any]:
    """A JSON-able digest of the run: status, and per iteration its stage, decision counts,
    kept/rationalized counts, training size/steps/final loss, accuracies, the three measures and changes.

    ``accuracy[task][split][grp]`` is {accuracy, n, n_correct, ci95: [low, high]} (the 95 % Wilson
    interval); ``measures[task][split][grp][measure]`` is {k, n, value, ci95} for each of ``MEASURES``
    (accuracy, right-and-faithful accuracy, share of outputs that show a rationale); ``change[task][split][grp]``
    pairs the eval answers with the evaluation before (the iteration before, or the warm start's), question
    by question: {since, since_phase, pairs, lost, gained, p_value (exact McNemar), significant (p < 0.05)}.

    ``curriculum`` of an iteration is None, or with ``curriculum=digits`` its frontier record: {frontier, rate,
    keep, measured_on: {iteration, phase}, rates: {digits: [right and faithful, evaluated]}, questions:
    {digits: drawn}} (star_core.curriculum).

    ``warm_start`` is None, or the supervised warm start: {examples, train_steps, final_loss, adapter_path,
    note, measures, change (against the few-shot model)}. ``direct_baseline`` is None, or the measures of the
    direct-answer evaluation (few-shot, no rationale) of iteration 0."""
    run_dir = Path(run_dir)
    with open_store(run_dir) as con:
        row = _run_row(con)
        rid = row["id"]
        status = effective_status(row)
        its = {
            r["iteration"]: dict(r)
            for r in con.execute(
                "SELECT iteration, stage, n_train_examples, train_steps, adapter_path FROM iterations WHERE run_id=?"
                " ORDER BY iteration",
                (rid,),
            )
        }
        dec: dict[int, dict[str, dict[str, int]]] = {}
        for r in con.execute(
            f"SELECT iteration, phase, decision, sum(n) AS n FROM {counts_from(con)} WHERE run_id=?"
            " GROUP BY iteration, phase, decision",
            (rid,),
        ):
            dec.setdefault(r["iteration"], {}).setdefault(r["phase"], {})[r["decision"]] = r["n"]
        kept = {
            r["iteration"]: (r["n"], r["nr"])
            for r in con.execute(
                f"SELECT iteration, sum(n) AS n, sum(n * (source='rationalized')) AS nr FROM {_train_counts_from(con)}"
                " WHERE run_id=? GROUP BY iteration HAVING sum(n) > 0",
                (rid,),
            )
        }
        loss = {
            r["iteration"]: r["loss"]
            for r in con.execute(
                "SELECT t.iteration, t.loss FROM train_losses t JOIN (SELECT iteration, max(step) AS s"
                " FROM train_losses WHERE run_id=? GROUP BY iteration) m ON m.iteration=t.iteration AND m.s=t.step"
                " WHERE t.run_id=?",
                (rid, rid),
            )
        }
        acc: dict[int, dict] = {}
        for r in con.execute(
            "SELECT iteration, task, split, grp, n, n_correct, accuracy FROM metrics WHERE run_id=?", (rid,)
        ):
            acc.setdefault(r["iteration"], {}).setdefault(r["task"], {}).setdefault(r["split"], {})[r["grp"]] = {
                "accuracy": r["accuracy"],
                "n": r["n"],
                "n_correct": r["n_correct"],
                "ci95": list(wilson(r["n_correct"], r["n"])),
            }
        changes = _changes(con, rid)
        measures = _measures(con, rid)
        frontiers = curriculum_records(con)
        warm_n = con.execute(
            f"SELECT coalesce(sum(n), 0) FROM {_train_counts_from(con)} WHERE run_id=?"
            " AND iteration=0 AND source='reference'",
            (rid,),
        ).fetchone()[0]
    keys = ["task", "split", "grp"]
    change = {int(i): _nest(g, keys, _change_dict) for i, g in changes[changes["phase"] == "eval"].groupby("iteration")}
    by_phase = {ph: measures[measures["phase"] == ph] for ph in EVAL_PHASES}
    meas = {int(i): _nest(g, [*keys, "measure"], _measure_dict) for i, g in by_phase["eval"].groupby("iteration")}
    warm = None
    if warm_n or not by_phase["warm_eval"].empty:
        it0 = its.get(0, {})
        warm = {
            "examples": int(warm_n),
            "train_steps": it0.get("train_steps"),
            "final_loss": loss.get(0),
            "adapter_path": it0.get("adapter_path"),
            "note": WARM_NOTE,
            "measures": _nest(by_phase["warm_eval"], [*keys, "measure"], _measure_dict),
            "change": _nest(changes[changes["phase"] == "warm_eval"], keys, _change_dict),
        }
    direct = _nest(by_phase["direct_eval"], [*keys, "measure"], _measure_dict) or None
    iterations = []
    for i in sorted(set(its) | set(dec) | set(kept) | set(acc)):
        it = its.get(i, {})
        iterations.append(
            {
                "iteration": i,
                "stage": it.get("stage"),
                "decisions": dec.get(i, {}),
                "kept": kept.get(i, (0, 0))[0],
                "rationalized": int(kept.get(i, (0, 0))[1] or 0),
                "n_train_examples": it.get("n_train_examples"),
                "train_steps": it.get("train_steps"),
                "final_loss": loss.get(i),
                "accuracy": acc.get(i, {}),
                "measures": meas.get(i, {}),
                "change": change.get(i, {}),
                "curriculum": frontiers.get(i),
            }
        )
    return {
        "run_dir": str(run_dir),
        "name": row["name"],
        "task": row["task"],
        "model": row["model"],
        "status": status,
        "resumable": status in RESUMABLE,
        "device": row["device"],
        "iterations_planned": row["iterations_planned"],
        "iterations": iterations,
        "warm_start": warm,
        "direct_baseline": direct,
        "error": row["error"],
    }


# --------------------------------------------------------------------------
# filter decisions
# --------------------------------------------------------------------------
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
    """The training examples stored for one iteration, counted by source (``TRAIN_SOURCE`` values)."""
    tsql, tp = (" AND task=?", [task]) if task else ("", [])
    return {
        r[0]: r[1]
        for r in con.execute(
            f"SELECT source, count(*) FROM train_examples WHERE run_id=? AND iteration=?{tsql} GROUP BY source",
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
        warm = con.execute(
            f"SELECT coalesce(sum(n), 0) FROM {_train_counts_from(con)} WHERE run_id=? AND iteration=0"
            " AND source='reference'",
            (rid,),
        ).fetchone()[0]
    df = it.merge(te, on="iteration", how="outer").sort_values("iteration").reset_index(drop=True)
    for c in ("correct", "rationalized", "stored"):
        df[c] = df[c].fillna(0).astype(int)
    df["reference"] = int(warm)
    return df


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
            " WHERE run_id=? AND phase IN ('sample', 'eval')"
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


def _train_counts_from(con: sqlite3.Connection) -> str:
    """Training examples per (run, iteration, task, source) as a FROM source with ``n``: the store's
    ``train_counts`` on version 2, a count of the rows on version 1."""
    if has_aggregates(con):
        return "train_counts"
    return "(SELECT run_id, iteration, task, source, 1 AS n FROM train_examples)"


def _mask_bits(masks: np.ndarray, it: int) -> np.ndarray:
    return (masks >> it & 1).astype(bool)


def _transitions_from_masks(con: sqlite3.Connection, rid: int, task: str | None) -> pd.DataFrame:
    """``solve_transitions`` from ``question_outcomes`` (one row per question and phase, its iterations asked
    and solved as bit masks, kept by the store's triggers), counted per distinct pair of masks: the same
    numbers without reading the samples."""
    sql, params = (
        "SELECT task, phase, asked, solved, sum(q) AS q FROM mask_counts WHERE run_id=?"
        " AND phase IN ('sample', 'eval') AND q > 0",
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


# --------------------------------------------------------------------------
# accuracy and losses
# --------------------------------------------------------------------------
def _runs_frame(
    run_dirs: str | os.PathLike | Sequence[str | os.PathLike],
    columns: list[str],
    read: Callable[[sqlite3.Connection, int], pd.DataFrame],
) -> pd.DataFrame:
    """``read(con, run_id)`` for one or several runs, with the run's name and folder in front."""
    dirs = [run_dirs] if isinstance(run_dirs, (str, os.PathLike)) else list(run_dirs)
    frames = []
    for d in dirs:
        with open_store(d) as con:
            row = _run_row(con)
            df = read(con, row["id"])
        df.insert(0, "run_dir", str(d))
        df.insert(0, "run", row["name"] or Path(d).name)
        frames.append(df)
    cols = ["run", "run_dir", *columns]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)


def _table(table: str, columns: list[str], order: str) -> Callable[[sqlite3.Connection, int], pd.DataFrame]:
    return lambda con, rid: pd.read_sql_query(
        f"SELECT {', '.join(columns)} FROM {table} WHERE run_id=? ORDER BY {order}", con, params=(rid,)
    )


_METRIC_COLS = ["iteration", "task", "split", "grp", "n", "n_correct", "accuracy"]


def metrics_frame(run_dirs: str | os.PathLike | Sequence[str | os.PathLike]) -> pd.DataFrame:
    """metrics of one or several runs: run, run_dir, iteration, task, split, grp, n, n_correct, accuracy,
    and low, high: the 95 % Wilson interval of the accuracy."""
    df = _runs_frame(run_dirs, _METRIC_COLS, _table("metrics", _METRIC_COLS, "task, split, grp, iteration"))
    ci = [wilson(int(k), int(n)) for k, n in zip(df["n_correct"], df["n"])]
    return df.assign(low=[lo for lo, _ in ci], high=[hi for _, hi in ci])


def losses_frame(run_dirs: str | os.PathLike | Sequence[str | os.PathLike]) -> pd.DataFrame:
    """train_losses of one or several runs: run, run_dir, iteration, step, loss, lr."""
    cols = ["iteration", "step", "loss", "lr"]
    return _runs_frame(run_dirs, cols, _table("train_losses", cols, "iteration, step"))


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
    cols = ["task", "split", "grp", "iteration", "phase", "since", "since_phase", "pairs", "lost", "gained"]
    if orphans:
        return None  # a warm-start evaluation of a question never evaluated before it: leave it to the join
    if df.empty:
        return pd.DataFrame(columns=cols)
    ones = [bin(int(a)).count("1") + bin(int(b)).count("1") for a, b in zip(df["ea"], df["wa"])]
    if (df["n"] != ones).any():
        return None
    out = []
    for t, g in df.groupby("task", sort=True):
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
        for ra, rb in steps:
            pa, pb = CHAINED_PHASES[ra % 2], CHAINED_PHASES[rb % 2]
            both = _mask_bits(masks[("asked", pa)], ra // 2) & _mask_bits(masks[("asked", pb)], rb // 2)
            sa, sb = _mask_bits(masks[("solved", pa)], ra // 2), _mask_bits(masks[("solved", pb)], rb // 2)
            for gv in sorted(set(grp[both])):
                m = both & (grp == gv)
                out.append(
                    {
                        "task": t,
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
    return pd.DataFrame(out, columns=cols)


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
    chained = _phases_sql(CHAINED_PHASES)
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
