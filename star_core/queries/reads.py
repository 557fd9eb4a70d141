"""SQL reads of one run's samples and events: the sample browser (filters, position, pages), one sample,
one question's history, one rationalization, the events and exemplars tables."""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import pandas as pd

from ..store import PHASES, prompt_column
from . import paging
from .connect import _rid, fingerprint, open_store
from .text import parse_audit


def iterations_frame(run_dir: str | os.PathLike) -> pd.DataFrame:
    """iterations table: iteration, stage, started_at, finished_at, train_steps, n_train_examples, adapter_path."""
    with open_store(run_dir) as con:
        rid = _rid(con)
        return pd.read_sql_query(
            "SELECT iteration, stage, started_at, finished_at, train_steps, n_train_examples, adapter_path"
            " FROM iterations WHERE run_id=? ORDER BY iteration",
            con,
            params=(rid,),
        )


def events_frame(run_dir: str | os.PathLike, limit: int = 50) -> pd.DataFrame:
    """The latest events, newest first."""
    with open_store(run_dir) as con:
        rid = _rid(con)
        return pd.read_sql_query(
            "SELECT at, kind, message FROM events WHERE run_id=? ORDER BY id DESC LIMIT ?",
            con,
            params=(rid, int(limit)),
        )


# --------------------------------------------------------------------------
# sample browsing
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class SampleFilter:
    """Filters of the sample browser; ``None`` means "any"."""

    task: str | None = None
    phase: str | None = None
    split: str | None = None
    iteration: int | None = None
    decision: str | None = None
    correct: bool | None = None
    kept: bool | None = None
    grp: str | None = None
    question_id: str | None = None
    search: str | None = None

    def items(self) -> tuple:
        return tuple((f.name, getattr(self, f.name)) for f in fields(self))

    def where(self, rid: int) -> tuple[str, list[Any]]:
        """The filter as a WHERE clause over ``samples``, the text search as a LIKE scan (``paging.scan_where``)."""
        return paging.scan_where(self, rid)


def _plan(con: sqlite3.Connection, f: SampleFilter, run_dir: str | os.PathLike) -> paging.Plan:
    """How to read ``f`` from this store: keyset seeks and maintained counts on a version 2 store, the trigram
    index for the search; a filter narrower than its fields (a subclass's ``where``) as its WHERE clause."""
    rid = _rid(con)
    narrower = type(f).where is not SampleFilter.where
    return paging.Plan(con, f, rid, f.where(rid) if narrower else None, _state(run_dir))


def _state(run_dir: str | os.PathLike) -> tuple:
    """The store's identity and state (for the search results kept by ``paging``)."""
    return (str(Path(run_dir).resolve()), fingerprint(run_dir))


def facets(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The values the sample filters can take: tasks, iterations, phases, splits, decisions, grps per task."""
    with open_store(run_dir) as con:
        rid = _rid(con)
        src = paging.counts_from(con)
        rows = con.execute(
            f"SELECT DISTINCT iteration, task, split, phase, decision FROM {src} WHERE run_id=?", (rid,)
        ).fetchall()
        grps: dict[str, list[str]] = {}
        for r in con.execute(f"SELECT DISTINCT task, grp FROM {src} WHERE run_id=?", (rid,)):
            grps.setdefault(r["task"], []).append(r["grp"])
        last = con.execute(
            "SELECT id FROM samples NOT INDEXED WHERE run_id=? ORDER BY id DESC LIMIT 1", (rid,)
        ).fetchone()  # from the end of the table: no index scan
        total = last[0] if last else None

    def _grp_key(g: str) -> tuple:
        return (0, int(g), "") if g.isdigit() else (1, 0, g)

    return {
        "tasks": sorted({r["task"] for r in rows}),
        "iterations": sorted({r["iteration"] for r in rows}),
        "phases": [p for p in PHASES if p in {r["phase"] for r in rows}]
        + sorted({r["phase"] for r in rows} - set(PHASES)),
        "splits": sorted({r["split"] for r in rows}),
        "decisions": sorted({r["decision"] for r in rows}),
        "grps": {t: sorted(set(g), key=_grp_key) for t, g in grps.items()},
        "max_id": total,
        "combos": sorted({(r["iteration"], r["task"], r["phase"], r["decision"]) for r in rows}),
    }


def occurring(fac: dict[str, Any], field: str, **chosen: Any) -> list[Any]:
    """The values of ``field`` (iteration, task, phase or decision) that occur together with the ``chosen`` ones
    (None: any), from ``facets(...)["combos"]``: a filter offers only these."""
    names = ("iteration", "task", "phase", "decision")
    at = names.index(field)
    want = {names.index(k): v for k, v in chosen.items() if v is not None}
    return sorted({c[at] for c in fac.get("combos", []) if all(c[i] == v for i, v in want.items())})


def nearest_sample(run_dir: str | os.PathLike, sample_id: int) -> int | None:
    """The id of the run's sample nearest to ``sample_id`` (the lower one on a tie); None when it has none."""
    with open_store(run_dir) as con:
        rid = _rid(con)
        below = con.execute("SELECT max(id) FROM samples WHERE run_id=? AND id <= ?", (rid, int(sample_id))).fetchone()[
            0
        ]
        above = con.execute("SELECT min(id) FROM samples WHERE run_id=? AND id >= ?", (rid, int(sample_id))).fetchone()[
            0
        ]
    cands = [c for c in (below, above) if c is not None]
    return min(cands, key=lambda c: (abs(c - int(sample_id)), c)) if cands else None


def count_samples(run_dir: str | os.PathLike, f: SampleFilter = SampleFilter()) -> int:
    with open_store(run_dir) as con:
        return _plan(con, f, run_dir).count()


def browse(
    run_dir: str | os.PathLike,
    f: SampleFilter = SampleFilter(),
    sample_id: int | None = None,
    position: int | None = None,
    came_from: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """Locate one sample in the filtered, id-ordered list, without loading the list.

    Picks ``sample_id`` when given (it may lie outside the filter: then ``position`` is
    None), else the sample at 1-based ``position``, else the first. ``came_from=(id, position)``: the sample
    shown before (same filter, unchanged store), whose position is carried when ``sample_id`` is its Prev or
    Next neighbour. Returns {"total", "position", "sample_id", "prev_id", "next_id", "in_filter"}.
    The total and Prev/Next cost the same at any position on a version 2 store (``star_core.queries.paging``).
    """
    with open_store(run_dir) as con:
        rid = _rid(con)
        narrower = type(f).where is not SampleFilter.where
        return paging.browse(
            con,
            f,
            rid,
            sample_id,
            position,
            came_from,
            where=f.where(rid) if narrower else None,
            cache_key=_state(run_dir),
        )


_PAGE_COLS = (
    "id, iteration, task, phase, grp, question_id, k, decision, correct, kept, answer, gold,"
    " substr(question, 1, 120) AS question"
)


def samples_page(
    run_dir: str | os.PathLike,
    f: SampleFilter = SampleFilter(),
    offset: int = 0,
    limit: int = 50,
    anchor: int | None = None,
    anchor_position: int | None = None,
) -> pd.DataFrame:
    """One page of the filtered samples (compact columns, id order), for a table view: the ``limit`` rows from
    1-based position ``offset + 1``. With ``anchor`` (a sample in the filter) at ``anchor_position``, the page
    is read around the anchor (keyset: the cost does not grow with the offset); else with OFFSET."""
    with open_store(run_dir) as con:
        rid = _rid(con)
        if anchor is not None and anchor_position is not None and offset < anchor_position <= offset + limit:
            narrower = type(f).where is not SampleFilter.where
            ids = paging.page(
                con,
                f,
                rid,
                anchor=int(anchor),
                before=anchor_position - 1 - offset,
                limit=limit,
                where=f.where(rid) if narrower else None,
                cache_key=_state(run_dir),
            )
            return pd.read_sql_query(
                f"SELECT {_PAGE_COLS} FROM samples WHERE id IN ({','.join('?' * len(ids))}) ORDER BY id",
                con,
                params=ids,
            )
        plan = _plan(con, f, run_dir)
        return pd.read_sql_query(
            f"SELECT {_PAGE_COLS} FROM samples WHERE {plan.where} ORDER BY id LIMIT ? OFFSET ?",
            con,
            params=plan.params + [int(limit), max(int(offset), 0)],
        )


def _parse_audit(d: dict[str, Any]) -> dict[str, Any]:
    d["audit"] = parse_audit(d.get("audit_json"))
    return d


def get_sample(run_dir: str | os.PathLike, sample_id: int) -> dict[str, Any] | None:
    """One sample with its audit parsed and its training example (if kept)."""
    with open_store(run_dir) as con:
        rid = _rid(con)
        r = con.execute(
            f"SELECT *, {prompt_column(con)} FROM samples WHERE run_id=? AND id=?", (rid, int(sample_id))
        ).fetchone()
        if r is None:
            return None
        d = _parse_audit(dict(r))
        te = con.execute("SELECT * FROM train_examples WHERE run_id=? AND sample_id=?", (rid, d["id"])).fetchone()
        d["train_example"] = dict(te) if te else None
    return d


def question_history(run_dir: str | os.PathLike, task: str, question_id: str) -> pd.DataFrame:
    """Every sample of one question across iterations and phases."""
    with open_store(run_dir) as con:
        rid = _rid(con)
        return pd.read_sql_query(
            "SELECT id, iteration, phase, k, decision, correct, kept, answer, gold, audit_faithful"
            # by question (the planner would otherwise walk samples_browse for its order: every sample)
            " FROM samples INDEXED BY samples_question WHERE run_id=? AND question_id=? AND task=?"
            " ORDER BY iteration, id",
            con,
            params=(rid, question_id, task),
        )


# --------------------------------------------------------------------------
# rationalization
# --------------------------------------------------------------------------
def rationalization(run_dir: str | os.PathLike, sample_id: int) -> dict[str, Any] | None:
    """A rationalize-phase sample with its first attempt (same iteration/task/question, sample phase),
    and the training example stored from it. Keys: retry, first, train_example."""
    with open_store(run_dir) as con:
        rid = _rid(con)
        r = con.execute(
            f"SELECT *, {prompt_column(con)} FROM samples WHERE run_id=? AND id=?", (rid, int(sample_id))
        ).fetchone()
        if r is None:
            return None
        retry = _parse_audit(dict(r))
        first = con.execute(
            f"SELECT *, {prompt_column(con)} FROM samples WHERE run_id=? AND iteration=? AND task=? AND phase='sample'"
            " AND question_id=?"
            " ORDER BY (k = ?) DESC, k LIMIT 1",
            (rid, retry["iteration"], retry["task"], retry["question_id"], retry["k"]),
        ).fetchone()
        te = con.execute("SELECT * FROM train_examples WHERE run_id=? AND sample_id=?", (rid, retry["id"])).fetchone()
    return {
        "retry": retry,
        "first": _parse_audit(dict(first)) if first else None,
        "train_example": dict(te) if te else None,
    }
