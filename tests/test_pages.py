"""Every dashboard page in streamlit's AppTest, on synthetic run stores."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import numpy as np
import pytest

from helpers import FAKE_STAR_CLI, ROOT
from helpers import apptest as A
from helpers import dash_fixtures as F
from helpers.apptest import APP, arr, bind_address, charts, markdowns, open_page, texts, wait
from star_core import queries as Q
from star_dashboard.ui import md_escape

root, env, loopback = A.root, A.env, A.loopback  # pytest fixtures (loopback: autouse), used here by name
sql = F.sql


# ---- runs ----------------------------------------------------------------------
def test_runs_page_lists_runs_and_details(env):
    at = open_page(None, run="alpha")
    assert at.title[0].value == "Runs" and at.caption[0].value.startswith("Every STaR run")
    df = at.dataframe[0].value
    assert {"alpha", "beta"} <= set(df["run"])
    status = dict(zip(df["run"], df["status"]))
    assert "finished" in status["alpha"] and "crashed (resumable)" in status["beta"]
    assert "corrupt" in " ".join(df["status"])
    assert at.query_params["run"] == "alpha"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["STaR iterations done"] == "3 / 3" and metrics["Status"] == "finished"  # iteration 0 is extra
    it_table = at.dataframe[1].value
    assert it_table["iteration"].tolist() == [0, 1, 2, 3]
    trained = sql(env / "alpha", "SELECT count(*) FROM train_examples WHERE iteration=1")[0][0]
    assert it_table.loc[1, "trained on"] == trained


def test_runs_page_crashed_run_is_resumable(env):
    at = open_page(None, run="beta")
    assert any("stopped without finishing" in e for e in texts(at, "error"))
    assert any(b.label == "Resume run" for b in at.button)
    assert "Rationalization: **off**" in " ".join(texts(at, "markdown"))


@pytest.mark.parametrize("bad,kind", [("broken", "error"), ("half", "info")])
def test_unreadable_runs_show_a_message(env, bad, kind):
    for page in (None, "rationales", "rationalizations", "decisions", "accuracy"):
        at = open_page(page, run=bad)
        msgs = texts(at, kind)
        assert msgs, (page, texts(at, "error"), texts(at, "info"))
        if bad == "broken":
            assert any("cannot be read" in m or "not a readable SQLite" in m for m in msgs)
        else:
            assert any("no run yet" in m or "no data yet" in m for m in msgs)


@pytest.mark.parametrize("bad", ["../../etc", "/etc", "..", "alpha/../../x"])
def test_run_param_cannot_escape_the_roots(env, bad):
    for page in (None, "rationales", "accuracy"):
        at = open_page(page, run=bad)
        assert any("not a run folder inside" in e for e in texts(at, "error")), page
        assert not at.code  # nothing of any run is shown


def test_no_runs_yet(monkeypatch, tmp_path):
    monkeypatch.setenv("STAR_RUNS_ROOT", str(tmp_path / "empty"))
    monkeypatch.setenv(Q.DEMO_RUNS_ENV, "0")
    monkeypatch.chdir(tmp_path)
    for page in (None, "rationales", "rationalizations", "decisions", "accuracy"):
        at = open_page(page)
        assert any("No runs yet" in m for m in texts(at, "info")), page
    at = open_page("launch")
    assert at.button and any("Start run" in b.label for b in at.button)


# ---- rationales --------------------------------------------------------------------
def test_rationales_next_prev_and_url(env):
    run = env / "alpha"
    ids = sql(
        run, "SELECT id, question FROM samples WHERE iteration=2 AND phase='sample' AND decision='wrong' ORDER BY id"
    )
    n = len(ids)
    at = open_page("rationales", run="alpha", it=2, phase="sample", decision="wrong")
    assert f"**Sample 1 of {n}**" in texts(at, "markdown")
    assert ids[0][1] in texts(at, "code")
    assert at.selectbox(key="rat_decision").value == "wrong" and at.selectbox(key="rat_it").value == "2"
    assert at.query_params["sid"] == str(ids[0][0]) and at.query_params["decision"] == "wrong"
    at.button(key="rat_next").click().run()
    assert f"**Sample 2 of {n}**" in texts(at, "markdown")
    assert ids[1][1] in texts(at, "code") and ids[0][1] not in texts(at, "code")
    assert at.query_params["sid"] == str(ids[1][0])
    at.button(key="rat_prev").click().run()
    assert f"**Sample 1 of {n}**" in texts(at, "markdown")
    assert at.button(key="rat_prev").disabled
    at.number_input(key="rat_goto").set_value(3).run()
    assert f"**Sample 3 of {n}**" in texts(at, "markdown") and at.query_params["sid"] == str(ids[2][0])
    # the compact table shows the page of results around the position
    table = at.dataframe[-1].value
    assert table["id"].tolist()[: min(n, 25)] == [i for i, _ in ids][:25]
    # changing a filter goes back to the first match
    at.selectbox(key="rat_decision").select("correct").run()
    n_ok = sql(run, "SELECT count(*) FROM samples WHERE iteration=2 AND phase='sample' AND decision='correct'")[0][0]
    assert f"**Sample 1 of {n_ok}**" in texts(at, "markdown")
    assert at.query_params["decision"] == "correct"


def test_rationales_link_opens_that_sample(env):
    run = env / "alpha"
    sid, q = sql(
        run,
        "SELECT id, question FROM samples WHERE task='arithmetic' AND grp='3' AND correct=1 "
        "ORDER BY id LIMIT 1 OFFSET 1",
    )[0]
    n = sql(run, "SELECT count(*) FROM samples WHERE task='arithmetic' AND grp='3' AND correct=1")[0][0]
    at = open_page("rationales", run="alpha", task="arithmetic", digits="3", correct="yes", sid=sid)
    assert f"**Sample 2 of {n}**" in texts(at, "markdown") and q in texts(at, "code")
    # search
    at = open_page("rationales", run="alpha", q="cupboard")
    n = sql(
        run,
        "SELECT count(*) FROM samples WHERE question LIKE '%cupboard%' OR rationale LIKE '%cupboard%' "
        "OR raw_output LIKE '%cupboard%'",
    )[0][0]
    assert f"**Sample 1 of {n}**" in texts(at, "markdown")


def test_rationales_display_model_text_literally(env):
    run = env / "alpha"
    sid = sql(run, "SELECT id FROM samples WHERE question_id=? AND phase='eval'", F.PAYLOAD_QID)[0][0]
    at = open_page("rationales", run="alpha", sid=sid)
    codes = texts(at, "code")
    assert "RATIONALE " + F.PAYLOAD in codes and "RAW " + F.PAYLOAD in codes
    assert "Payload question " + F.PAYLOAD in codes
    assert "<b>x</b>" in codes  # the parsed answer
    assert "• step <i>2</i>: **3+4** != 8 $x$" in codes  # audit errors, literal
    assert "parsed answer <b>x</b> differs from gold 7" in texts(at, "text")  # the reason, literal
    for m in markdowns(at) + texts(at, "error") + texts(at, "warning"):
        assert "<script" not in m and "onerror" not in m and "javascript:" not in m and "**bold**" not in m
    assert not at.get("html")


def test_rationales_show_the_no_rationale_verdict(env, tmp_path, monkeypatch):
    from star_core.tasks.base import Audit

    run = F.build_run(tmp_path / "roots" / "gamma", iterations=1, n_train=4, n_eval=2, payload=False)
    monkeypatch.setenv("STAR_RUNS_ROOT", str(run.parent))
    why = "no intermediate step: 47 + 38 = 85 <b>writes</b> only the question and the answer"
    audit = Audit(checked=3, no_rationale=why).to_dict()
    sid = sql(run, "SELECT id FROM samples WHERE phase='sample' AND correct=1 ORDER BY id LIMIT 1")[0][0]
    con = sqlite3.connect(run / "store.sqlite")
    with con:
        con.execute(
            "UPDATE samples SET decision='no_rationale', kept=0, audit_faithful=0, audit_json=? WHERE id=?",
            (json.dumps(audit), sid),
        )
    con.close()
    at = open_page("rationales", run="gamma", sid=sid)
    assert any(Q.VERDICTS["no_rationale"].split(":")[0] in m and "3 step(s) checked" in m for m in markdowns(at))
    assert "• " + why in texts(at, "code")  # the reason, literal
    # what the filter did with it, from its stored decision: rejected, so not trained on
    assert any(
        m.startswith("Right answer, no rationale") and "rejected it" in m and "not trained on" in m
        for m in texts(at, "info")
    )
    # a record made under audit version 1 says that its faithful verdict predates the rule
    old = {"checked": 3, "errors": [], "faithful": True}
    con = sqlite3.connect(run / "store.sqlite")
    with con:
        con.execute("UPDATE samples SET audit_json=? WHERE id=?", (json.dumps(old), sid))
    con.close()
    at = open_page("rationales", run="gamma", sid=sid)
    assert any("before a bare answer got its own verdict" in m for m in markdowns(at))


def test_rationales_highlight_the_first_bad_line(env, tmp_path, monkeypatch):
    """Audit version 3 names the first line that fails: the Rationales page highlights that line of the
    rationale (escaped: no raw HTML from the model), and a record without it highlights nothing."""
    from star_core.tasks import get_task

    run = F.build_run(tmp_path / "roots" / "delta", iterations=1, n_train=4, n_eval=2, payload=False)
    monkeypatch.setenv("STAR_RUNS_ROOT", str(run.parent))
    task = get_task("arithmetic", format="carry")
    p = task.make_problem(47, 38, "x")
    text = (
        " 47 + 38, carry 0, result none.\n7 + 8 + 0 = 16, digit 6, carry 1. Left 4 + 3, result 6. <b>x</b>\n"
        "4 + 3 + 1 = 8, digit 8, carry 0. Left none, result 86.\nCarry 0, result 86.\nThe answer is 86."
    )
    parsed = task.parse(text, p)
    audit = task.audit(p, parsed)
    assert audit.first_bad_line == 2
    sid = sql(run, "SELECT id FROM samples WHERE phase='sample' ORDER BY id LIMIT 1")[0][0]
    con = sqlite3.connect(run / "store.sqlite")
    with con:
        con.execute(
            "UPDATE samples SET raw_output=?, rationale=?, audit_json=? WHERE id=?",
            (text, parsed.rationale, json.dumps(audit.to_dict()), sid),
        )
    con.close()
    at = open_page("rationales", run="delta", sid=sid)
    marked = [h for h in texts(at, "html") if "#ffc9c9" in h]
    assert len(marked) == 1 and marked[0].count("<mark") == 1
    inside = marked[0].split("<mark", 1)[1].split(">", 1)[1].split("</mark>", 1)[0]
    assert inside.startswith("7 + 8 + 0 = 16") and inside.endswith("&lt;b&gt;x&lt;/b&gt;") and "<b>" not in marked[0]
    assert any("fails, line 2 " in m and "highlighted" in m and "cannot read" in m for m in markdowns(at))
    old = {**audit.to_dict(), "version": 2}
    del old["first_bad_line"]
    con = sqlite3.connect(run / "store.sqlite")
    with con:
        con.execute("UPDATE samples SET audit_json=? WHERE id=?", (json.dumps(old), sid))
    con.close()
    at = open_page("rationales", run="delta", sid=sid)
    assert not any("#ffc9c9" in h for h in texts(at, "html"))


def test_rationales_question_history_opens_another_sample(env):
    run = env / "alpha"
    sid, qid = sql(
        run,
        "SELECT id, question_id FROM samples WHERE iteration=1 AND phase='sample' AND "
        "task='commonsenseqa' ORDER BY id LIMIT 1",
    )[0]
    later = sql(run, "SELECT id FROM samples WHERE question_id=? AND iteration=3 AND phase='sample'", qid)[0][0]
    at = open_page("rationales", run="alpha", it=1, sid=sid)
    hist = at.dataframe[0].value
    assert set(hist["iteration"]) >= {1, 2, 3} and (hist["id"] == sid).any()
    at.selectbox(key="rat_hist").select(later).run()
    assert at.query_params["sid"] == str(later)
    assert any("outside the current filters" in w for w in texts(at, "warning"))  # it=1 filter, iteration 3
    assert "**Sample outside the filter**" in " ".join(texts(at, "markdown"))


def test_live_run_shows_stop_and_refreshes(env, tmp_path, monkeypatch):
    root = tmp_path / "live"
    F.build_run(root / "now", iterations=3, n_train=4, n_eval=2, status="running", stop_after=(2, "sample"))
    monkeypatch.setenv("STAR_RUNS_ROOT", str(root))
    at = open_page(None, run="now")
    assert any("refreshes every few seconds" in c for c in texts(at, "caption"))
    # started outside the dashboard (this test process): no Stop button, and the page says how to stop it
    assert not any(b.label == "Stop run" for b in at.button)
    assert any(f"pid {os.getpid()}) was not started by this dashboard" in c for c in texts(at, "caption"))
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Status"] == "running" and metrics["Current stage"] == "2: sampled"
    assert "running" in at.dataframe[0].value["status"].iloc[0]
    # the process dies: the run reads as crashed (resumable) on the next refresh
    F.set_running(root / "now", pid=F.dead_pid())
    at.run()
    assert {m.label: m.value for m in at.metric}["Status"] == "crashed"
    assert any(b.label == "Resume run" for b in at.button)


# ---- rationalizations --------------------------------------------------------------------
def test_rationalization_hint_highlighted(env):
    run = env / "alpha"
    sid, first_q = sql(
        run,
        "SELECT r.id, s.raw_output FROM samples r JOIN samples s ON s.question_id=r.question_id "
        "AND s.iteration=r.iteration AND s.phase='sample' WHERE r.phase='rationalize' AND "
        "r.task='commonsenseqa' AND r.decision='rationalized' ORDER BY r.id LIMIT 1",
    )[0]
    at = open_page("rationalizations", run="alpha", sid=sid)
    htmls = texts(at, "html")
    block = htmls[0]
    assert block.count("<mark") == 1 and "> (CORRECT)</mark>" in block
    assert "Q: " in block and "[#" in block  # the final question, not the exemplars
    assert len(htmls) == 2 and htmls[1].count("<mark") == 3  # full prompt: 2 exemplars + the question
    codes = texts(at, "code")
    assert first_q in codes  # the first attempt
    te_prompt = sql(run, "SELECT prompt FROM train_examples WHERE sample_id=?", sid)[0][0]
    assert te_prompt in codes and "(CORRECT)" not in te_prompt
    assert not any("Hint leak" in e for e in texts(at, "error"))
    assert at.query_params["sid"] == str(sid)


def test_rationalization_hint_leak_marked_and_escaped(env):
    run = env / "alpha"
    sid = sql(run, "SELECT id FROM samples WHERE question_id=? AND phase='rationalize'", F.PAYLOAD_QID)[0][0]
    at = open_page("rationalizations", run="alpha", sid=sid)
    assert any("Hint leak" in e for e in texts(at, "error"))
    htmls = " ".join(texts(at, "html"))
    assert "<script" not in htmls and "<img" not in htmls and "<b>" not in htmls
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in htmls and "&lt;img src=x onerror=alert(1)&gt;" in htmls
    assert '"background:#ffe066' in htmls.replace("style=", "") or "#ffe066" in htmls  # the hint, highlighted
    assert "#ffa8a8" in htmls  # the leak in the output, marked
    for m in markdowns(at):
        assert "<script" not in m and "<b>" not in m
    assert "Not kept" in " ".join(texts(at, "info"))


def test_rationalizations_off(env):
    at = open_page("rationalizations", run="beta")
    assert any("Rationalization is off" in m for m in texts(at, "info"))


# ---- filter decisions --------------------------------------------------------------------
def test_decisions_funnel_numbers_and_open_samples(env):
    run = env / "alpha"
    at = open_page("decisions", run="alpha")
    fn = Q.funnel(run, 3)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Sampled"] == str(fn["sampled"]) and metrics["Right, kept"] == str(fn["correct"])
    assert metrics["Retried with the hint"] == str(fn["retried"]) and metrics["Kept for training"] == str(fn["kept"])
    assert metrics["Trained on"] == str(fn["trained"])
    ch = charts(at)
    sk = ch["dec_sankey"]["data"][0]
    labels = sk["node"]["label"]
    assert f"sampled {fn['sampled']}" in labels and f"training set {fn['kept']}" in labels
    vals = arr(sk["link"]["value"])
    src = arr(sk["link"]["source"])
    assert sum(v for v, s in zip(vals, src) if s == labels.index(f"sampled {fn['sampled']}")) == fn["sampled"]
    # the stacked bars: one trace per (phase, decision), counts per iteration
    bars = {t["name"]: dict(zip(t["x"], arr(t["y"]))) for t in ch["dec_bars"]["data"]}
    n_wrong_2 = sql(run, "SELECT count(*) FROM samples WHERE iteration=2 AND phase='sample' AND decision='wrong'")[0][0]
    assert bars["first attempt: wrong"]["2"] == n_wrong_2
    # newly solved / lost
    trans = Q.solve_transitions(run)
    tt = trans[trans["split"] == "train"].groupby("iteration")["newly_solved"].sum(min_count=1)
    f3 = ch["dec_trans"]["data"]
    assert arr(f3[0]["y"])[1:] == tt.tolist()[1:]
    # the rejection reasons grouped by kind, counts first; a kind's button opens its samples
    kinds = [m for m in texts(at, "markdown") if "**: " in m and m.startswith("**")]
    n_wrong = sql(
        run,
        "SELECT count(*) FROM samples WHERE iteration=3 AND phase IN ('sample', 'rationalize') AND decision='wrong'",
    )[0][0]
    assert any(k.startswith(f"**{n_wrong:,}** · **wrong answer**") for k in kinds), kinds
    # a decision button opens those samples on the Rationales page
    n = fn["sample_decisions"]["wrong"]
    at.button(key="dec_open_sample_wrong").click().run()
    assert not at.exception
    assert f"**Sample 1 of {n}**" in texts(at, "markdown")
    assert at.selectbox(key="rat_decision").value == "wrong" and at.selectbox(key="rat_it").value == "3"
    assert at.query_params["phase"] == "sample"


def test_decisions_iteration_and_task_pick(env):
    run = env / "alpha"
    at = open_page("decisions", run="alpha")
    at.selectbox(key="dec_it").select(1).run()
    at.selectbox(key="dec_task").select("gsm8k").run()
    fn = Q.funnel(run, 1, "gsm8k")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Sampled"] == str(fn["sampled"]) == "12"
    assert metrics["Rescued (rationalized)"] == str(fn["rationalized"])


# ---- accuracy -------------------------------------------------------------------------
def test_accuracy_curves_overlay_and_reference(env):
    run = env / "alpha"
    at = open_page("accuracy", run="alpha")
    ch = charts(at)
    assert {
        "acc_curve_arithmetic_eval",
        "acc_curve_commonsenseqa_eval",
        "acc_curve_gsm8k_eval",
        "acc_digits",
        "acc_heat",
        "acc_loss",
        "acc_final_loss",
    } <= set(ch)
    tr = [t for t in ch["acc_curve_gsm8k_eval"]["data"] if t.get("meta") != "reference"]
    assert len(tr) == 1
    want = [
        100 * a for (a,) in sql(run, "SELECT accuracy FROM metrics WHERE task='gsm8k' AND grp='all' ORDER BY iteration")
    ]
    assert arr(tr[0]["x"]) == [0, 1, 2, 3] and arr(tr[0]["y"]) == pytest.approx(want)
    refs = [t for t in ch["acc_curve_commonsenseqa_eval"]["data"] if t.get("meta") == "reference"]
    assert sorted(arr(t["y"])[0] for t in refs) == [36.6, 60.0, 72.5]
    assert any("STaR (GPT-J) 72.5" in t["name"] for t in refs)
    assert not [t for t in ch["acc_curve_arithmetic_eval"]["data"] if t.get("meta") == "reference"]
    tr = [t for t in tr if t.get("meta") != "reference"]
    digits = {t["name"] for t in ch["acc_digits"]["data"]}
    assert digits == {f"{d} digits" for d in range(1, 7)}
    z = ch["acc_heat"]["data"][0]["z"]
    assert np.array(arr(z)).size == 6 * 4
    # overlay a second run
    at.multiselect(key="acc_runs").select("beta").run()
    assert not at.exception
    ch = charts(at)
    assert len(ch["acc_curve_arithmetic_eval"]["data"]) == 2  # no paper numbers for arithmetic
    assert {t["name"] for t in ch["acc_final_loss"]["data"]} == {"alpha", "beta"}
    at.toggle(key="acc_ref").set_value(False).run()
    assert len(charts(at)["acc_curve_commonsenseqa_eval"]["data"]) == 1  # beta has no CQA; no references


def test_accuracy_shows_intervals_and_significance(env):
    from star_core import stats

    run = env / "alpha"
    at = open_page("accuracy", run="alpha")
    ch = charts(at)
    # error bars: the 95 % Wilson interval of every point
    tr = [t for t in ch["acc_curve_gsm8k_eval"]["data"] if t.get("meta") != "reference"][0]
    rows = sql(run, "SELECT n_correct, n FROM metrics WHERE task='gsm8k' AND grp='all' ORDER BY iteration")
    want = [stats.wilson(k, n) for k, n in rows]
    y = arr(tr["y"])
    assert [v + e for v, e in zip(y, arr(tr["error_y"]["array"]))] == pytest.approx([100 * hi for _, hi in want])
    assert [v - e for v, e in zip(y, arr(tr["error_y"]["arrayminus"]))] == pytest.approx([100 * lo for lo, _ in want])
    assert all("error_y" in t for t in ch["acc_digits"]["data"])
    # every change between iterations, with its McNemar p-value and whether it is significant
    ch = Q.changes_frame(run)
    top = ch[(ch["grp"] == "all") & (ch["task"] == "arithmetic") & (ch["iteration"] == 2)].iloc[0]
    line = f"arithmetic eval, iteration 2 vs 1: {stats.describe_change(int(top.lost), int(top.gained))}"
    assert any(md_escape(line) in m for m in markdowns(at))
    table = [d.value for d in at.dataframe if "p_value" in d.value.columns][0]
    assert len(table) == len(ch) and set(table["significant"]) <= {"yes", "no"}
    assert (table["significant"] == "yes").sum() == int(ch["significant"].sum())


# ---- the warm start, the direct-answer baseline and the three measures -----------------------
@pytest.fixture(scope="module")
def warm_root(tmp_path_factory):
    r = tmp_path_factory.mktemp("warm_runs")
    F.build_run(r / "warm", iterations=2, n_train=10, n_eval=8, warm_start=6, direct=True, payload=False)
    return r


@pytest.fixture
def warm_env(warm_root, monkeypatch, tmp_path):
    monkeypatch.setenv("STAR_RUNS_ROOT", str(warm_root))
    monkeypatch.setenv(Q.DEMO_RUNS_ENV, "0")
    monkeypatch.chdir(tmp_path)
    return warm_root


def _values(m, phase, measure, grp="all"):
    g = m[(m["phase"] == phase) & (m["measure"] == measure) & (m["grp"] == grp)].sort_values("point")
    return g["point"].tolist(), (100 * g["value"]).tolist()


def test_accuracy_shows_the_warm_start_and_the_direct_baseline(warm_env):
    run = warm_env / "warm"
    m = Q.measures_frame(run)
    at = open_page("accuracy", run="warm")
    ch = charts(at)
    (line,) = [t for t in ch["acc_curve_arithmetic_eval"]["data"] if not t.get("meta")]
    chain = m[m["phase"].isin(Q.CHAINED_PHASES) & (m["measure"] == "accuracy") & (m["grp"] == "all")]
    chain = chain.sort_values("point")
    assert arr(line["x"]) == [0, Q.WARM_POINT, 1, 2] and arr(line["y"]) == pytest.approx(100 * chain["value"])
    assert line["marker"]["symbol"] == ["circle", "diamond", "circle", "circle"]
    assert "warm start" in ch["acc_curve_arithmetic_eval"]["layout"]["xaxis"]["ticktext"]
    (direct,) = [t for t in ch["acc_curve_arithmetic_eval"]["data"] if t.get("meta") == "direct"]
    assert arr(direct["y"]) == pytest.approx(2 * _values(m, "direct_eval", "accuracy")[1])
    assert "direct answer, no rationale" in direct["name"]
    assert any("supervised, not bootstrapped" in c for c in texts(at, "caption"))
    # the three measures of the run, one line each
    three = ch["acc_measures_arithmetic_eval"]["data"]
    assert [t["name"] for t in three] == list(Q.MEASURES.values())
    for t, key in zip(three, Q.MEASURES):
        want = m[m["phase"].isin(Q.CHAINED_PHASES) & (m["measure"] == key) & (m["grp"] == "all")]
        assert arr(t["y"]) == pytest.approx(100 * want.sort_values("point")["value"])
    # the curves follow the chosen measure
    at.radio(key="acc_measure").set_value("faithful_accuracy").run()
    assert not at.exception
    ch = charts(at)
    (line,) = [t for t in ch["acc_curve_arithmetic_eval"]["data"] if not t.get("meta")]
    faithful = m[m["phase"].isin(Q.CHAINED_PHASES) & (m["measure"] == "faithful_accuracy") & (m["grp"] == "all")]
    assert arr(line["y"]) == pytest.approx(100 * faithful.sort_values("point")["value"])
    assert arr(line["y"]) != pytest.approx(100 * chain["value"])
    # changes chain through the warm start; the loss of the warm start is named so
    md = markdowns(at)
    assert any(md_escape("iteration 1 vs after the warm start (supervised)") in x for x in md)
    assert any(md_escape("after the warm start (supervised) vs iteration 0 (few-shot)") in x for x in md)
    assert "warm start (supervised)" in {t["name"] for t in ch["acc_loss"]["data"]}


def test_accuracy_shows_the_curriculum_frontier(env, tmp_path, monkeypatch):
    """A run with the digit curriculum: the Accuracy page lists each iteration's frontier, from the store's
    meta records; a run without one shows no such table."""
    from star_core.store import RunStore

    run = F.build_run(tmp_path / "roots" / "eps", tasks=("arithmetic",), iterations=2, n_train=6, n_eval=4)
    monkeypatch.setenv("STAR_RUNS_ROOT", str(run.parent))
    writer = RunStore(run)
    for it, front in ((1, 2), (2, 3)):
        rec = {"frontier": front, "rate": 0.5, "keep": 0.25, "measured_on": {"iteration": it - 1, "phase": "eval"}}
        writer.save_frontier(it, {**rec, "rates": {"1": [4, 4]}, "questions": {"1": 1, str(front): 2}})
    writer.close()
    at = open_page("accuracy", run="eps")
    assert any("Digit curriculum" in m for m in markdowns(at))
    (df,) = [d.value for d in at.dataframe if "frontier (digits)" in d.value.columns]
    assert df["frontier (digits)"].tolist() == [2, 3] and df["iteration"].tolist() == [1, 2]
    assert df["questions drawn by digits"].tolist() == ["1: 1, 2: 2", "1: 1, 3: 2"]
    at = open_page("accuracy", run="alpha")
    assert not any("Digit curriculum" in m for m in markdowns(at))


def test_accuracy_of_version_1_runs_is_accuracy_only(env):
    at = open_page("accuracy", run="alpha")  # its payload sample was audited under version 1
    at.radio(key="acc_measure").set_value("rationale_share").run()
    assert not at.exception
    ch = charts(at)
    (line,) = [t for t in ch["acc_curve_arithmetic_eval"]["data"] if not t.get("meta")]
    assert arr(line["x"]) == [1, 2, 3]  # iteration 0 holds the payload sample, audited under version 1
    (line,) = [t for t in ch["acc_curve_gsm8k_eval"]["data"] if not t.get("meta")]
    assert arr(line["x"]) == [0, 1, 2, 3]


def test_runs_decisions_and_rationales_label_the_warm_start(warm_env):
    run = warm_env / "warm"
    at = open_page(None, run="warm")
    md = " ".join(markdowns(at))
    assert "**Warm start** (6 reference rationales, 30 steps)" in md and "not bootstrapped" in md
    assert "**Direct-answer baseline**" in md
    it_table = at.dataframe[1].value
    assert {"right and faithful", "shows a rationale"} <= set(it_table.columns)
    assert it_table["iteration"].tolist() == [0, 1, 2]
    at = open_page("decisions", run="warm")
    assert any("not bootstrapped" in x for x in markdowns(at))
    bars = {t["name"]: dict(zip(arr(t["x"]), arr(t["y"]))) for t in charts(at)["dec_train"]["data"]}
    assert bars["reference (warm start: supervised)"] == {0: 6, 1: 6, 2: 6}
    trained = dict(sql(run, "SELECT iteration, n_train_examples FROM iterations"))
    for i in (1, 2):
        assert bars["correct (first attempt)"][i] + bars["rationalized (hint removed)"][i] + 6 == trained[i]
    at.button(key="dec_open_warm").click().run()
    assert not at.exception
    assert "**Sample 1 of 6**" in texts(at, "markdown") and at.query_params["phase"] == "warm_start"
    assert any("not by the model" in i for i in texts(at, "info"))
    assert "**Reference rationale** (the task's, not the model's)" in texts(at, "markdown")


def test_every_decision_has_a_colour():
    from star_core import store
    from star_dashboard import ui

    assert set(ui.DECISION_COLOR) == set(store.DECISIONS)


# ---- launch ---------------------------------------------------------------------------
def test_launch_stop_resume(env, monkeypatch, tmp_path):
    user_root = tmp_path / "userruns"
    monkeypatch.setenv("STAR_RUNS_ROOT", str(user_root))
    monkeypatch.setenv("STAR_CLI", f"{sys.executable} {FAKE_STAR_CLI}")
    from star_core import procs

    run_dir = user_root / "t1"
    try:
        at = open_page("launch")
        at.text_input(key="launch_name").input("t1")
        at.toggle[0].set_value(False)  # rationalization off
        next(b for b in at.button if "Start run" in b.label).click().run()
        assert not at.exception and not texts(at, "error")
        assert wait(lambda: Q.run_status(run_dir) == "running")
        cfg = Q.run_info(run_dir)["config"]
        assert cfg["rationalize"] == "false" and cfg["n_train"] == "64"
        at.run()
        assert any(b.label == "Stop run" for b in at.button)
        codes = " ".join(texts(at, "code"))
        assert "INFO started" in codes and "UserWarning" not in codes and "18/40" not in codes  # star's own lines
        at.button(key="stop_launch").click().run()
        assert wait(lambda: Q.run_status(run_dir) == "stopped")
        at.run()
        assert any(b.label == "Resume run" for b in at.button)
        at.button(key="resume_launch").click().run()
        assert wait(lambda: Q.run_status(run_dir) == "running")
        assert "resumed" in (procs.log_tail(run_dir) or "")
        # a second run while the first is going is refused (at most 1 launched run at once by default)
        at.text_input(key="launch_name").input("t2")
        next(b for b in at.button if "Start run" in b.label).click().run()
        assert any("at most 1 at once" in e for e in texts(at, "error"))
        assert not (user_root / "t2").exists()
        # a second launch with the same name is refused
        at.text_input(key="launch_name").input("t1")
        next(b for b in at.button if "Start run" in b.label).click().run()
        assert any("already exists" in e for e in texts(at, "error"))
        at.text_input(key="launch_name").input("../evil")
        next(b for b in at.button if "Start run" in b.label).click().run()
        assert any("Run name" in e for e in texts(at, "error"))
        assert not (user_root.parent / "evil").exists()
    finally:
        if run_dir.exists():
            procs.stop_run(run_dir)
            wait(lambda: procs.launched_alive(run_dir) is None, 10)
            procs.reap()


def test_launch_can_be_turned_off(env, monkeypatch):
    monkeypatch.setenv("STAR_DASHBOARD_LAUNCH", "0")
    at = open_page("launch")
    assert any("Process control is turned off" in m for m in texts(at, "info"))
    assert not any("Start run" in b.label for b in at.button)
    # ... and so are Resume and Stop on the Runs page
    at = open_page(None, run="beta")
    assert any("stopped without finishing" in e for e in texts(at, "error"))
    assert not any(b.label in ("Resume run", "Stop run") for b in at.button)
    assert any("STAR_DASHBOARD_LAUNCH=0" in c for c in texts(at, "caption"))


@pytest.mark.parametrize("address", ["", "0.0.0.0", "::", "192.168.1.7"])
def test_no_process_control_beyond_loopback(env, address):
    restore = bind_address(address)
    try:
        at = open_page("launch")
        assert any("reachable beyond loopback" in m for m in texts(at, "info"))
        assert not any("Start run" in b.label for b in at.button)
        at = open_page(None, run="beta")
        assert not any(b.label == "Resume run" for b in at.button)
        assert any("reachable beyond loopback" in c for c in texts(at, "caption"))
        assert any("Resume it from a shell" in e for e in texts(at, "error"))
    finally:
        restore()


def test_process_control_with_the_token(env, monkeypatch):
    secret = "s3cret-token-for-the-test"
    monkeypatch.setenv("STAR_DASHBOARD_TOKEN", secret)
    restore = bind_address("0.0.0.0")
    try:
        at = open_page("launch")
        assert any("needs this dashboard's token" in m for m in texts(at, "info"))
        assert not any("Start run" in b.label for b in at.button)
        at.text_input[0].input("wrong-token-wrong-token")
        at.button[0].click().run()
        assert not any("Start run" in b.label for b in at.button)
        at.text_input[0].input(secret)
        at.button[0].click().run()
        assert any("Start run" in b.label for b in at.button)
        # the token in the URL unlocks the session and leaves the URL
        at = open_page(None, run="beta", token=secret)
        assert any(b.label == "Resume run" for b in at.button)
        assert "token" not in at.query_params
        at = open_page(None, run="beta", token="nope")
        assert not any(b.label == "Resume run" for b in at.button)
    finally:
        restore()


@pytest.mark.parametrize(
    "env_vars,address,client,allowed,needle",
    [
        ({}, "127.0.0.1", None, True, ""),
        ({}, "localhost", None, True, ""),
        ({}, "::1", None, True, ""),
        ({}, None, None, False, "every interface"),
        ({}, "0.0.0.0", None, False, "listens on 0.0.0.0"),
        ({}, "127.0.0.1", "10.0.0.5", False, "connects from 10.0.0.5"),
        ({"STAR_DASHBOARD_LAUNCH": "0"}, "127.0.0.1", None, False, "STAR_DASHBOARD_LAUNCH=0"),
        ({"STAR_DASHBOARD_TOKEN": "short"}, "0.0.0.0", None, False, "shorter than 16"),
        ({"STAR_DASHBOARD_TOKEN": "x" * 20}, "127.0.0.1", None, False, "needs this dashboard's token"),
    ],
)
def test_process_control_policy(monkeypatch, env_vars, address, client, allowed, needle):
    from star_core import procs

    for k, v in env_vars.items():
        monkeypatch.setenv(k, v)
    pol = procs.policy(address, client, None)
    assert pol.allowed is allowed and needle in pol.reason
    if "STAR_DASHBOARD_TOKEN" in env_vars and len(env_vars["STAR_DASHBOARD_TOKEN"]) >= 16:
        assert procs.policy("0.0.0.0", "10.0.0.5", env_vars["STAR_DASHBOARD_TOKEN"]).allowed


def test_max_launched_runs_setting(monkeypatch):
    from star_core import procs

    monkeypatch.setattr(procs, "gpu_count", lambda: 0)
    monkeypatch.delenv("STAR_DASHBOARD_MAX_RUNS", raising=False)
    assert procs.max_runs() == 1  # a CPU machine
    monkeypatch.setattr(procs, "gpu_count", lambda: 2)
    assert procs.max_runs() == 2
    monkeypatch.setenv("STAR_DASHBOARD_MAX_RUNS", "3")
    assert procs.max_runs() == 3 and procs.policy("127.0.0.1").max_runs == 3


def test_stop_only_signals_what_the_dashboard_started(tmp_path):
    from star_core import procs

    # launch.json naming a live process that is not the recorded command (a reused pid): not ours
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        run_dir = tmp_path / "r"
        run_dir.mkdir()
        (run_dir / procs.LAUNCH_INFO).write_text(
            json.dumps({"pid": sleeper.pid, "cmd": ["star", "run", "--out", str(run_dir)]})
        )
        assert procs.launched_alive(run_dir) is None
        assert "nothing was stopped" in procs.stop_run(run_dir)
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


def test_launch_command_line(monkeypatch):
    from star_core import procs

    monkeypatch.delenv("STAR_CLI", raising=False)
    prefix = procs.cli_prefix()
    assert prefix[0].endswith("star") or prefix[-2:] == ["-m", "star_core.cli"]
    cmd = procs.run_command("runs/x", "gsm8k", "m", 3, True, 10, 5, 64, 0.0, 1, 7)
    assert cmd[len(prefix) :] == [
        "run",
        "--out",
        "runs/x",
        "--task",
        "gsm8k",
        "--model",
        "m",
        "--iterations",
        "3",
        "--set",
        "rationalize=true",
        "--set",
        "n_train=10",
        "--set",
        "n_eval=5",
        "--set",
        "max_new_tokens=64",
        "--set",
        "temperature=0.0",
        "--set",
        "samples_per_question=1",
        "--set",
        "seed=7",
        "--quiet",
    ]
    assert procs.resume_command("runs/x")[-4:] == ["run", "--resume", "runs/x", "--quiet"]


def test_no_legacy_pages_folder():
    # A folder named pages/ next to app.py (even an empty one) puts Streamlit in its legacy multipage mode
    # for the first session: a deep link then opens with a "Page not found" dialog. Pages live in app_pages/.
    assert not (ROOT / "pages").is_dir(), "remove pages/ (the dashboard's pages live in app_pages/)"


def test_pages_never_import_torch(env):
    code = f"""
import sys, os
os.environ["STAR_RUNS_ROOT"] = {str(env)!r}
from streamlit.testing.v1 import AppTest
at = AppTest.from_file({str(APP)!r}, default_timeout=60)
at.query_params["run"] = "alpha"
at.run()
for p in ("rationales", "rationalizations", "decisions", "accuracy", "launch"):
    at.switch_page(f"app_pages/{{p}}.py").run()
    assert not at.exception, p
assert "torch" not in sys.modules, "torch imported"
print("ok")
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr[-2000:]


def test_runs_page_says_when_adapters_are_left_out(env, tmp_path):
    at = open_page(None, run="alpha")
    infos = " ".join(texts(at, "info"))
    assert "adapters of iterations 1, 2, 3 are not in this folder" in infos
    for i in (1, 2, 3):  # once the adapters are there, the notice goes away
        d = env / "alpha" / "adapters" / f"iter_{i}"
        d.mkdir(parents=True, exist_ok=True)
        (d / "adapter_config.json").write_text("{}")
    try:
        at = open_page(None, run="alpha")
        assert "not in this folder" not in " ".join(texts(at, "info"))
    finally:
        import shutil

        shutil.rmtree(env / "alpha" / "adapters")
