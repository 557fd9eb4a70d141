"""The summary of a run that ``star summary`` prints (and the Runs page shows): status, and per iteration its
stage, decisions, kept and training counts, final loss, accuracies, the three measures and the paired changes;
the warm start and the direct-answer baseline."""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..curriculum import load as curriculum_records
from ..liveness import RESUMABLE, effective_status
from ..stats import wilson
from ..store import EVAL_PHASES
from .changes import _changes
from .connect import _run_row, open_store
from .decisions import _train_counts_from
from .measures import WARM_NOTE, _measures
from .paging import counts_from


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
        per = _per_iteration(con, rid)
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
        warm = _warm_start(int(warm_n), per, by_phase["warm_eval"], changes[changes["phase"] == "warm_eval"])
    direct = _nest(by_phase["direct_eval"], [*keys, "measure"], _measure_dict) or None
    return {
        "run_dir": str(run_dir),
        "name": row["name"],
        "task": row["task"],
        "model": row["model"],
        "status": status,
        "resumable": status in RESUMABLE,
        "device": row["device"],
        "iterations_planned": row["iterations_planned"],
        "iterations": _iterations(per, meas, change, frontiers),
        "warm_start": warm,
        "direct_baseline": direct,
        "error": row["error"],
    }


@dataclass
class _PerIteration:
    """What the store says of each iteration: its ``iterations`` row, decision counts per phase, the kept
    training examples (all, rationalized), the final training loss and the stored accuracies."""

    its: dict[int, dict[str, Any]]
    dec: dict[int, dict[str, dict[str, int]]]
    kept: dict[int, tuple[int, int]]
    loss: dict[int, float]
    acc: dict[int, dict]


def _per_iteration(con: sqlite3.Connection, rid: int) -> _PerIteration:
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
    return _PerIteration(its, dec, kept, loss, acc)


def _warm_start(examples: int, per: _PerIteration, measures: pd.DataFrame, changes: pd.DataFrame) -> dict[str, Any]:
    """The summary's ``warm_start``: its examples, training, adapter, note, measures and change (the rows of
    ``measures`` and ``changes`` of phase warm_eval)."""
    keys = ["task", "split", "grp"]
    it0 = per.its.get(0, {})
    return {
        "examples": examples,
        "train_steps": it0.get("train_steps"),
        "final_loss": per.loss.get(0),
        "adapter_path": it0.get("adapter_path"),
        "note": WARM_NOTE,
        "measures": _nest(measures, [*keys, "measure"], _measure_dict),
        "change": _nest(changes, keys, _change_dict),
    }


def _iterations(per: _PerIteration, meas: dict, change: dict, frontiers: dict) -> list[dict[str, Any]]:
    """The summary's ``iterations``: one dict per iteration that has a row, decisions, kept examples or accuracies."""
    out = []
    for i in sorted(set(per.its) | set(per.dec) | set(per.kept) | set(per.acc)):
        it = per.its.get(i, {})
        kept = per.kept.get(i, (0, 0))
        out.append(
            {
                "iteration": i,
                "stage": it.get("stage"),
                "decisions": per.dec.get(i, {}),
                "kept": kept[0],
                "rationalized": int(kept[1] or 0),
                "n_train_examples": it.get("n_train_examples"),
                "train_steps": it.get("train_steps"),
                "final_loss": per.loss.get(i),
                "accuracy": per.acc.get(i, {}),
                "measures": meas.get(i, {}),
                "change": change.get(i, {}),
                "curriculum": frontiers.get(i),
            }
        )
    return out
