"""The recorded demo runs in sample_data/runs are exactly what the engine wrote, and consistent."""

from pathlib import Path

import pytest

from star_core import queries
from star_core.store import DB_NAME, connect

DEMO_ROOT = Path(__file__).resolve().parents[1] / "sample_data" / "runs"
RUNS = sorted(p.parent for p in DEMO_ROOT.glob(f"*/{DB_NAME}"))


def test_demo_runs_are_shipped():
    tasks = set()
    for run in RUNS:
        con = connect(run / DB_NAME, readonly=True)
        tasks |= {r[0] for r in con.execute("SELECT task FROM runs")}
        con.close()
    assert {"arithmetic", "commonsenseqa"} <= tasks


@pytest.mark.parametrize("run", RUNS, ids=[r.name for r in RUNS])
def test_demo_store_is_consistent(run):
    con = connect(run / DB_NAME, readonly=True)
    q = lambda sql, *a: con.execute(sql, a).fetchall()  # noqa: E731
    assert q("PRAGMA integrity_check")[0][0] == "ok"
    (status,) = q("SELECT status FROM runs")[0]
    assert status == "finished" and queries.run_status(run) == "finished"
    iters = q("SELECT iteration, stage, n_train_examples FROM iterations ORDER BY iteration")
    assert [i[0] for i in iters] == list(range(len(iters))) and len(iters) >= 3
    assert all(i[1] == "done" for i in iters)
    for it, _, n_train in iters[1:]:
        kept = q("SELECT COUNT(*) FROM samples WHERE iteration=? AND kept=1", it)[0][0]
        examples = q("SELECT COUNT(*) FROM train_examples WHERE iteration=?", it)[0][0]
        assert n_train == kept == examples
        assert q("SELECT COUNT(*) FROM train_losses WHERE iteration=?", it)[0][0] > 0
    # every kept sample reached the gold answer, and the stored example carries no hint
    for answer, gold, decision, hint, prompt in q(
            "SELECT s.answer, s.gold, s.decision, s.hint, t.prompt FROM samples s "
            "JOIN train_examples t ON t.sample_id = s.id"):
        assert answer == gold and decision in ("correct", "rationalized")
        assert "hint" not in prompt.lower() and "(CORRECT)" not in prompt
    assert q("SELECT COUNT(*) FROM samples WHERE kept=1 AND answer IS NOT gold")[0][0] == 0
    # metrics are exactly the eval samples' counts
    for it, task, split, grp, n, n_correct, acc in q(
            "SELECT iteration, task, split, grp, n, n_correct, accuracy FROM metrics"):
        where = "" if grp == "all" else " AND grp=?"
        args = (it, task, split) + (() if grp == "all" else (grp,))
        real = q("SELECT COUNT(*), SUM(correct) FROM samples WHERE phase='eval' AND iteration=? AND task=?"
                 " AND split=?" + where, *args)[0]
        assert (n, n_correct) == (real[0], real[1]) and acc == pytest.approx(n_correct / n)
    # no sample stored twice
    assert q("SELECT COUNT(*) FROM (SELECT 1 FROM samples GROUP BY iteration, task, phase, question_id, k "
             "HAVING COUNT(*) > 1)")[0][0] == 0
    s = queries.summary(run)
    assert s["status"] == "finished" and len(s["iterations"]) == len(iters)
    con.close()
