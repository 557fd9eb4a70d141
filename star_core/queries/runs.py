"""Run discovery and a run's status: the runs roots, the path guard, the runs list, one run's row.

No pandas here (``star run --resume`` and ``star runs`` read the status through this module).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..curriculum import load as _curriculum_records
from ..liveness import RESUMABLE, effective_status
from ..runfolder import RunFolderError, safe_path
from ..store import CONFIG_NAME, DB_NAME, SCHEMA_VERSION, STAGES
from ..tasks.base import AUDIT_VERSION
from .connect import RunUnavailable, _run_row, open_store, run_config

#: Environment variable overriding the user's runs root (``os.pathsep``-separated list allowed).
RUNS_ROOT_ENV = "STAR_RUNS_ROOT"
#: Set to "0" to hide the bundled demo runs (sample_data/runs).
DEMO_RUNS_ENV = "STAR_DEMO_RUNS"

#: How far through its iteration each stage (``store.STAGES``, in order) is, for the progress bar.
_STAGE_FRACTION = dict(zip(STAGES, (0.0, 0.35, 0.5, 0.8, 1.0), strict=True))


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


def run_status(run_dir: str | os.PathLike) -> str:
    """ "finished" | "running" | "crashed" | "stopped" | "empty" | "corrupt".

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


_AUDIT_VERSION_SQL = (
    "SELECT coalesce(CASE WHEN json_valid(audit_json) THEN json_extract(audit_json, '$.version') END, 1)"
    " FROM samples WHERE run_id=? AND audit_json IS NOT NULL ORDER BY id {} LIMIT 1"
)


def audit_version(con: sqlite3.Connection, rid: int) -> int | None:
    """The audit rules' version the run's outputs were audited under (the lower of its first and last audited
    sample's, so a run resumed under newer rules still counts as old); None when no output was audited."""
    vs = []
    for order in ("ASC", "DESC"):
        r = con.execute(_AUDIT_VERSION_SQL.format(order), (rid,)).fetchone()
        if r is not None:
            try:
                vs.append(int(r[0]))
            except (TypeError, ValueError):
                vs.append(1)
    return min(vs) if vs else None


def audit_outdated(version: int | None) -> bool:
    """Were the outputs audited under rules older than the engine's current ``AUDIT_VERSION``?"""
    return version is not None and version < AUDIT_VERSION


def run_brief(run_dir: str | os.PathLike) -> dict[str, Any]:
    """One line of the runs list (never raises for an unreadable store). ``audit_version``: see
    :func:`audit_version`; ``audit_outdated``: older than the engine's rules (:func:`audit_outdated`)."""
    run_dir = Path(run_dir)
    base: dict[str, Any] = {
        "path": str(run_dir),
        "name": run_dir.name,
        "status": "empty",
        "resumable": False,
        "task": None,
        "model": None,
        "device": None,
        "iterations_planned": None,
        "iterations_done": 0,
        "current_iteration": None,
        "current_stage": None,
        "progress": 0.0,
        "created_at": None,
        "updated_at": None,
        "error": None,
        "problem": None,
        "audit_version": None,
        "audit_outdated": False,
    }
    try:
        with open_store(run_dir) as con:
            row = _run_row(con)
            status = effective_status(row)
            stages = {
                r["iteration"]: r["stage"]
                for r in con.execute(
                    "SELECT iteration, stage FROM iterations WHERE run_id=? ORDER BY iteration", (row["id"],)
                )
            }
            av = audit_version(con, row["id"])
    except RunUnavailable as e:
        base.update(status="corrupt" if e.kind == "corrupt" else "empty", problem=str(e))
        return base
    cur = max(stages) if stages else None
    base.update(
        name=row["name"] or run_dir.name,
        status=status,
        resumable=status in RESUMABLE,
        task=row["task"],
        model=row["model"],
        device=row["device"],
        iterations_planned=row["iterations_planned"],
        iterations_done=sum(1 for s in stages.values() if s == "done"),
        current_iteration=cur,
        current_stage=stages.get(cur) if cur is not None else None,
        progress=_progress(row["iterations_planned"] or 0, stages, status),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        error=row["error"],
        audit_version=av,
        audit_outdated=audit_outdated(av),
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
    d.pop("config_json", None)
    d["config"] = run_config(row)
    d["status_stored"] = d["status"]
    d["status"] = effective_status(row)
    d["resumable"] = d["status"] in RESUMABLE
    d["schema_version"] = int(sv["value"]) if sv and str(sv["value"]).isdigit() else None
    d["schema_newer"] = bool(d["schema_version"] and d["schema_version"] > SCHEMA_VERSION)
    d["heartbeat_age_s"] = time.time() - (d["heartbeat_at"] or d["updated_at"] or time.time())
    try:
        cfg_file = safe_path(run_dir, CONFIG_NAME)  # a config.yaml that links out of the folder is not shown
        d["config_yaml"] = cfg_file.read_text(errors="replace")[:100_000] if cfg_file.is_file() else None
    except (OSError, RunFolderError):
        d["config_yaml"] = None
    return d


def missing_adapters(run_dir: str | os.PathLike) -> list[int]:
    """Trained iterations whose adapter folder is not on disk (e.g. left out of a shipped demo run)."""
    run_dir = Path(run_dir)
    with open_store(run_dir) as con:
        rows = con.execute(
            "SELECT iteration, adapter_path FROM iterations WHERE adapter_path IS NOT NULL ORDER BY iteration"
        ).fetchall()
    return [r["iteration"] for r in rows if not (run_dir / r["adapter_path"] / "adapter_config.json").is_file()]


def curriculum_frontiers(run_dir: str | os.PathLike) -> dict[int, dict[str, Any]]:
    """The digit curriculum's frontier record of each iteration (star_core.curriculum; {} for a run without the
    curriculum, or an older store)."""
    with open_store(run_dir) as con:
        return _curriculum_records(con)


def showcase(runs: list[dict[str, Any]], app_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The showcase run's row in ``runs`` (:func:`list_runs`): the first name of ``sample_data/runs/ORDER`` under
    ``app_dir`` that is listed, or None."""
    demo = (Path(app_dir) / "sample_data" / "runs").resolve()
    order = _root_order(demo)
    by_path = {r["path"]: r for r in runs}
    for name in sorted(order, key=order.__getitem__):
        row = by_path.get(str(demo / name))
        if row is not None:
            return row
    return None


def default_run_key(runs: list[dict[str, Any]], app_dir: str | os.PathLike) -> str | None:
    """The run a dashboard session opens on when neither the URL nor the user has picked one: the showcase,
    else the first listed."""
    row = showcase(runs, app_dir)
    if row is not None:
        return row["key"]
    return runs[0]["key"] if runs else None
