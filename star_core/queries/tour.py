"""Read-only queries of the dashboard's "Teaching tour" page: one question followed through a run.

Pure functions on a run folder (the page, ``app_pages/tour.py``, draws them through ``star_dashboard.data``).
Each opens the store read-only (``queries.open_store``, which uses ``store.connect(path, readonly=True)`` and
turns a missing or unreadable store into :class:`star_core.queries.RunUnavailable`) and returns plain dicts.
Nothing here imports streamlit or torch, and nothing here writes.

Iteration numbering follows the engine: iteration 0 evaluates the few-shot model; with a warm
start it then fine-tunes M(0) on reference rationales (phase ``warm_start``: supervised, not
bootstrapped, and not part of any question's story) and evaluates it (phase ``warm_eval``);
iteration i >= 1 samples the training split with model M(i-1) (phase ``sample``), retries the
failures with the gold answer as a hint (phase ``rationalize``), trains M(i) on the kept set
(``train_examples.iteration == i``, with the warm start's examples) and evaluates M(i) (phase
``eval``, ``metrics``). The direct-answer evaluation (``direct_eval``) is no part of a story either.
"""

from __future__ import annotations

import os
import random
from typing import Any

from ..store import prompt_column
from ..tasks import task_names
from ..tasks.base import AUDIT_VERSION
from .connect import _run_row, open_store, run_config
from .text import parse_audit
from .tour_objective import as_bool, eval_change, objective_numbers

#: The phases of a question's story (the warm start's reference examples and the direct-answer evaluation are not).
STORY_PHASES = ("sample", "rationalize", "eval", "warm_eval")
_STORY_SQL = "phase IN (" + ", ".join(f"'{p}'" for p in STORY_PHASES) + ")"

#: SQL of a sample whose rationale passes the audit under today's rules: a right answer, the verdict faithful,
#: recorded under the current audit version (an older "faithful" may be a bare answer: see ``AUDIT_VERSION``).
_PASS_SQL = (
    "(correct = 1 AND audit_faithful = 1 AND coalesce(CASE WHEN json_valid(audit_json)"
    f" THEN json_extract(audit_json, '$.version') END, 1) >= {int(AUDIT_VERSION)})"
)


def passes_audit(sample: dict[str, Any]) -> bool:
    """A sample (``audit`` parsed) is right and its rationale passes the audit under today's rules."""
    a = sample.get("audit") or {}
    return bool(sample.get("correct")) and a.get("verdict") == "faithful" and (a.get("version") or 1) >= AUDIT_VERSION


#: Kinds of story, best first: (kind, short tag for labels, sentence for the page).
STORY_KINDS: tuple[tuple[str, str, str], ...] = (
    (
        "learned",
        "wrong → rationalized → learned",
        "The model got this question wrong, was rescued by rationalization (a hinted retry that reached the "
        "gold answer), and a later model then answered it correctly without any hint, with a rationale that "
        "passes the audit: STaR's whole cycle.",
    ),
    (
        "rationalized",
        "wrong → rationalized",
        "The model got this question wrong and was rescued by rationalization (a rationale that passes the "
        "audit), but no later model has answered it correctly without the hint, with a rationale that passes "
        "the audit (yet).",
    ),
    (
        "self_learned",
        "wrong → learned",
        "The model got this question wrong and it was not rescued by rationalization (rationalization was off, "
        "or the hinted retry failed), yet a later model answered it correctly on its own: it learned from the "
        "other questions' kept rationales (its rationale passes the audit).",
    ),
    (
        "answer_only",
        "right answer, no verified reasoning",
        "The model reached the gold answer for this question (with the hint, or later without it), but no "
        "rationale it wrote for it passes the rationale audit under today's rules: it learned the answer, "
        "not the reasoning.",
    ),
    (
        "wrong",
        "wrong",
        "The model got this question wrong; it was not rescued by rationalization, and no later model has "
        "answered it correctly (yet).",
    ),
    (
        "any",
        "seen",
        "No question of this run went wrong and was then rescued; this one simply shows what the model wrote.",
    ),
)
KIND_ORDER = {k: i for i, (k, _, _) in enumerate(STORY_KINDS)}
KIND_TAG = {k: t for k, t, _ in STORY_KINDS}
KIND_TEXT = {k: s for k, _, s in STORY_KINDS}
#: How many candidates of each kind the picker lists at most (a run may hold thousands of questions).
MAX_PER_KIND = 200


# --------------------------------------------------------------------------
# the run at a glance
# --------------------------------------------------------------------------
def overview(run_dir: str | os.PathLike) -> dict[str, Any]:
    """What the tour needs to know about the run: name, tasks, status (stored), the rationalize flag
    (True / False / None when the config does not say), restart_from_base, the iterations that hold
    samples or an iterations row (with their stage), the iterations that sampled the training split, and
    warm_start: the number of reference examples of the warm start (0 without one), and for arithmetic
    warm_start_digits, the digit counts of its sums in words (``"1-3"``)."""
    with open_store(run_dir) as con:
        row = _run_row(con)
        rid = row["id"]
        cfg = run_config(row)
        stages = {
            r["iteration"]: r["stage"]
            for r in con.execute("SELECT iteration, stage FROM iterations WHERE run_id=? ORDER BY iteration", (rid,))
        }
        phases: dict[int, set[str]] = {}
        for r in con.execute("SELECT DISTINCT iteration, phase FROM samples WHERE run_id=?", (rid,)):
            phases.setdefault(r["iteration"], set()).add(r["phase"])
        tasks = [
            r["task"] for r in con.execute("SELECT DISTINCT task FROM samples WHERE run_id=? ORDER BY task", (rid,))
        ]
        n_samples = con.execute("SELECT count(*) FROM samples WHERE run_id=?", (rid,)).fetchone()[0]
        warm = con.execute("SELECT count(*) FROM samples WHERE run_id=? AND phase='warm_start'", (rid,)).fetchone()[0]
    its = sorted(set(stages) | set(phases))
    return {
        "name": row["name"],
        "task": row["task"],
        "model": row["model"],
        "status": row["status"],
        "tasks": tasks or [t for t in str(row["task"] or "").split(",") if t],
        "rationalize": as_bool(cfg.get("rationalize")),
        "restart_from_base": as_bool(cfg.get("restart_from_base")),
        "samples_per_question": cfg.get("samples_per_question"),
        "iterations_planned": row["iterations_planned"],
        "iterations": its,
        "stages": stages,
        "sampled_iterations": [i for i in its if "sample" in phases.get(i, set())],
        "rationalized_iterations": [i for i in its if "rationalize" in phases.get(i, set())],
        "n_samples": int(n_samples),
        "warm_start": int(warm),
        "warm_start_digits": _digit_range(cfg.get("warm_start_digits"))
        if cfg.get("task") in task_names("digit_groups")
        else None,
    }


def _digit_range(value: Any) -> str | None:
    """A stored ``[lo, hi]`` digit range in words (``"1-3"``), or None when it does not read as one."""
    try:
        lo, hi = (int(v) for v in value)
    except (TypeError, ValueError):
        return None
    return f"{lo}" if lo == hi else f"{lo}-{hi}"


# --------------------------------------------------------------------------
# the question picker
# --------------------------------------------------------------------------
def question_key(task: str, question_id: str) -> str:
    """One string naming a question (for a select box or a URL): ``task::question_id``."""
    return f"{task}::{question_id}"


def split_key(key: str) -> tuple[str, str] | None:
    task, sep, qid = str(key or "").partition("::")
    return (task, qid) if sep and task and qid else None


#: Per (iteration, phase) of one question: any right, any kept, any kept rationalization, any right answer
#: passing the audit, any kept rationalization passing the audit.
Flags = tuple[int, int, int, int, int]
_NONE: Flags = (0, 0, 0, 0, 0)


def _later(per: dict[tuple[int, str], Flags], i: int, flag: int) -> int | None:
    """The first iteration after ``i`` whose unhinted samples or evaluation have ``flag`` set."""
    js = sorted(j for (j, ph), f in per.items() if ph in ("sample", "eval") and j > i and f[flag])
    return js[0] if js else None


def _classify(per: dict[tuple[int, str], Flags]) -> tuple[str, int | None, int | None]:
    """(kind, focus iteration, first later iteration answered correctly without a hint) of one question.

    ``per[(iteration, phase)]`` holds the ``Flags``. A first attempt "goes wrong" when no sample of that
    iteration has the gold answer; it is "rescued" when a hinted retry of the same iteration was kept; it is
    "learned" when a sample of a later iteration, or an evaluation of a later iteration, reaches the gold
    answer without a hint with a rationale that passes the audit (``passes_audit``). A right answer, or a
    rescue, whose rationale does not pass is the kind ``answer_only``: never told as learned.
    """
    fails = sorted(i for (i, ph), f in per.items() if ph == "sample" and not f[0])
    rescued = [i for i in fails if per.get((i, "rationalize"), _NONE)[2]]
    for i in sorted(rescued, key=lambda i: not per[(i, "rationalize")][4]):  # a passing rescue first
        if (j := _later(per, i, 3)) is not None:
            return "learned", i, j
    for i in rescued:
        if per[(i, "rationalize")][4]:
            if _later(per, i, 0) is None:
                return "rationalized", i, None
    for i in fails:
        if (j := _later(per, i, 3)) is not None:
            return "self_learned", i, j
    for i in fails:
        if (j := _later(per, i, 0)) is not None:
            return "answer_only", i, j
    if rescued:
        return "answer_only", rescued[0], None
    if fails:
        return "wrong", fails[0], None
    ev_fails = sorted(i for (i, ph), f in per.items() if ph == "eval" and not f[0])
    if ev_fails:
        return "wrong", ev_fails[0], None
    return "any", min(i for i, _ in per) if per else None, None


def _rank(q: tuple[str, str], per: dict[tuple[int, str], Flags], first: int) -> tuple:
    """A question's sort key (the first six items) and what the tour says of it: (kind order, murky, eval only,
    focus, lost, first sample id, question, kind, focus iteration, learned iteration)."""
    kind, focus, learned = _classify(per)
    eval_only = not any(ph == "sample" for _, ph in per)  # training questions tell STaR's story
    # a question that stays learned makes the cleaner story
    lost = learned is not None and any(ph == "sample" and j > learned and not f[0] for (j, ph), f in per.items())
    # a full cycle whose rescue passes the audit too makes the cleaner story
    murky = kind == "learned" and not per.get((focus, "rationalize"), _NONE)[4]
    order = focus if focus is not None else 1 << 30
    return (KIND_ORDER[kind], murky, eval_only, order, lost, first, q, kind, focus, learned)


def candidates(run_dir: str | os.PathLike, per_kind: int = MAX_PER_KIND) -> dict[str, Any]:
    """Questions worth a story, best kind first.

    Returns {"best_kind", "counts" {kind: number of questions}, "candidates": [{key, task, question_id,
    kind, focus_iteration, learned_iteration, grp, snippet, label}]} with at most ``per_kind`` questions of
    each kind, ordered by kind, training questions before evaluation-only ones, then focus iteration
    (iteration 1 first), questions that stay learned before those lost again, then storage order.
    """
    with open_store(run_dir) as con:
        rid = _run_row(con)["id"]
        rows = con.execute(
            "SELECT task, question_id, iteration, phase, max(correct) AS c, max(kept) AS kept,"
            " max(phase = 'rationalize' AND decision = 'rationalized' AND kept = 1) AS rz, min(id) AS first_id,"
            f" max({_PASS_SQL}) AS pc,"
            f" max(phase = 'rationalize' AND decision = 'rationalized' AND kept = 1 AND {_PASS_SQL}) AS prz"
            f" FROM samples WHERE run_id=? AND {_STORY_SQL} GROUP BY task, question_id, iteration, phase",
            (rid,),
        ).fetchall()
        per_q: dict[tuple[str, str], dict[tuple[int, str], Flags]] = {}
        first_id: dict[tuple[str, str], int] = {}
        for r in rows:
            q = (r["task"], r["question_id"])
            per_q.setdefault(q, {})[(r["iteration"], r["phase"])] = tuple(  # type: ignore[assignment]
                int(r[k] or 0) for k in ("c", "kept", "rz", "pc", "prz")
            )
            first_id[q] = min(first_id.get(q, r["first_id"]), r["first_id"])
        classified = [_rank(q, per, first_id[q]) for q, per in per_q.items()]
        classified.sort(key=lambda t: t[:6])
        counts: dict[str, int] = {k: 0 for k, _, _ in STORY_KINDS}
        chosen = []
        for t in classified:
            counts[t[7]] += 1
            if counts[t[7]] <= per_kind:
                chosen.append(t)
        snippets: dict[int, tuple[str, str]] = {}
        ids = [t[5] for t in chosen]
        for n in range(0, len(ids), 500):
            part = ids[n : n + 500]
            for r in con.execute(
                f"SELECT id, grp, substr(question, 1, 200) AS q FROM samples WHERE id IN ({','.join('?' * len(part))})",
                part,
            ):
                snippets[r["id"]] = (r["grp"], r["q"] or "")
    out = []
    for _, _, _, _, _, fid, (task, qid), kind, focus, learned in chosen:
        grp, text = snippets.get(fid, ("all", ""))
        snippet = " ".join(str(text).split())
        snippet = snippet[:70] + ("…" if len(snippet) > 70 else "")
        out.append(
            {
                "key": question_key(task, qid),
                "task": task,
                "question_id": qid,
                "kind": kind,
                "focus_iteration": focus,
                "learned_iteration": learned,
                "grp": grp,
                "snippet": snippet,
                "label": f"[{KIND_TAG[kind]}] {task} · {qid} · {snippet}",
            }
        )
    best = out[0]["kind"] if out else None
    return {"best_kind": best, "counts": counts, "candidates": out}


def auto_pick(cands: dict[str, Any]) -> dict[str, Any] | None:
    """The question the tour opens with: the first candidate (best kind, earliest iteration)."""
    return cands["candidates"][0] if cands.get("candidates") else None


def surprise(cands: dict[str, Any], current: str | None = None, seed: int | None = None) -> dict[str, Any] | None:
    """A random candidate other than ``current``, of the best kind available when there is a choice."""
    pool = [c for c in cands.get("candidates", []) if c["key"] != current]
    if not pool:
        return None
    best = [c for c in pool if c["kind"] == pool[0]["kind"]]
    rng = random.Random(seed)
    return rng.choice(best)


# --------------------------------------------------------------------------
# one question's story
# --------------------------------------------------------------------------
_STORY_COLS = (
    "id, iteration, task, split, phase, question_id, k, grp, question, {prompt}, hint, raw_output,"
    " rationale, answer, gold, correct, decision, kept, reason, audit_faithful, audit_json"
)


#: Where each phase's samples go in an iteration of a story.
_STORY_LIST = {"sample": "first", "rationalize": "retry", "eval": "eval", "warm_eval": "warm"}


def _story_iteration(iteration: int) -> dict[str, Any]:
    return {"iteration": iteration, "first": [], "retry": [], "eval": [], "warm": [], "train": []}


def story(run_dir: str | os.PathLike, task: str, question_id: str) -> dict[str, Any] | None:
    """Everything the run did with one question, iteration by iteration.

    Returns None when the run holds no sample of it. Otherwise {task, question_id, question, gold, grp,
    kind, focus_iteration, learned_iteration, iterations: [{iteration, first: [samples, phase sample],
    retry: [samples, phase rationalize], eval: [samples, phase eval], warm: [samples, phase warm_eval: the
    warm-started model's evaluation], train: [train_examples rows of this question stored for this
    iteration], solved_without_hint: bool | None}]}. Each sample dict carries its
    columns with ``audit`` parsed from audit_json and ``train_example`` (its training row, or None).
    """
    with open_store(run_dir) as con:
        rid = _run_row(con)["id"]
        rows = [
            dict(r)
            for r in con.execute(
                f"SELECT {_STORY_COLS.format(prompt=prompt_column(con))} FROM samples INDEXED BY samples_question"
                " WHERE run_id=? AND task=?"
                f" AND question_id=? AND {_STORY_SQL}"
                " ORDER BY iteration, id",
                (rid, task, question_id),
            )
        ]
        if not rows:
            return None
        tex = [
            dict(r)
            for r in con.execute(
                "SELECT id, iteration, sample_id, source, prompt, completion FROM train_examples"
                " WHERE run_id=? AND task=? AND question_id=? ORDER BY iteration, id",
                (rid, task, question_id),
            )
        ]
    by_sample = {t["sample_id"]: t for t in tex}
    per: dict[tuple[int, str], Flags] = {}
    its: dict[int, dict[str, Any]] = {}
    for r in rows:
        r["audit"] = parse_audit(r.pop("audit_json"))
        r["train_example"] = by_sample.get(r["id"])
        r["correct"], r["kept"] = bool(r["correct"]), bool(r["kept"])
        it = its.setdefault(r["iteration"], _story_iteration(r["iteration"]))
        it[_STORY_LIST[r["phase"]]].append(r)
        r["passes_audit"] = passes_audit(r)
        rz = int(r["phase"] == "rationalize" and r["decision"] == "rationalized" and r["kept"])
        now = (int(r["correct"]), int(r["kept"]), rz, int(r["passes_audit"]), rz & int(r["passes_audit"]))
        per[(r["iteration"], r["phase"])] = tuple(  # type: ignore[assignment]
            a | b for a, b in zip(per.get((r["iteration"], r["phase"]), _NONE), now)
        )
    for t in tex:
        its.setdefault(t["iteration"], _story_iteration(t["iteration"]))["train"].append(t)
    for it in its.values():
        plain = it["first"] + it["eval"]
        it["solved_without_hint"] = any(s["correct"] for s in plain) if plain else None
    kind, focus, learned = _classify(per)
    head = rows[0]
    return {
        "task": task,
        "question_id": question_id,
        "question": head["question"],
        "gold": head["gold"],
        "grp": head["grp"],
        "split": head["split"],
        "kind": kind,
        "focus_iteration": focus,
        "learned_iteration": learned,
        "iterations": [its[i] for i in sorted(its)],
    }


__all__ = [
    "KIND_TAG",
    "KIND_TEXT",
    "STORY_KINDS",
    "as_bool",
    "auto_pick",
    "candidates",
    "eval_change",
    "objective_numbers",
    "overview",
    "passes_audit",
    "question_key",
    "split_key",
    "story",
    "surprise",
]
