"""Read-only queries over a run store, for the CLI and the dashboard.

Every function opens the run's ``store.sqlite`` read-only (``store.connect(..,
readonly=True)``), runs a few SQL statements and returns plain dicts or pandas
DataFrames. Nothing here imports streamlit or torch, and nothing here writes.

Errors a reader can meet (no store, a half-written store without a run row, a
file that is not SQLite) are raised as :class:`RunUnavailable` with a sentence
that can be shown as is.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import pandas as pd

from .stats import mcnemar, significant, wilson
from .store import (CONFIG_NAME, DB_NAME, DECISIONS, EVAL_PHASES, PHASE_SPLIT, PHASES, SCHEMA_VERSION, STAGES,
                    StoreError, connect)
from .tasks.base import AUDIT_VERSION, VERDICTS

#: A run whose heartbeat is older than this (seconds) is taken for crashed.
HEARTBEAT_STALE_S = 600.0
#: Environment variable overriding the user's runs root (``os.pathsep``-separated list allowed).
RUNS_ROOT_ENV = "STAR_RUNS_ROOT"
#: Set to "0" to hide the bundled demo runs (sample_data/runs).
DEMO_RUNS_ENV = "STAR_DEMO_RUNS"

_STAGE_FRACTION = {"pending": 0.0, "sampled": 0.35, "rationalized": 0.5, "trained": 0.8, "done": 1.0}
RESUMABLE = ("crashed", "stopped")

#: The three numbers reported for every evaluation, in words. Right and faithful: the right answer with
#: the audit verdict ``faithful``. Shows a rationale: the audit verdict is not ``no_rationale`` (an output
#: without a parsed answer is not audited and counts as showing one; so does a CommonsenseQA answer naming no
#: choice in words). Both are given only where every output was audited under today's rules (version 2 and
#: later): under version 1 a bare answer was faithful and no verdict said "no rationale".
MEASURES = {"accuracy": "accuracy", "faithful_accuracy": "right and faithful",
            "rationale_share": "shows a rationale"}
#: The sequence of a run's evaluations: the model after iteration i (phase eval; iteration 0 is the few-shot
#: model), and at iteration 0, after it, the warm-started model (phase warm_eval). direct_eval is a reference
#: beside iteration 0, not a step of the sequence.
CHAINED_PHASES = ("eval", "warm_eval")
#: Where the evaluation after the warm start sits on the accuracy curves: between iteration 0 and 1.
WARM_POINT = 0.5
#: What the warm start is, wherever it appears.
WARM_NOTE = ("supervised, not bootstrapped: fine-tuned on reference rationales written by the task, "
             "not on the model's own")

#: The paper's GPT-J 6B numbers (percent), for reference lines. (task, split) -> {label: value}.
PAPER_REFERENCE: dict[tuple[str, str], dict[str, float]] = {
    ("commonsenseqa", "eval"): {"few-shot CoT (GPT-J)": 36.6, "direct fine-tuned (GPT-J)": 60.0,
                                "STaR (GPT-J)": 72.5},
    ("gsm8k", "eval"): {"few-shot CoT (GPT-J)": 3.1, "direct fine-tuned (GPT-J)": 5.8, "STaR (GPT-J)": 10.7},
}


class RunUnavailable(StoreError):
    """The run folder cannot be read: ``kind`` is missing | empty | corrupt | not_found."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


# --------------------------------------------------------------------------
# roots and the path guard
# --------------------------------------------------------------------------
def runs_roots(app_dir: str | os.PathLike | None = None) -> list[Path]:
    """The folders that hold runs: ``$STAR_RUNS_ROOT`` (or ``./runs``), then ``<app_dir>/sample_data/runs``
    (the bundled demo runs, unless ``$STAR_DEMO_RUNS`` is "0")."""
    env = os.environ.get(RUNS_ROOT_ENV, "").strip()
    roots = [Path(p) for p in env.split(os.pathsep) if p.strip()] if env else [Path("runs")]
    if app_dir is not None and os.environ.get(DEMO_RUNS_ENV, "1") != "0":
        roots.append(Path(app_dir) / "sample_data" / "runs")
    out: list[Path] = []
    for r in roots:
        rr = r.expanduser().resolve()
        if rr not in out:
            out.append(rr)
    return out


def is_run_dir(p: Path) -> bool:
    try:
        return (p / DB_NAME).is_file()
    except OSError:
        return False


def _inside(real: Path, root: Path) -> bool:
    """``real`` is the root itself or one of its direct children (both resolved)."""
    return real == root or real.parent == root


def resolve_run(name_or_path: str | os.PathLike, roots: Sequence[str | os.PathLike]) -> Path:
    """Return the resolved run folder named by ``name_or_path``, only if it lies inside one of ``roots``.

    A name is looked up in each root in turn; an absolute path is accepted only when,
    once resolved (symlinks followed), it is a root or a direct child of one. ``..``
    components are refused outright. Raises :class:`RunUnavailable` (kind ``not_found``).
    """
    s = str(name_or_path).strip()
    bad = RunUnavailable("not_found", f"{s!r} is not a run folder inside the configured runs roots.")
    if not s or "\x00" in s or len(s) > 4096:
        raise bad
    p = Path(s)
    if any(part == ".." for part in p.parts):
        raise bad
    real_roots = []
    for r in roots:
        try:
            real_roots.append(Path(r).resolve())
        except (OSError, RuntimeError):
            continue
    cands = [p] if p.is_absolute() else [root / p for root in real_roots]
    for cand in cands:
        try:
            real = cand.resolve(strict=True)
        except (OSError, RuntimeError):
            continue
        if any(_inside(real, root) for root in real_roots) and is_run_dir(real):
            return real
    raise bad


ORDER_FILE = "ORDER"


def _root_order(root: Path) -> dict[str, int]:
    """Optional ``ORDER`` file in a runs root: run folder names, first shown first (the demo uses it)."""
    try:
        names = (root / ORDER_FILE).read_text(encoding="utf-8").split()
    except OSError:
        return {}
    return {n: i for i, n in enumerate(names)}


def list_runs(roots: Sequence[str | os.PathLike]) -> list[dict[str, Any]]:
    """Every run folder under ``roots`` (the root itself when it is a run, and its direct children).

    Each row: key (what ``resolve_run`` accepts; the folder name when unambiguous),
    path, root, name, status, resumable, task, model, device, iterations_planned,
    iterations_done, current_iteration, current_stage, progress (0..1), created_at,
    updated_at, error. Unreadable stores are listed with status ``corrupt``/``empty``.
    Within a root, runs named in its ``ORDER`` file come first, in that order; then newest first.
    """
    seen: set[Path] = set()
    names: set[str] = set()
    rows: list[dict[str, Any]] = []
    for root in roots:
        try:
            rroot = Path(root).resolve()
        except (OSError, RuntimeError):
            continue
        if not rroot.is_dir():
            continue
        cands: list[Path] = [rroot] if is_run_dir(rroot) else []
        try:
            children = sorted(c for c in rroot.iterdir() if c.is_dir())
        except OSError:
            children = []
        for c in children:
            try:
                real = c.resolve()
            except (OSError, RuntimeError):
                continue
            if _inside(real, rroot) and is_run_dir(real):
                cands.append(real)
        group = []
        for run in cands:
            if run in seen:
                continue
            seen.add(run)
            if run == rroot or run.name in names:
                key = str(run)
            else:
                key = run.name
                names.add(run.name)
            info = run_brief(run)
            info.update(key=key, root=str(rroot))
            group.append(info)
        order = _root_order(rroot)
        group.sort(key=lambda r: (order.get(Path(r["path"]).name, len(order)), -(r.get("created_at") or 0)))
        rows.extend(group)
    return rows


# --------------------------------------------------------------------------
# connections
# --------------------------------------------------------------------------
def db_path(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / DB_NAME


def fingerprint(run_dir: str | os.PathLike) -> tuple:
    """Cheap change detector (file stats of the db and its WAL), for cache keys."""
    out: list[Any] = []
    for suffix in ("", "-wal"):
        try:
            st_ = os.stat(str(db_path(run_dir)) + suffix)
            out += [st_.st_mtime_ns, st_.st_size]
        except OSError:
            out += [0, 0]
    return tuple(out)


@contextmanager
def open_store(run_dir: str | os.PathLike) -> Iterator[sqlite3.Connection]:
    """A read-only connection; raises RunUnavailable for a missing or unreadable store."""
    p = db_path(run_dir)
    if not p.is_file():
        raise RunUnavailable("missing", f"No run store in {Path(run_dir).name or run_dir}: store.sqlite is missing.")
    try:
        con = connect(p, readonly=True)
        con.execute("PRAGMA query_only=1")
        con.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.OperationalError as e:
        # A read-only folder with a cleanly closed WAL database: open it as immutable.
        if os.access(p.parent, os.W_OK):
            raise RunUnavailable("corrupt", f"The run store cannot be opened ({e}).") from e
        try:
            con = sqlite3.connect(f"file:{p}?mode=ro&immutable=1", uri=True, check_same_thread=False)
            con.row_factory = sqlite3.Row
            con.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.DatabaseError as e2:
            raise RunUnavailable("corrupt", f"The run store cannot be opened ({e2}).") from e2
    except sqlite3.DatabaseError as e:
        raise RunUnavailable("corrupt", f"The run store is not a readable SQLite database ({e}).") from e
    try:
        yield con
    except sqlite3.DatabaseError as e:
        if isinstance(e, sqlite3.OperationalError) and "no such" in str(e):
            raise RunUnavailable("empty", f"The run store is incomplete ({e}); the run may still be starting.") from e
        raise RunUnavailable("corrupt", f"The run store cannot be read ({e}).") from e
    finally:
        con.close()


def _run_row(con: sqlite3.Connection) -> sqlite3.Row:
    try:
        row = con.execute("SELECT * FROM runs ORDER BY id LIMIT 1").fetchone()
    except sqlite3.OperationalError as e:
        raise RunUnavailable("empty", "The run store has no tables yet; the run may still be starting.") from e
    if row is None:
        raise RunUnavailable("empty", "The run store holds no run yet (it may be starting, or it was never begun).")
    return row


def _rid(con: sqlite3.Connection) -> int:
    return int(_run_row(con)["id"])


# --------------------------------------------------------------------------
# status
# --------------------------------------------------------------------------
def pid_alive(pid: int | None) -> bool:
    """Whether ``pid`` is a live (not zombie) process on this host."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return False
    except (OSError, IndexError):
        pass
    return True


def effective_status(row: sqlite3.Row | dict, now: float | None = None) -> str:
    """The stored status, except that a "running" run whose process is gone is "crashed"."""
    status = row["status"]
    if status != "running":
        return status
    now = time.time() if now is None else now
    host = row["host"]
    if (host is None or host == os.uname().nodename) and not pid_alive(row["pid"]):
        return "crashed"
    hb = row["heartbeat_at"] or row["updated_at"]
    if hb is not None and now - hb > HEARTBEAT_STALE_S:
        return "crashed"
    return "running"


def run_status(run_dir: str | os.PathLike) -> str:
    """"finished" | "running" | "crashed" | "stopped" | "empty" | "corrupt".

    "empty": no store, or a store without a run row yet. A "running" row whose pid
    is dead on this host, or whose heartbeat is older than 10 minutes, is "crashed".
    """
    try:
        with open_store(run_dir) as con:
            return effective_status(_run_row(con))
    except RunUnavailable as e:
        return "corrupt" if e.kind == "corrupt" else "empty"


def _progress(planned: int, stages: dict[int, str], status: str) -> float:
    if status == "finished":
        return 1.0
    total = max(planned + 1, len(stages), 1)
    done = sum(_STAGE_FRACTION.get(s, 0.0) for s in stages.values())
    return max(0.0, min(1.0, done / total))


def run_brief(run_dir: str | os.PathLike) -> dict[str, Any]:
    """One line of the runs list (never raises for an unreadable store)."""
    run_dir = Path(run_dir)
    base: dict[str, Any] = {
        "path": str(run_dir), "name": run_dir.name, "status": "empty", "resumable": False, "task": None,
        "model": None, "device": None, "iterations_planned": None, "iterations_done": 0,
        "current_iteration": None, "current_stage": None, "progress": 0.0, "created_at": None,
        "updated_at": None, "error": None, "problem": None,
    }
    try:
        with open_store(run_dir) as con:
            row = _run_row(con)
            status = effective_status(row)
            stages = {r["iteration"]: r["stage"] for r in con.execute(
                "SELECT iteration, stage FROM iterations WHERE run_id=? ORDER BY iteration", (row["id"],))}
    except RunUnavailable as e:
        base.update(status="corrupt" if e.kind == "corrupt" else "empty", problem=str(e))
        return base
    cur = max(stages) if stages else None
    base.update(
        name=row["name"] or run_dir.name, status=status, resumable=status in RESUMABLE, task=row["task"],
        model=row["model"], device=row["device"], iterations_planned=row["iterations_planned"],
        iterations_done=sum(1 for s in stages.values() if s == "done"), current_iteration=cur,
        current_stage=stages.get(cur) if cur is not None else None,
        progress=_progress(row["iterations_planned"] or 0, stages, status),
        created_at=row["created_at"], updated_at=row["updated_at"], error=row["error"],
    )
    return base


def run_info(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The run row (config parsed), effective status, schema version, host and heartbeat age."""
    with open_store(run_dir) as con:
        row = _run_row(con)
        try:
            sv = con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        except sqlite3.OperationalError:
            sv = None
    d = dict(row)
    try:
        d["config"] = json.loads(d.pop("config_json") or "{}")
    except (TypeError, ValueError):
        d["config"] = {}
    d["status_stored"] = d["status"]
    d["status"] = effective_status(row)
    d["resumable"] = d["status"] in RESUMABLE
    d["schema_version"] = int(sv["value"]) if sv and str(sv["value"]).isdigit() else None
    d["schema_newer"] = bool(d["schema_version"] and d["schema_version"] > SCHEMA_VERSION)
    d["heartbeat_age_s"] = time.time() - (d["heartbeat_at"] or d["updated_at"] or time.time())
    cfg_file = Path(run_dir) / CONFIG_NAME
    try:
        d["config_yaml"] = cfg_file.read_text(errors="replace")[:100_000] if cfg_file.is_file() else None
    except OSError:
        d["config_yaml"] = None
    return d


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


_PHASES_SQL = lambda phases: "(" + ", ".join(f"'{p}'" for p in phases) + ")"  # noqa: E731  (fixed names only)


def _counts(con: sqlite3.Connection, rid: int) -> pd.DataFrame:
    """Per evaluation (iteration, phase), task, split and group ("all" included): n, right, right and faithful,
    and the outputs that show a rationale."""
    df = pd.read_sql_query(
        "SELECT iteration, phase, task, split, grp, count(*) AS n, sum(correct) AS accuracy,"
        " sum(correct = 1 AND audit_faithful = 1) AS faithful_accuracy,"
        " sum(coalesce(CASE WHEN json_valid(audit_json) THEN json_extract(audit_json, '$.verdict') END, '')"
        " != 'no_rationale') AS rationale_share,"
        " sum(coalesce(CASE WHEN json_valid(audit_json) THEN json_extract(audit_json, '$.version') END, 1) >= 2)"
        " AS audited"
        f" FROM samples WHERE run_id = ? AND phase IN {_PHASES_SQL(EVAL_PHASES)}"
        " GROUP BY iteration, phase, task, split, grp", con, params=(rid,))
    return _with_all(df, ["iteration", "phase", "task", "split"], ["n", *MEASURES, "audited"])


_MEASURE_COLS = ["iteration", "phase", "point", "task", "split", "grp", "measure", "k", "n", "value", "low", "high"]


def _measures(con: sqlite3.Connection, rid: int) -> pd.DataFrame:
    c = _counts(con, rid)
    if c.empty:
        return pd.DataFrame(columns=_MEASURE_COLS)
    long = c.melt(id_vars=["iteration", "phase", "task", "split", "grp", "n", "audited"], value_vars=list(MEASURES),
                  var_name="measure", value_name="k")
    long = long[(long["measure"] == "accuracy") | (long["audited"] == long["n"])]  # see MEASURES
    ci = [wilson(int(k), int(n)) for k, n in zip(long["k"], long["n"])]
    long = long.assign(point=[eval_point(i, ph) for i, ph in zip(long["iteration"], long["phase"])],
                       value=long["k"] / long["n"], low=[lo for lo, _ in ci], high=[hi for _, hi in ci])
    return long[_MEASURE_COLS].sort_values(["task", "split", "measure", "grp", "point"], kind="stable")\
        .reset_index(drop=True)


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
    return {"since": int(r.since), "since_phase": r.since_phase, "pairs": int(r.pairs), "lost": int(r.lost),
            "gained": int(r.gained), "p_value": float(r.p_value), "significant": bool(r.significant)}


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

    ``warm_start`` is None, or the supervised warm start: {examples, train_steps, final_loss, adapter_path,
    note, measures, change (against the few-shot model)}. ``direct_baseline`` is None, or the measures of the
    direct-answer evaluation (few-shot, no rationale) of iteration 0."""
    run_dir = Path(run_dir)
    with open_store(run_dir) as con:
        row = _run_row(con)
        rid = row["id"]
        status = effective_status(row)
        its = {r["iteration"]: dict(r) for r in con.execute(
            "SELECT iteration, stage, n_train_examples, train_steps, adapter_path FROM iterations WHERE run_id=?"
            " ORDER BY iteration", (rid,))}
        dec: dict[int, dict[str, dict[str, int]]] = {}
        for r in con.execute(
            "SELECT iteration, phase, decision, count(*) AS n FROM samples WHERE run_id=?"
            " GROUP BY iteration, phase, decision", (rid,)):
            dec.setdefault(r["iteration"], {}).setdefault(r["phase"], {})[r["decision"]] = r["n"]
        kept = {r["iteration"]: (r["n"], r["nr"]) for r in con.execute(
            "SELECT iteration, count(*) AS n, sum(source='rationalized') AS nr FROM train_examples"
            " WHERE run_id=? GROUP BY iteration", (rid,))}
        loss = {r["iteration"]: r["loss"] for r in con.execute(
            "SELECT t.iteration, t.loss FROM train_losses t JOIN (SELECT iteration, max(step) AS s"
            " FROM train_losses WHERE run_id=? GROUP BY iteration) m ON m.iteration=t.iteration AND m.s=t.step"
            " WHERE t.run_id=?", (rid, rid))}
        acc: dict[int, dict] = {}
        for r in con.execute("SELECT iteration, task, split, grp, n, n_correct, accuracy FROM metrics"
                             " WHERE run_id=?", (rid,)):
            acc.setdefault(r["iteration"], {}).setdefault(r["task"], {}).setdefault(r["split"], {})[r["grp"]] = {
                "accuracy": r["accuracy"], "n": r["n"], "n_correct": r["n_correct"],
                "ci95": list(wilson(r["n_correct"], r["n"]))}
        changes = _changes(con, rid)
        measures = _measures(con, rid)
        warm_n = con.execute("SELECT count(*) FROM train_examples WHERE run_id=? AND iteration=0"
                             " AND source='reference'", (rid,)).fetchone()[0]
    keys = ["task", "split", "grp"]
    change = {int(i): _nest(g, keys, _change_dict)
              for i, g in changes[changes["phase"] == "eval"].groupby("iteration")}
    by_phase = {ph: measures[measures["phase"] == ph] for ph in EVAL_PHASES}
    meas = {int(i): _nest(g, [*keys, "measure"], _measure_dict) for i, g in by_phase["eval"].groupby("iteration")}
    warm = None
    if warm_n or not by_phase["warm_eval"].empty:
        it0 = its.get(0, {})
        warm = {"examples": int(warm_n), "train_steps": it0.get("train_steps"), "final_loss": loss.get(0),
                "adapter_path": it0.get("adapter_path"), "note": WARM_NOTE,
                "measures": _nest(by_phase["warm_eval"], [*keys, "measure"], _measure_dict),
                "change": _nest(changes[changes["phase"] == "warm_eval"], keys, _change_dict)}
    direct = _nest(by_phase["direct_eval"], [*keys, "measure"], _measure_dict) or None
    iterations = []
    for i in sorted(set(its) | set(dec) | set(kept) | set(acc)):
        it = its.get(i, {})
        iterations.append({
            "iteration": i, "stage": it.get("stage"), "decisions": dec.get(i, {}),
            "kept": kept.get(i, (0, 0))[0], "rationalized": int(kept.get(i, (0, 0))[1] or 0),
            "n_train_examples": it.get("n_train_examples"), "train_steps": it.get("train_steps"),
            "final_loss": loss.get(i), "accuracy": acc.get(i, {}), "measures": meas.get(i, {}),
            "change": change.get(i, {}),
        })
    return {
        "run_dir": str(run_dir), "name": row["name"], "task": row["task"], "model": row["model"],
        "status": status, "resumable": status in RESUMABLE, "device": row["device"],
        "iterations_planned": row["iterations_planned"], "iterations": iterations, "warm_start": warm,
        "direct_baseline": direct, "error": row["error"],
    }


def missing_adapters(run_dir: str | os.PathLike) -> list[int]:
    """Trained iterations whose adapter folder is not on disk (e.g. left out of a shipped demo run)."""
    run_dir = Path(run_dir)
    with open_store(run_dir) as con:
        rows = con.execute("SELECT iteration, adapter_path FROM iterations WHERE adapter_path IS NOT NULL"
                           " ORDER BY iteration").fetchall()
    return [r["iteration"] for r in rows
            if not (run_dir / r["adapter_path"] / "adapter_config.json").is_file()]


def iterations_frame(run_dir: str | os.PathLike) -> pd.DataFrame:
    """iterations table: iteration, stage, started_at, finished_at, train_steps, n_train_examples, adapter_path."""
    with open_store(run_dir) as con:
        rid = _rid(con)
        return pd.read_sql_query(
            "SELECT iteration, stage, started_at, finished_at, train_steps, n_train_examples, adapter_path"
            " FROM iterations WHERE run_id=? ORDER BY iteration", con, params=(rid,))


def events_frame(run_dir: str | os.PathLike, limit: int = 50) -> pd.DataFrame:
    """The latest events, newest first."""
    with open_store(run_dir) as con:
        rid = _rid(con)
        return pd.read_sql_query("SELECT at, kind, message FROM events WHERE run_id=? ORDER BY id DESC LIMIT ?",
                                 con, params=(rid, int(limit)))


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

    @classmethod
    def from_items(cls, items: Iterable[tuple[str, Any]]) -> "SampleFilter":
        return cls(**dict(items))

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def where(self, rid: int) -> tuple[str, list[Any]]:
        # Column order follows the samples_browse index (run_id, iteration, task, split, phase, decision).
        sql, params = ["run_id = ?"], [rid]
        for col in ("iteration", "task", "split", "phase", "decision", "grp", "question_id"):
            v = getattr(self, col)
            if v is not None:
                sql.append(f"{col} = ?")
                params.append(int(v) if col == "iteration" else str(v))
        if self.correct is not None:
            sql.append("correct = ?")
            params.append(int(bool(self.correct)))
        if self.kept is not None:
            sql.append("kept = ?")
            params.append(int(bool(self.kept)))
        if self.search:
            pat = "%" + self.search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            sql.append("(question LIKE ? ESCAPE '\\' OR rationale LIKE ? ESCAPE '\\'"
                       " OR raw_output LIKE ? ESCAPE '\\' OR question_id LIKE ? ESCAPE '\\')")
            params += [pat] * 4
        return " AND ".join(sql), params


def facets(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The values the sample filters can take: tasks, iterations, phases, splits, decisions, grps per task."""
    with open_store(run_dir) as con:
        rid = _rid(con)
        rows = con.execute(
            "SELECT DISTINCT iteration, task, split, phase, decision FROM samples WHERE run_id=?",
            (rid,)).fetchall()
        grps: dict[str, list[str]] = {}
        for r in con.execute("SELECT DISTINCT task, grp FROM samples WHERE run_id=?", (rid,)):
            grps.setdefault(r["task"], []).append(r["grp"])
        total = con.execute("SELECT max(id) FROM samples WHERE run_id=?", (rid,)).fetchone()[0]

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
    }


def count_samples(run_dir: str | os.PathLike, f: SampleFilter = SampleFilter()) -> int:
    with open_store(run_dir) as con:
        w, p = f.where(_rid(con))
        return int(con.execute(f"SELECT count(*) FROM samples WHERE {w}", p).fetchone()[0])


def browse(run_dir: str | os.PathLike, f: SampleFilter = SampleFilter(), sample_id: int | None = None,
           position: int | None = None) -> dict[str, Any]:
    """Locate one sample in the filtered, id-ordered list, without loading the list.

    Picks ``sample_id`` when given (it may lie outside the filter: then ``position`` is
    None), else the sample at 1-based ``position``, else the first. Returns
    {"total", "position", "sample_id", "prev_id", "next_id", "first_id", "last_id", "in_filter"}.
    """
    with open_store(run_dir) as con:
        w, p = f.where(_rid(con))
        total = int(con.execute(f"SELECT count(*) FROM samples WHERE {w}", p).fetchone()[0])
        sid = None
        if sample_id is not None:
            ok = con.execute("SELECT 1 FROM samples WHERE id=?", (int(sample_id),)).fetchone()
            sid = int(sample_id) if ok else None
        if sid is None and total:
            pos = min(max(int(position or 1), 1), total)
            r = con.execute(f"SELECT id FROM samples WHERE {w} ORDER BY id LIMIT 1 OFFSET ?",
                            p + [pos - 1]).fetchone()
            sid = r[0] if r else None
        out: dict[str, Any] = {"total": total, "sample_id": sid, "position": None, "prev_id": None,
                               "next_id": None, "in_filter": False}
        if sid is None:
            return out
        r = con.execute(f"SELECT 1 FROM samples WHERE {w} AND id = ?", p + [sid]).fetchone()
        out["in_filter"] = r is not None
        if out["in_filter"]:
            out["position"] = int(con.execute(f"SELECT count(*) FROM samples WHERE {w} AND id <= ?",
                                              p + [sid]).fetchone()[0])
        r = con.execute(f"SELECT max(id) FROM samples WHERE {w} AND id < ?", p + [sid]).fetchone()
        out["prev_id"] = r[0]
        r = con.execute(f"SELECT min(id) FROM samples WHERE {w} AND id > ?", p + [sid]).fetchone()
        out["next_id"] = r[0]
        return out


_PAGE_COLS = ("id, iteration, task, phase, grp, question_id, k, decision, correct, kept, answer, gold,"
              " substr(question, 1, 120) AS question")


def samples_page(run_dir: str | os.PathLike, f: SampleFilter = SampleFilter(), offset: int = 0,
                 limit: int = 50) -> pd.DataFrame:
    """One page of the filtered samples (compact columns, id order), for a table view."""
    with open_store(run_dir) as con:
        w, p = f.where(_rid(con))
        return pd.read_sql_query(
            f"SELECT {_PAGE_COLS} FROM samples WHERE {w} ORDER BY id LIMIT ? OFFSET ?", con,
            params=p + [int(limit), max(int(offset), 0)])


def parse_audit(raw: str | None) -> dict[str, Any] | None:
    """A stored ``audit_json`` as {checked, errors: [str], faithful, verdict, no_rationale, version}, or
    None when none was stored. ``verdict`` is a key of ``VERDICTS`` or None (nothing checkable);
    ``version`` is the audit rules' version (1 for records made before the ``no_rationale`` verdict,
    whose verdict follows from ``faithful``). An unreadable record says so in ``errors``."""
    if not raw:
        return None
    try:
        a = json.loads(raw)
    except (TypeError, ValueError):
        a = None
    if not isinstance(a, dict):
        return {"checked": None, "errors": [f"unreadable audit record: {str(raw)[:200]}"], "faithful": None,
                "verdict": None, "no_rationale": None, "version": None}
    errs = a.get("errors")
    errs = [str(e) for e in errs] if isinstance(errs, list) else ([] if errs is None else [str(errs)])
    faithful = None if a.get("faithful") is None else bool(a["faithful"])
    verdict = a.get("verdict") if a.get("verdict") in VERDICTS else (
        None if faithful is None else "faithful" if faithful else "unfaithful")
    no_rationale = a.get("no_rationale")
    return {"checked": a.get("checked"), "errors": errs, "faithful": faithful, "verdict": verdict,
            "no_rationale": None if no_rationale is None else str(no_rationale), "version": a.get("version", 1)}


def _parse_audit(d: dict[str, Any]) -> dict[str, Any]:
    d["audit"] = parse_audit(d.get("audit_json"))
    return d


def get_sample(run_dir: str | os.PathLike, sample_id: int) -> dict[str, Any] | None:
    """One sample with its audit parsed and its training example (if kept)."""
    with open_store(run_dir) as con:
        rid = _rid(con)
        r = con.execute("SELECT * FROM samples WHERE run_id=? AND id=?", (rid, int(sample_id))).fetchone()
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
            " FROM samples WHERE run_id=? AND question_id=? AND task=? ORDER BY iteration, id",
            con, params=(rid, question_id, task))


# --------------------------------------------------------------------------
# rationalization
# --------------------------------------------------------------------------
def rationalization(run_dir: str | os.PathLike, sample_id: int) -> dict[str, Any] | None:
    """A rationalize-phase sample with its first attempt (same iteration/task/question, sample phase),
    and the training example stored from it. Keys: retry, first, train_example."""
    with open_store(run_dir) as con:
        rid = _rid(con)
        r = con.execute("SELECT * FROM samples WHERE run_id=? AND id=?", (rid, int(sample_id))).fetchone()
        if r is None:
            return None
        retry = _parse_audit(dict(r))
        first = con.execute(
            "SELECT * FROM samples WHERE run_id=? AND iteration=? AND task=? AND phase='sample' AND question_id=?"
            " ORDER BY (k = ?) DESC, k LIMIT 1",
            (rid, retry["iteration"], retry["task"], retry["question_id"], retry["k"])).fetchone()
        te = con.execute("SELECT * FROM train_examples WHERE run_id=? AND sample_id=?", (rid, retry["id"])).fetchone()
    return {"retry": retry, "first": _parse_audit(dict(first)) if first else None,
            "train_example": dict(te) if te else None}


def find_all(text: str | None, needle: str | None) -> list[tuple[int, int]]:
    """Non-overlapping spans of ``needle`` in ``text``."""
    if not text or not needle:
        return []
    spans, i = [], text.find(needle)
    while i >= 0:
        spans.append((i, i + len(needle)))
        i = text.find(needle, i + len(needle))
    return spans


def hint_spans(prompt: str | None, hint: str | None) -> list[tuple[int, int]]:
    """Where the hint sits in the hinted prompt: its occurrences after the last exemplar
    (the final question block), else its last occurrence anywhere. Tries the stripped hint too."""
    if not prompt or not hint:
        return []
    for needle in dict.fromkeys([hint, hint.strip()]):
        if not needle:
            continue
        spans = find_all(prompt, needle)
        if spans:
            tail = prompt.rstrip().rfind("\n\n")
            last = [s for s in spans if s[0] > tail] if tail >= 0 else spans
            return last or spans[-1:]
    if "(CORRECT)" in hint:  # older CommonsenseQA hints named the choice in words: mark the hinted line
        tail = prompt.rstrip().rfind("\n\n")
        at = prompt.rfind("(CORRECT)")
        if at > tail:
            start = prompt.rfind("\n", 0, at) + 1
            return [(start, at + len("(CORRECT)"))]
    return []


_HINT_WORD = re.compile(r"\bhint(?:ed|s)?\b|\(CORRECT\)", re.IGNORECASE)


def hint_leak(sample: dict[str, Any]) -> dict[str, Any]:
    """Whether the hint shows up in the hinted output.

    Returns {"flagged": decision == hint_leak, "spans": spans in the raw output of the hint
    text or of the word "hint" / the "(CORRECT)" marker, "checkable": bool}. A hint that is
    only a number (arithmetic, GSM8K) is not searched for as text: the gold answer is expected
    in a correct output. The search is case-sensitive, so "The answer is 12." does not match
    the hint "the answer is 12".
    """
    hint = (sample.get("hint") or "").strip()
    out = sample.get("raw_output") or ""
    checkable = len(hint) >= 3 and not hint.replace(" ", "").replace(",", "").replace(".", "").isdigit()
    spans = find_all(out, hint) if checkable else []
    spans += [m.span() for m in _HINT_WORD.finditer(out)
              if not any(a <= m.start() < b for a, b in spans)]
    return {"flagged": sample.get("decision") == "hint_leak", "spans": sorted(spans), "checkable": checkable}


# --------------------------------------------------------------------------
# filter decisions
# --------------------------------------------------------------------------
def decision_counts(run_dir: str | os.PathLike, task: str | None = None) -> pd.DataFrame:
    """Counts per iteration, task, phase, decision (columns iteration, task, phase, decision, n)."""
    with open_store(run_dir) as con:
        rid = _rid(con)
        sql = "SELECT iteration, task, phase, decision, count(*) AS n FROM samples WHERE run_id=?"
        params: list[Any] = [rid]
        if task:
            sql += " AND task=?"
            params.append(task)
        sql += " GROUP BY iteration, task, phase, decision ORDER BY iteration, task, phase, decision"
        return pd.read_sql_query(sql, con, params=params)


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
        for r in con.execute(f"SELECT phase, decision, count(*) AS n FROM samples WHERE run_id=? AND iteration=?"
                             f"{tsql} GROUP BY phase, decision", [rid, iteration] + tp):
            counts.setdefault(r["phase"], {})[r["decision"]] = r["n"]
        kept_by_phase = {r["phase"]: r["n"] for r in con.execute(
            f"SELECT phase, count(*) AS n FROM samples WHERE run_id=? AND iteration=? AND kept=1{tsql}"
            " GROUP BY phase", [rid, iteration] + tp)}
        tsql_r = tsql.replace("task", "r.task")
        retry_from: dict[tuple[str, str], int] = {}
        for r in con.execute(
            "SELECT coalesce(s.decision, 'unknown') AS first, r.decision AS retry, count(*) AS n FROM samples r"
            " LEFT JOIN samples s ON s.run_id=r.run_id AND s.iteration=r.iteration AND s.task=r.task"
            " AND s.phase='sample' AND s.question_id=r.question_id AND s.k=r.k"
            f" WHERE r.run_id=? AND r.iteration=? AND r.phase='rationalize'{tsql_r} GROUP BY 1, 2",
                [rid, iteration] + tp):
            retry_from[(r["first"], r["retry"])] = r["n"]
        te = {r["source"]: r["n"] for r in con.execute(
            f"SELECT source, count(*) AS n FROM train_examples WHERE run_id=? AND iteration=?{tsql} GROUP BY source",
            [rid, iteration] + tp)}
        it = con.execute("SELECT n_train_examples, train_steps, stage FROM iterations WHERE run_id=? AND iteration=?",
                         (rid, iteration)).fetchone()
    sd, rd = counts.get("sample", {}), counts.get("rationalize", {})
    sampled, retried = sum(sd.values()), sum(rd.values())
    correct, rationalized = kept_by_phase.get("sample", 0), kept_by_phase.get("rationalize", 0)
    return {
        "iteration": iteration, "task": task, "sampled": sampled, "correct": correct, "failed": sampled - correct,
        "sample_decisions": sd, "retried": retried, "rationalized": rationalized,
        "retry_rejected": retried - rationalized, "retry_decisions": rd, "retry_from": retry_from,
        "kept": correct + rationalized, "train_examples": te, "train_examples_total": sum(te.values()),
        "trained": it["n_train_examples"] if it else None, "train_steps": it["train_steps"] if it else None,
        "stage": it["stage"] if it else None, "eval": counts.get("eval", {}),
    }


def top_reasons(run_dir: str | os.PathLike, iteration: int | None = None, task: str | None = None,
                limit: int = 20, rejected_only: bool = True) -> pd.DataFrame:
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
            "SELECT iteration, sum(source='correct') AS correct, sum(source='rationalized') AS rationalized,"
            " count(*) AS stored FROM train_examples WHERE run_id=? GROUP BY iteration", con, params=(rid,))
        it = pd.read_sql_query("SELECT iteration, stage, n_train_examples AS trained, train_steps FROM iterations"
                               " WHERE run_id=?", con, params=(rid,))
        warm = con.execute("SELECT count(*) FROM train_examples WHERE run_id=? AND iteration=0 AND source='reference'",
                           (rid,)).fetchone()[0]
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
        sql = ("SELECT task, phase, iteration, question_id, max(correct) AS solved FROM samples"
               " WHERE run_id=? AND phase IN ('sample', 'eval')")
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
            out.append({"task": t, "split": "train" if ph == "sample" else "eval", "iteration": int(it),
                        "questions": int(asked[it].sum()), "solved": int(solved[it].sum()),
                        "newly_solved": float(newly[it]) if j else float("nan"),
                        "lost": float(lost[it]) if j else float("nan"), "ever_solved": int(ever[it])})
    return pd.DataFrame(out, columns=cols)


# --------------------------------------------------------------------------
# accuracy and losses
# --------------------------------------------------------------------------
def _runs_frame(run_dirs: str | os.PathLike | Sequence[str | os.PathLike], columns: list[str],
                read: Callable[[sqlite3.Connection, int], pd.DataFrame]) -> pd.DataFrame:
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
        f"SELECT {', '.join(columns)} FROM {table} WHERE run_id=? ORDER BY {order}", con, params=(rid,))


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


_CHANGE_COLS = ["task", "split", "grp", "iteration", "phase", "since", "since_phase", "pairs", "lost", "gained",
                "p_value", "significant"]
#: An evaluation's rank in the sequence of ``CHAINED_PHASES`` (SQL), and the evaluation of a rank ``r``.
_RANK = "iteration * 2 + (phase = 'warm_eval')"
_OF_RANK = "{t}.iteration = {r} / 2 AND {t}.phase = CASE {r} % 2 WHEN 1 THEN 'warm_eval' ELSE 'eval' END"


def _changes(con: sqlite3.Connection, rid: int, since: int | None = None) -> pd.DataFrame:
    """Eval correctness of each evaluation paired, question by question, with the evaluation before it (the
    iteration before, or the warm start's when there is one; see ``CHAINED_PHASES``), or with the few-shot
    evaluation of iteration ``since``; per task, split and group ("all" included)."""
    chained = _PHASES_SQL(CHAINED_PHASES)
    if since is None:
        pairs = ("SELECT b.task, b.split, max(a.r) AS ra, b.r AS rb FROM ranks a JOIN ranks b ON a.task = b.task"
                 " AND a.split = b.split AND a.r < b.r GROUP BY b.task, b.split, b.r")
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
        con, params=params)
    if df.empty:
        return pd.DataFrame(columns=_CHANGE_COLS)
    df = _with_all(df, ["task", "split", "iteration", "phase", "since", "since_phase"], ["pairs", "lost", "gained"])
    df["p_value"] = [mcnemar(int(lost), int(gained)) for lost, gained in zip(df["lost"], df["gained"])]
    df["significant"] = df["p_value"].map(significant)
    return df[_CHANGE_COLS].sort_values(["task", "split", "iteration", "phase", "since"], kind="stable")\
        .reset_index(drop=True)


def changes_frame(run_dirs: str | os.PathLike | Sequence[str | os.PathLike], since: int | None = None) -> pd.DataFrame:
    """Paired changes of eval accuracy on the same questions, for one or several runs: run, run_dir, task,
    split, grp, iteration and phase (the evaluation: eval, or warm_eval for the warm-started model at
    iteration 0), since and since_phase (the evaluation compared with: the one before, or the few-shot
    evaluation of iteration ``since``), pairs, lost (right before, wrong now), gained (wrong before, right
    now), p_value (exact McNemar, two-sided) and significant (p < 0.05)."""
    return _runs_frame(run_dirs, _CHANGE_COLS, lambda con, rid: _changes(con, rid, since))


def exemplars_frame(run_dir: str | os.PathLike) -> pd.DataFrame:
    with open_store(run_dir) as con:
        rid = _rid(con)
        return pd.read_sql_query("SELECT task, position, question_id, question, rationale, answer, source"
                                 " FROM exemplars WHERE run_id=? ORDER BY task, position", con, params=(rid,))


__all__ = [
    "AUDIT_VERSION", "CHAINED_PHASES", "DECISIONS", "EVAL_PHASES", "HEARTBEAT_STALE_S", "MEASURES",
    "PAPER_REFERENCE", "PHASES", "PHASE_SPLIT", "STAGES", "VERDICTS", "WARM_NOTE", "WARM_POINT", "RunUnavailable",
    "SampleFilter", "browse", "changes_frame", "count_samples", "eval_label", "eval_point", "measures_frame",
    "decision_counts", "effective_status", "events_frame", "exemplars_frame", "facets", "find_all",
    "fingerprint", "funnel", "get_sample", "hint_leak", "hint_spans", "is_run_dir", "iterations_frame",
    "list_runs", "losses_frame", "metrics_frame", "open_store", "parse_audit", "pid_alive", "question_history",
    "rationalization", "resolve_run", "run_brief", "run_info", "run_status", "runs_roots", "samples_page",
    "solve_transitions", "summary", "top_reasons", "train_counts",
]
