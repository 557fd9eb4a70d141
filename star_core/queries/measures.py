"""The three measures of every evaluation (accuracy, right and faithful, shows a rationale) with their Wilson
intervals, where each evaluation sits and what it is called, and the stored accuracies and training losses of one
or several runs. Paired changes are in :mod:`.changes`, filter decisions in :mod:`.decisions`, the summary the
CLI prints in :mod:`.run_summary`."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from ..stats import wilson
from ..store import EVAL_PHASES, has_aggregates, sql_list
from .connect import _run_row, open_store

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
        f" FROM samples WHERE run_id = ? AND phase IN {sql_list(EVAL_PHASES)}"
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
