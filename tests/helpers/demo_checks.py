"""The consistency checks of a recorded run store: the demo runs' (test_demo_store) and those of a run a test
records with the same settings (test_curriculum)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from helpers import store_sql
from star_core import curriculum, queries
from star_core.config import from_saved, make_task
from star_core.store import CONFIG_NAME, DB_NAME, KEPT_DECISIONS, connect
from star_core.tasks import Problem, Task


def samples(run: Path, where: str = "1") -> list[dict]:
    """The stored samples ``where`` holds, in the order they were stored."""
    return store_sql.rows(run, f"SELECT * FROM samples WHERE {where} ORDER BY id", readonly=True)


def task_and_problems(run: Path) -> tuple[Task, object]:
    """The run's task, and a function from a stored sample to its Problem: arithmetic rebuilds it from
    the question ("47 + 38"); the other tasks read it from the run's data files by id."""
    cfg = from_saved(run / CONFIG_NAME)
    task = make_task(cfg)
    if cfg.task == "arithmetic":

        def problem(r: dict) -> Problem:
            a, b = map(int, re.fullmatch(r"(\d+) \+ (\d+)", r["question"]).groups())
            return task.make_problem(a, b, r["question_id"])

        return task, problem
    by_id = {
        p.id: p
        for split, path in (("train", cfg.train_file), ("eval", cfg.eval_file))
        for p in task.load(split, path=path)
    }
    return task, lambda r: by_id[r["question_id"]]


def check_consistent_store(run: Path) -> None:
    """A finished run's store: intact, every iteration done, training sets, kept samples and metrics as the samples
    say, no sample stored twice, and its summary reads."""
    con = connect(run / DB_NAME, readonly=True)
    q = lambda sql, *a: con.execute(sql, a).fetchall()  # noqa: E731
    assert q("PRAGMA integrity_check")[0][0] == "ok"
    (status,) = q("SELECT status FROM runs")[0]
    assert status == "finished" and queries.run_status(run) == "finished"
    iters = q("SELECT iteration, stage, n_train_examples FROM iterations ORDER BY iteration")
    assert [i[0] for i in iters] == list(range(len(iters))) and len(iters) >= 2
    assert all(i[1] == "done" for i in iters)
    # a supervised warm start's reference examples (stored once, at iteration 0) join every training set
    warm = q("SELECT COUNT(*) FROM samples WHERE phase='warm_start' AND kept=1")[0][0]
    cfg = from_saved(run / CONFIG_NAME)
    for it, _, n_train in iters[1:]:
        kept = q("SELECT COUNT(*) FROM samples WHERE iteration=? AND kept=1", it)[0][0]
        examples = q("SELECT COUNT(*) FROM train_examples WHERE iteration=?", it)[0][0]
        assert examples == kept
        if cfg.accumulate_kept:  # every distinct example kept so far, capped per digit count
            rid = q("SELECT id FROM runs")[0][0]
            grown = curriculum.grow(curriculum.training_rows(con, rid, it), cfg.max_train_per_group, cfg.seed + it)
            assert n_train == len(grown)
        else:
            assert n_train == kept + warm
        assert q("SELECT COUNT(*) FROM train_losses WHERE iteration=?", it)[0][0] > 0
    # every kept sample reached the gold answer, and the stored example carries no hint
    for answer, gold, decision, prompt in q(
        "SELECT s.answer, s.gold, s.decision, t.prompt FROM samples s JOIN train_examples t ON t.sample_id = s.id"
    ):
        assert answer == gold and decision in KEPT_DECISIONS
        assert "hint" not in prompt.lower() and "(CORRECT)" not in prompt
    assert q("SELECT COUNT(*) FROM samples WHERE kept=1 AND answer IS NOT gold")[0][0] == 0
    # metrics are exactly the eval samples' counts
    for it, task, split, grp, n, n_correct, acc in q(
        "SELECT iteration, task, split, grp, n, n_correct, accuracy FROM metrics"
    ):
        where = "" if grp == "all" else " AND grp=?"
        args = (it, task, split) + (() if grp == "all" else (grp,))
        real = q(
            "SELECT COUNT(*), SUM(correct) FROM samples WHERE phase='eval' AND iteration=? AND task=?"
            " AND split=?" + where,
            *args,
        )[0]
        assert (n, n_correct) == (real[0], real[1]) and acc == pytest.approx(n_correct / n)
    # no sample stored twice
    assert (
        q(
            "SELECT COUNT(*) FROM (SELECT 1 FROM samples GROUP BY iteration, task, phase, question_id, k "
            "HAVING COUNT(*) > 1)"
        )[0][0]
        == 0
    )
    s = queries.summary(run)
    assert s["status"] == "finished" and len(s["iterations"]) == len(iters)
    con.close()


def check_carry_run(run: Path) -> None:
    """The checks of the carry showcase, on any run folder of the carry format with the curriculum."""
    cfg = from_saved(run / CONFIG_NAME)
    assert cfg.arith_format == "carry" and cfg.curriculum == "digits" and cfg.reject_unfaithful
    task, problem = task_and_problems(run)
    kept = samples(run, "kept = 1")
    assert kept
    for r in kept:
        p = problem(r)
        parsed = task.parse(task.trim(r["raw_output"]), p)
        a = task.audit(p, parsed)
        assert a.verdict == "faithful" and a.checked >= 4 and parsed.answer == p.gold, (r["id"], r["raw_output"], a)
    s = queries.summary(run)
    for it in s["iterations"][1:]:
        rec = it["curriculum"]
        assert rec and rec["frontier"] >= 1, it["iteration"]
        grps = {r["grp"] for r in samples(run, f"iteration = {int(it['iteration'])} AND phase = 'sample'")}
        assert max(map(int, grps)) <= rec["frontier"]
