"""The dashboard's query layer (star_core.queries) on synthetic run stores."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import dash_fixtures as F
from star_core import queries as Q
from star_core.stats import mcnemar, wilson

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    F.build_run(root / "multi", tasks=("arithmetic", "commonsenseqa", "gsm8k"), iterations=3, n_train=14, n_eval=7)
    F.build_run(root / "norat", tasks=("arithmetic",), iterations=2, rationalize=False, seed=1)
    F.build_run(
        root / "warm",
        tasks=("arithmetic", "commonsenseqa"),
        iterations=2,
        n_train=10,
        n_eval=8,
        warm_start=5,
        direct=True,
        seed=2,
        payload=False,
    )
    return root


sql = F.sql


# ---- audits ------------------------------------------------------------------------
def test_parse_audit_reads_new_and_old_records():
    from star_core.tasks.base import Audit

    new = Audit(checked=3, no_rationale="no intermediate step").to_dict()
    a = Q.parse_audit(json.dumps(new))
    assert (a["verdict"], a["faithful"], a["no_rationale"], a["version"]) == (
        "no_rationale",
        False,
        "no intermediate step",
        Q.AUDIT_VERSION,
    )
    # records from before the verdict: it follows from "faithful", version 1
    assert Q.parse_audit(json.dumps({"checked": 3, "errors": [], "faithful": True}))["verdict"] == "faithful"
    old = Q.parse_audit(json.dumps({"checked": 2, "errors": ["x"], "faithful": False}))
    assert (old["verdict"], old["version"]) == ("unfaithful", 1)
    assert Q.parse_audit(json.dumps({"checked": 0, "errors": [], "faithful": None}))["verdict"] is None
    assert Q.parse_audit(None) is None
    # audit version 3 names the first bad line; older records (and a bad value) have none
    assert Q.parse_audit(json.dumps(Audit(2, ("line 2: x",), first_bad_line=2).to_dict()))["first_bad_line"] == 2
    assert old["first_bad_line"] is None and a["first_bad_line"] is None
    assert (
        Q.parse_audit(json.dumps({"errors": ["x"], "faithful": False, "first_bad_line": "2"}))["first_bad_line"] is None
    )
    assert Q.parse_audit("[1, 2]")["errors"][0].startswith("unreadable audit record")


# ---- summary / counts ------------------------------------------------------------
def test_summary_counts_match_the_store(runs):
    run = runs / "multi"
    s = Q.summary(run)
    json.dumps(s)  # JSON-able
    assert s["status"] == "finished" and not s["resumable"]
    assert s["task"] == "arithmetic,commonsenseqa,gsm8k" and s["iterations_planned"] == 3
    assert [i["iteration"] for i in s["iterations"]] == [0, 1, 2, 3]
    for it in s["iterations"]:
        for phase, decs in it["decisions"].items():
            for d, n in decs.items():
                assert (
                    n
                    == sql(
                        run,
                        "SELECT count(*) FROM samples WHERE iteration=? AND phase=? AND decision=?",
                        it["iteration"],
                        phase,
                        d,
                    )[0][0]
                )
        assert it["kept"] == sql(run, "SELECT count(*) FROM train_examples WHERE iteration=?", it["iteration"])[0][0]
        assert (
            it["rationalized"]
            == sql(
                run, "SELECT count(*) FROM train_examples WHERE iteration=? AND source='rationalized'", it["iteration"]
            )[0][0]
        )
    it0 = s["iterations"][0]
    assert set(it0["decisions"]) == {"eval"} and it0["kept"] == 0 and it0["final_loss"] is None
    it1 = s["iterations"][1]
    assert it1["stage"] == "done" and it1["n_train_examples"] == it1["kept"] and it1["train_steps"] == 40
    last = sql(run, "SELECT loss FROM train_losses WHERE iteration=1 ORDER BY step DESC LIMIT 1")[0][0]
    assert it1["final_loss"] == pytest.approx(last)
    acc, n, k = sql(
        run, "SELECT accuracy, n, n_correct FROM metrics WHERE iteration=2 AND task='arithmetic' AND grp='3'"
    )[0]
    a = s["iterations"][2]["accuracy"]["arithmetic"]["eval"]["3"]
    assert a["accuracy"] == pytest.approx(acc) and (a["n"], a["n_correct"]) == (n, k)
    assert a["ci95"] == pytest.approx(list(wilson(k, n)))
    # each change pairs the eval answers with the iteration before, question by question
    assert s["iterations"][0]["change"] == {}
    for it in s["iterations"][1:]:
        for task, splits in it["change"].items():
            for grp, c in splits["eval"].items():
                where = "" if grp == "all" else f" AND a.grp='{grp}'"
                lost, gained = sql(
                    run,
                    "SELECT sum(a.correct > b.correct), sum(a.correct < b.correct) FROM samples a"
                    " JOIN samples b ON b.question_id=a.question_id AND b.task=a.task"
                    " AND b.phase='eval' AND b.iteration=a.iteration+1 WHERE a.phase='eval'"
                    " AND a.task=? AND b.iteration=?" + where,
                    task,
                    it["iteration"],
                )[0]
                assert (c["since"], c["lost"], c["gained"]) == (it["iteration"] - 1, lost, gained)
                assert c["p_value"] == pytest.approx(mcnemar(lost, gained))
                assert c["significant"] is (c["p_value"] < 0.05)
                assert c["pairs"] == it["accuracy"][task]["eval"][grp]["n"]


def test_changes_since_a_fixed_iteration(runs):
    run = runs / "multi"
    ch = Q.changes_frame(run, since=0)
    assert set(ch["since"]) == {0} and set(ch["iteration"]) == {1, 2, 3}
    assert not ch.duplicated(["task", "split", "grp", "iteration"]).any()
    assert set(ch[ch["task"] == "commonsenseqa"]["grp"]) == {"all"}
    one = Q.changes_frame(run)
    first = lambda df: df[df["iteration"] == 1].drop(columns=["since"]).reset_index(drop=True)  # noqa: E731
    assert first(ch).equals(first(one))  # iteration 1 against 0 either way
    m = Q.metrics_frame(run)
    row = m[(m["iteration"] == 3) & (m["task"] == "gsm8k") & (m["grp"] == "all")].iloc[0]
    assert (row["low"], row["high"]) == pytest.approx(wilson(int(row["n_correct"]), int(row["n"])))


def test_funnel_numbers_add_up(runs):
    run = runs / "multi"
    for it in (1, 2, 3):
        fn = Q.funnel(run, it)
        sample_n = sql(run, "SELECT count(*) FROM samples WHERE iteration=? AND phase='sample'", it)[0][0]
        correct = sql(
            run, "SELECT count(*) FROM samples WHERE iteration=? AND phase='sample' AND decision='correct'", it
        )[0][0]
        assert fn["sampled"] == sample_n and fn["correct"] == correct
        assert fn["failed"] == sample_n - correct == sum(v for k, v in fn["sample_decisions"].items() if k != "correct")
        # rationalization on: every failed question is retried once (iteration 1 also holds the payload retry,
        # which has no first attempt)
        extra = 1 if it == 1 else 0
        assert fn["retried"] == fn["failed"] + extra == sum(fn["retry_from"].values())
        assert fn["retry_from"].get(("unknown", "hint_leak"), 0) == extra
        assert fn["rationalized"] == fn["retry_decisions"].get("rationalized", 0)
        assert fn["retry_rejected"] == fn["retried"] - fn["rationalized"]
        assert fn["kept"] == fn["correct"] + fn["rationalized"] == fn["train_examples_total"] == fn["trained"]
        assert fn["train_examples"].get("rationalized", 0) == fn["rationalized"]
        assert sum(fn["eval"].values()) == 3 * 7
    # per task
    a = Q.funnel(run, 2, "arithmetic")
    assert a["sampled"] == 14
    tasks = ("arithmetic", "commonsenseqa", "gsm8k")
    assert sum(Q.funnel(run, 2, t)["kept"] for t in tasks) == Q.funnel(run, 2)["kept"]
    # no rationalization
    n = Q.funnel(runs / "norat", 1)
    assert n["retried"] == 0 and n["kept"] == n["correct"] == n["trained"]


def test_decision_counts_reasons_and_train_counts(runs):
    run = runs / "multi"
    dc = Q.decision_counts(run)
    assert dc["n"].sum() == sql(run, "SELECT count(*) FROM samples")[0][0]
    assert set(dc.columns) == {"iteration", "task", "phase", "decision", "n"}
    assert dc[dc["task"] == "gsm8k"]["n"].sum() == Q.decision_counts(run, "gsm8k")["n"].sum()
    tr = Q.top_reasons(run, 2)
    assert not tr.empty and (tr["phase"] != "eval").all()
    rejected = sql(run, "SELECT count(*) FROM samples WHERE iteration=2 AND kept=0 AND phase!='eval'")[0][0]
    assert Q.top_reasons(run, 2, limit=10_000)["n"].sum() == rejected
    tc = Q.train_counts(run).set_index("iteration")
    for it in (1, 2, 3):
        assert tc.loc[it, "stored"] == tc.loc[it, "correct"] + tc.loc[it, "rationalized"] == tc.loc[it, "trained"]
    assert (tc["reference"] == 0).all()
    warm = runs / "warm"  # the warm start's references: stored for iteration 0, one count on every row
    refs = sql(warm, "SELECT count(*) FROM train_examples WHERE iteration=0 AND source='reference'")[0][0]
    assert refs > 0 and (Q.train_counts(warm)["reference"] == refs).all()


def test_solve_transitions(runs):
    run = runs / "multi"
    tr = Q.solve_transitions(run)
    rows = sql(
        run,
        "SELECT task, phase, iteration, question_id, max(correct) FROM samples "
        "WHERE phase IN ('sample','eval') GROUP BY 1,2,3,4",
    )
    solved: dict = {}
    for t, ph, it, qid, ok in rows:
        solved.setdefault((t, ph), {}).setdefault(it, set())
        if ok:
            solved[(t, ph)][it].add(qid)
    for (t, ph), by_it in solved.items():
        split = "train" if ph == "sample" else "eval"
        its = sorted(by_it)
        for prev, cur in zip(its, its[1:]):
            r = tr[(tr["task"] == t) & (tr["split"] == split) & (tr["iteration"] == cur)].iloc[0]
            assert r["solved"] == len(by_it[cur])
            assert r["newly_solved"] == len(by_it[cur] - by_it[prev])
            assert r["lost"] == len(by_it[prev] - by_it[cur])
        first = tr[(tr["task"] == t) & (tr["split"] == split) & (tr["iteration"] == its[0])].iloc[0]
        assert first["newly_solved"] != first["newly_solved"]  # NaN: nothing to compare with
    assert set(tr[tr["split"] == "train"]["iteration"]) == {1, 2, 3}
    assert set(tr[tr["split"] == "eval"]["iteration"]) == {0, 1, 2, 3}


# ---- browsing -----------------------------------------------------------------
def test_browse_positions_prev_next(runs):
    run = runs / "multi"
    f = Q.SampleFilter(phase="sample", decision="wrong", iteration=2)
    ids = [
        r[0]
        for r in sql(
            run, "SELECT id FROM samples WHERE phase='sample' AND decision='wrong' AND iteration=2 ORDER BY id"
        )
    ]
    assert len(ids) >= 3
    b = Q.browse(run, f)
    assert b["total"] == len(ids) == Q.count_samples(run, f)
    assert (b["sample_id"], b["position"], b["prev_id"], b["next_id"]) == (ids[0], 1, None, ids[1])
    b = Q.browse(run, f, sample_id=ids[1])
    assert (b["position"], b["prev_id"], b["next_id"], b["in_filter"]) == (2, ids[0], ids[2], True)
    b = Q.browse(run, f, position=len(ids))
    assert b["sample_id"] == ids[-1] and b["next_id"] is None
    b = Q.browse(run, f, position=10_000)  # clamped
    assert b["sample_id"] == ids[-1]
    outside = sql(run, "SELECT id FROM samples WHERE phase='eval' ORDER BY id LIMIT 1")[0][0]
    b = Q.browse(run, f, sample_id=outside)
    assert b["in_filter"] is False and b["position"] is None and b["sample_id"] == outside
    assert b["next_id"] == min(i for i in ids if i > outside)
    assert Q.browse(run, Q.SampleFilter(decision="no-such"))["sample_id"] is None
    page = Q.samples_page(run, f, offset=1, limit=2)
    assert page["id"].tolist() == ids[1:3]


def test_filters_correct_grp_and_search(runs):
    run = runs / "multi"
    n = Q.count_samples(run, Q.SampleFilter(task="arithmetic", grp="3", correct=True))
    assert n == sql(run, "SELECT count(*) FROM samples WHERE task='arithmetic' AND grp='3' AND correct=1")[0][0] > 0
    assert Q.count_samples(run, Q.SampleFilter(kept=True)) == sql(run, "SELECT count(*) FROM train_examples")[0][0]
    # search is literal: LIKE wildcards in the search text match only themselves
    assert Q.count_samples(run, Q.SampleFilter(search="%")) == 0
    assert Q.count_samples(run, Q.SampleFilter(search="_")) == 0
    assert Q.count_samples(run, Q.SampleFilter(search="<script>alert(1)</script>")) == 2  # eval + retry payloads
    assert Q.count_samples(run, Q.SampleFilter(search="cupboard")) > 0
    sid = sql(run, "SELECT id FROM samples WHERE question_id=? AND phase='eval'", F.PAYLOAD_QID)[0][0]
    s = Q.get_sample(run, sid)
    assert s["audit"]["errors"] == ["step <i>2</i>: **3+4** != 8 $x$"] and s["audit"]["faithful"] is False
    assert s["train_example"] is None
    kept = sql(run, "SELECT sample_id FROM train_examples LIMIT 1")[0][0]
    assert Q.get_sample(run, kept)["train_example"]["sample_id"] == kept
    assert Q.get_sample(run, 10**9) is None


def test_facets_history_and_rationalization(runs):
    run = runs / "multi"
    fac = Q.facets(run)
    assert fac["tasks"] == ["arithmetic", "commonsenseqa", "gsm8k"]
    assert fac["iterations"] == [0, 1, 2, 3] and fac["phases"] == ["sample", "rationalize", "eval"]
    assert fac["grps"]["arithmetic"] == ["1", "2", "3", "4", "5", "6"]
    h = Q.question_history(run, "commonsenseqa", "cqa-train-00001")
    assert set(h["iteration"]) == {1, 2, 3} and (h["phase"].isin(["sample", "rationalize"])).all()
    rid, qid, it = sql(
        run,
        "SELECT id, question_id, iteration FROM samples WHERE phase='rationalize' AND "
        "task='commonsenseqa' AND decision='rationalized' LIMIT 1",
    )[0]
    rz = Q.rationalization(run, rid)
    assert rz["first"]["phase"] == "sample" and rz["first"]["question_id"] == qid and rz["first"]["iteration"] == it
    assert rz["train_example"]["source"] == "rationalized"
    assert "(CORRECT)" not in rz["train_example"]["prompt"]  # the hint is removed from the stored example
    spans = Q.hint_spans(rz["retry"]["prompt"], rz["retry"]["hint"])
    tail = rz["retry"]["prompt"].rstrip().rfind("\n\n")
    assert len(spans) == 1 and spans[0][0] > tail  # the question's marker, not the exemplars'
    assert rz["retry"]["prompt"][spans[0][0] : spans[0][1]] == " (CORRECT)"
    assert len(Q.find_all(rz["retry"]["prompt"], " (CORRECT)")) == 3  # 2 exemplars + the question


def test_hint_helpers():
    assert Q.hint_spans("a\n\nQ: x (CORRECT)\n\nQ: y (CORRECT)\nA:", " (CORRECT)") == [(23, 33)]
    assert Q.hint_spans("no hint", " (CORRECT)") == []
    assert Q.hint_spans("Q: ok (Answer: 7)", "(Answer: 7) ") == [(6, 17)]  # stripped hint
    leak = Q.hint_leak({"hint": " (CORRECT)", "raw_output": "pick (CORRECT) one", "decision": "hint_leak"})
    assert leak == {"flagged": True, "spans": [(5, 14)], "checkable": True}
    assert Q.hint_leak({"hint": "1 2 3", "raw_output": "1 2 3", "decision": "rationalized"})["checkable"] is False
    # the engine's GSM8K/arithmetic hint: the normal closing sentence is not a leak, mentioning the hint is
    ok = Q.hint_leak({"hint": "the answer is 12", "raw_output": " 6 + 6 = 12. The answer is 12.", "decision": "x"})
    assert ok["spans"] == [] and ok["checkable"]
    bad = Q.hint_leak({"hint": "the answer is 12", "raw_output": "As the Hint says, 12.", "decision": "x"})
    assert bad["spans"] == [(7, 11)]


def test_metrics_and_losses_frames(runs):
    m = Q.metrics_frame([runs / "multi", runs / "norat"])
    assert set(m["run"]) == {"multi", "norat"}
    assert m[(m["run"] == "norat") & (m["grp"] == "all")]["iteration"].tolist() == [0, 1, 2]
    lo = Q.losses_frame(runs / "multi")
    assert sorted(lo["iteration"].unique()) == [1, 2, 3] and len(lo[lo["iteration"] == 2]) == 48


# ---- the three measures, the warm start and the direct-answer baseline -------------------
def _recount(run, iteration, phase, task, grp):
    """(n, right, right and faithful, shows a rationale) of one evaluation, read row by row."""
    rows = sql(
        run,
        "SELECT grp, correct, audit_json FROM samples WHERE iteration=? AND phase=? AND task=?",
        iteration,
        phase,
        task,
    )
    rows = [(c, Q.parse_audit(a)) for g, c, a in rows if grp in ("all", g)]
    return (
        len(rows),
        sum(c for c, _ in rows),
        sum(bool(c and a["verdict"] == "faithful") for c, a in rows),
        sum(a["verdict"] != "no_rationale" for _, a in rows),
    )


def test_measures_match_the_samples(runs):
    run = runs / "warm"
    m = Q.measures_frame(run)
    assert set(m["measure"]) == set(Q.MEASURES) and set(m["phase"]) == {"eval", "warm_eval", "direct_eval"}
    assert set(m[m["phase"] != "eval"]["task"]) == {"arithmetic"}  # no warm start or direct baseline for CQA
    checked = 0
    for (it, phase, task, grp), g in m.groupby(["iteration", "phase", "task", "grp"]):
        n, right, faithful, shown = _recount(run, it, phase, task, grp)
        got = {r.measure: r for r in g.itertuples()}
        assert (got["accuracy"].k, got["faithful_accuracy"].k, got["rationale_share"].k) == (right, faithful, shown)
        for r in g.itertuples():
            assert r.n == n and r.value == pytest.approx(r.k / n)
            assert (r.low, r.high) == pytest.approx(wilson(int(r.k), n))
            assert r.point == (Q.WARM_POINT if phase == "warm_eval" else it)
        checked += 1
    assert checked > 10
    # a measure that differs from accuracy, so the test can tell them apart
    e = m[(m["phase"] == "eval") & (m["task"] == "arithmetic") & (m["grp"] == "all")]
    assert (e[e["measure"] == "faithful_accuracy"]["k"].values < e[e["measure"] == "accuracy"]["k"].values).any()
    d = m[(m["phase"] == "direct_eval") & (m["grp"] == "all") & (m["measure"] == "rationale_share")]
    assert d["k"].tolist() == [0]  # a bare answer shows no rationale
    # the accuracy agrees with the engine's metrics table
    acc = m[(m["phase"] == "eval") & (m["measure"] == "accuracy")]
    met = Q.metrics_frame(run).merge(acc, on=["iteration", "task", "split", "grp"])
    assert len(met) == len(acc) and (met["n_correct"] == met["k"]).all()


def test_version_1_audits_give_only_accuracy(runs, tmp_path):
    m = Q.measures_frame(ROOT / "sample_data" / "runs" / "arithmetic-audit-filter")  # recorded under version 1
    assert set(m["measure"]) == {"accuracy"}
    m = Q.measures_frame(ROOT / "sample_data" / "runs" / "arithmetic-paper-rule")  # version 2
    assert set(m["measure"]) == set(Q.MEASURES)
    m = Q.measures_frame(runs / "warm")
    assert set(m[m["task"] == "commonsenseqa"]["measure"]) == set(Q.MEASURES)


def test_summary_reports_warm_start_direct_baseline_and_measures(runs):
    run = runs / "warm"
    s = Q.summary(run)
    json.dumps(s)
    w = s["warm_start"]
    assert w["examples"] == 5 == sql(run, "SELECT count(*) FROM samples WHERE phase='warm_start'")[0][0]
    assert (w["train_steps"], w["adapter_path"]) == (30, "adapters/warm_start") and "not bootstrapped" in w["note"]
    last = sql(run, "SELECT loss FROM train_losses WHERE iteration=0 AND step=30")[0][0]
    assert w["final_loss"] == pytest.approx(last)
    n, right, faithful, shown = _recount(run, 0, "warm_eval", "arithmetic", "all")
    wm = w["measures"]["arithmetic"]["eval"]["all"]
    assert (wm["accuracy"]["k"], wm["faithful_accuracy"]["k"], wm["rationale_share"]["k"], wm["accuracy"]["n"]) == (
        right,
        faithful,
        shown,
        n,
    )
    assert wm["accuracy"]["ci95"] == pytest.approx(list(wilson(right, n)))
    c = w["change"]["arithmetic"]["eval"]["all"]
    assert (c["since"], c["since_phase"]) == (0, "eval")  # the warm start against the few-shot model
    d = s["direct_baseline"]["arithmetic"]["eval"]["all"]["accuracy"]
    assert (d["k"], d["n"]) == _recount(run, 0, "direct_eval", "arithmetic", "all")[1::-1]
    it0, it1, it2 = s["iterations"]
    assert (
        it0["measures"]["arithmetic"]["eval"]["all"]["accuracy"]["k"]
        == _recount(run, 0, "eval", "arithmetic", "all")[1]
    )
    assert it0["change"] == {}
    # iteration 1 is compared with the warm-started model it was sampled from, iteration 2 with iteration 1
    assert {(c["since"], c["since_phase"]) for c in it1["change"]["arithmetic"]["eval"].values()} == {(0, "warm_eval")}
    assert {(c["since"], c["since_phase"]) for c in it1["change"]["commonsenseqa"]["eval"].values()} == {(0, "eval")}
    assert {(c["since"], c["since_phase"]) for c in it2["change"]["arithmetic"]["eval"].values()} == {(1, "eval")}
    # and runs without them say so
    s = Q.summary(runs / "norat")
    assert s["warm_start"] is None and s["direct_baseline"] is None


def test_changes_chain_through_the_warm_start(runs):
    run = runs / "warm"
    ch = Q.changes_frame(run)
    a = ch[(ch["task"] == "arithmetic") & (ch["grp"] == "all")]
    assert list(zip(a["iteration"], a["phase"], a["since"], a["since_phase"])) == [
        (0, "warm_eval", 0, "eval"),
        (1, "eval", 0, "warm_eval"),
        (2, "eval", 1, "eval"),
    ]
    lost, gained = sql(
        run,
        "SELECT sum(a.correct > b.correct), sum(a.correct < b.correct) FROM samples a JOIN"
        " samples b ON b.question_id = a.question_id AND b.task = a.task AND b.iteration = 1"
        " AND b.phase = 'eval' WHERE a.phase = 'warm_eval' AND a.task = 'arithmetic'",
    )[0]
    row = a[a["iteration"] == 1].iloc[0]
    assert (row["lost"], row["gained"]) == (lost, gained) and row["pairs"] == 8
    since = Q.changes_frame(run, since=0)
    a = since[(since["task"] == "arithmetic") & (since["grp"] == "all")]
    assert set(zip(a["iteration"], a["phase"])) == {(0, "warm_eval"), (1, "eval"), (2, "eval")}
    assert set(zip(a["since"], a["since_phase"])) == {(0, "eval")}
    assert Q.eval_label(0, "warm_eval").startswith("after the warm start") and Q.eval_label(2, "eval") == "iteration 2"


# ---- status --------------------------------------------------------------------
def test_status_detection(tmp_path):
    run = F.build_run(tmp_path / "r", iterations=1, n_train=4, n_eval=2, status="running")
    assert Q.run_status(run) == "running"  # this process's pid, fresh heartbeat
    F.set_running(run, pid=F.dead_pid())
    assert Q.run_status(run) == "crashed"
    assert Q.summary(run)["resumable"] is True
    F.set_running(run, pid=os.getpid(), heartbeat_age=Q.HEARTBEAT_STALE_S + 60)
    assert Q.run_status(run) == "crashed"
    F.set_running(run, pid=os.getpid(), heartbeat_age=5)
    assert Q.run_status(run) == "running"
    con = sqlite3.connect(run / "store.sqlite")
    with con:
        con.execute("UPDATE runs SET status='stopped'")
    con.close()
    assert Q.run_status(run) == "stopped" and Q.run_brief(run)["resumable"]
    assert Q.run_status(F.write_half(tmp_path / "half")) == "empty"
    assert Q.run_status(F.write_corrupt(tmp_path / "bad")) == "corrupt"
    assert Q.run_status(tmp_path / "missing") == "empty"
    (tmp_path / "zero").mkdir()
    (tmp_path / "zero" / "store.sqlite").write_bytes(b"")
    assert Q.run_status(tmp_path / "zero") == "empty"


def test_zombie_pid_is_dead():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    time.sleep(0.5)  # exited, not yet reaped: a zombie
    try:
        assert Q.pid_alive(p.pid) is False
    finally:
        p.wait()
    assert Q.pid_alive(os.getpid()) is True
    assert Q.pid_alive(None) is False


def test_unreadable_stores_raise_clear_errors(tmp_path):
    with pytest.raises(Q.RunUnavailable) as e:
        Q.summary(F.write_corrupt(tmp_path / "bad"))
    assert e.value.kind == "corrupt" and "not a readable SQLite database" in str(e.value)
    with pytest.raises(Q.RunUnavailable) as e:
        Q.summary(F.write_half(tmp_path / "half"))
    assert e.value.kind == "empty" and "no run" in str(e.value)
    with pytest.raises(Q.RunUnavailable) as e:
        Q.facets(tmp_path / "nothing")
    assert e.value.kind == "missing"


def test_readers_do_not_write(runs):
    run = runs / "multi"
    with Q.open_store(run) as con:
        with pytest.raises(sqlite3.OperationalError):
            con.execute("DELETE FROM samples")


# ---- runs list and the path guard --------------------------------------------------
def test_list_runs(runs, tmp_path):
    F.write_corrupt(runs / "zz-broken")
    (runs / "not-a-run").mkdir(exist_ok=True)
    rows = {r["key"]: r for r in Q.list_runs([runs, tmp_path / "absent"])}
    assert {"multi", "norat", "zz-broken"} <= set(rows) and "not-a-run" not in rows
    m = rows["multi"]
    assert m["status"] == "finished" and m["progress"] == 1.0 and m["iterations_done"] == 4
    assert m["current_stage"] == "done" and m["path"] == str((runs / "multi").resolve())
    assert rows["zz-broken"]["status"] == "corrupt" and rows["zz-broken"]["problem"]
    # a root that is itself a run is listed by absolute path
    only = Q.list_runs([runs / "norat"])
    assert len(only) == 1 and only[0]["key"] == str((runs / "norat").resolve())


def test_progress_of_a_run_in_the_middle(tmp_path):
    run = F.build_run(tmp_path / "mid", iterations=3, n_train=4, n_eval=2, status="running", stop_after=(2, "sample"))
    b = Q.run_brief(run)
    assert b["status"] == "running" and b["current_iteration"] == 2 and b["current_stage"] == "sampled"
    assert 0.3 < b["progress"] < 0.8


def test_resolve_run_guard(runs, tmp_path):
    roots = [runs]
    assert Q.resolve_run("multi", roots) == (runs / "multi").resolve()
    assert Q.resolve_run(str((runs / "multi").resolve()), roots) == (runs / "multi").resolve()
    outside = F.build_run(tmp_path / "outside", iterations=0, n_train=1, n_eval=1)
    (runs / "escape").symlink_to(outside, target_is_directory=True)
    nested = F.build_run(runs / "multi" / "nested", iterations=0, n_train=1, n_eval=1)
    for bad in (
        "../../etc",
        "..",
        "multi/../norat",
        "/etc",
        str(outside),
        "escape",
        "nested",
        "multi/nested",
        str(nested),
        "",
        "nope",
        "not-a-run",
        "multi\x00",
        "~",
    ):
        with pytest.raises(Q.RunUnavailable):
            Q.resolve_run(bad, roots)
    assert "escape" not in {r["key"] for r in Q.list_runs(roots)}


def test_runs_roots(monkeypatch, tmp_path):
    monkeypatch.setenv(Q.RUNS_ROOT_ENV, f"{tmp_path}/a{os.pathsep}{tmp_path}/b")
    assert Q.runs_roots(ROOT) == [tmp_path / "a", tmp_path / "b", ROOT / "sample_data" / "runs"]
    monkeypatch.delenv(Q.RUNS_ROOT_ENV)
    assert Q.runs_roots()[0] == (Path.cwd() / "runs").resolve()


def test_no_torch_on_the_dashboard_path():
    code = (
        "import sys; import star_core.queries, star_dashboard.ui, star_core.queries.tour; "
        "assert 'torch' not in sys.modules, 'torch imported'; print('ok')"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr


def test_order_file_sets_the_first_run_of_a_root(tmp_path):
    for name, seed in (("b", 1), ("a", 2), ("c", 3)):
        F.build_run(tmp_path / name, tasks=("arithmetic",), iterations=1, n_train=4, n_eval=2, seed=seed)
    newest_first = [Path(r["path"]).name for r in Q.list_runs([tmp_path])]
    (tmp_path / "ORDER").write_text("c\nb\n")
    ordered = [Path(r["path"]).name for r in Q.list_runs([tmp_path])]
    assert ordered[:2] == ["c", "b"] and set(ordered) == set(newest_first) == {"a", "b", "c"}


def test_demo_runs_open_on_the_showcase_run():
    demo = Path(__file__).resolve().parents[1] / "sample_data" / "runs"
    first = Q.list_runs([demo])[0]
    showcase = (demo / Q.ORDER_FILE).read_text().split()[0]
    assert first["key"] == showcase == "arithmetic-carry-curriculum" and first["status"] == "finished"


@pytest.mark.parametrize(
    "prompt, hint, marked",
    [
        (
            "Q: x\n(a) one (CORRECT)\nA: y\n\nQ: z\n(a) up\n(b) down (CORRECT)\nA:",
            "(b) down (CORRECT)",
            "(b) down (CORRECT)",
        ),
        (
            "Q: x\n(a) one (CORRECT)\nA: y\n\nQ: z\n(a) up\n(b) down (CORRECT)\nA:",
            "choice (b) marked (CORRECT)",
            "(b) down (CORRECT)",
        ),
        (
            "Q: What is 1 + 1? (Hint: the answer is 2.)\nA: 2\n\nQ: What is 4 + 4? (Hint: the answer is 8.)\nA:",
            "the answer is 8",
            "the answer is 8",
        ),
        ("Q: no hint here\nA:", "the answer is 8", None),
    ],
)
def test_hint_spans_mark_the_hint_in_the_last_question(prompt, hint, marked):
    spans = Q.hint_spans(prompt, hint)
    if marked is None:
        assert spans == []
    else:
        assert [prompt[a:b] for a, b in spans] == [marked]


@pytest.mark.parametrize("stored", ["[1, 2]", "{not json", ""])
def test_run_info_reads_a_bad_stored_config_as_empty(tmp_path, stored):
    """``run_info`` and ``run_config`` read the stored config the same way: a dict, else {}."""
    run = tmp_path / "r"
    F.build_run(run, tasks=("arithmetic",), iterations=1, n_train=4, n_eval=2)
    assert Q.run_info(run)["config"]  # the synthetic run stores a config
    con = sqlite3.connect(run / "store.sqlite")
    with con:
        con.execute("UPDATE runs SET config_json=?", (stored,))
    con.close()
    info = Q.run_info(run)
    assert info["config"] == {} and "config_json" not in info
