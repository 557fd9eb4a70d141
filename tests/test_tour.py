"""The Teaching tour: star_core/queries/tour.py on hand-built stores, and the page in streamlit's AppTest."""

from __future__ import annotations

import sys

import pytest

from helpers import ROOT
from helpers import dash_fixtures as F
from helpers.apptest import APP, AppTest, metrics, open_tour, texts
from helpers.tour_stores import SCRIPT, UNFAITHFUL, build_story_run, build_strict_run
from star_core import queries as Q
from star_core.queries import tour as T

TOUR = "app_pages/tour.py"

sql = F.sql


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    r = tmp_path_factory.mktemp("tour_runs")
    build_story_run(r / "story")
    build_story_run(r / "norz", rationalize=False)
    build_story_run(r / "zero", iterations=0)
    build_story_run(r / "live", stop_after_sample=1)
    build_strict_run(r / "strict")
    F.set_running(r / "live")
    F.build_run(r / "alpha", tasks=("arithmetic", "commonsenseqa", "gsm8k"), iterations=2, n_train=10, n_eval=4)
    F.write_corrupt(r / "broken")
    F.write_half(r / "half")
    return r


# --------------------------------------------------------------------------
# star_core/queries/tour.py
# --------------------------------------------------------------------------
def test_auto_pick_finds_wrong_rationalized_then_learned(root):
    c = T.candidates(root / "story")
    pick = T.auto_pick(c)
    assert (pick["question_id"], pick["kind"], pick["focus_iteration"], pick["learned_iteration"]) == (
        "q-learn",
        "learned",
        1,
        2,
    )
    kinds = {x["question_id"]: x["kind"] for x in c["candidates"]}
    assert kinds == {
        "q-learn": "learned",
        "q-rz": "rationalized",
        "q-wrong": "wrong",
        "q-ok": "any",
        "e-1": "wrong",
        "e-2": "wrong",
    }
    # training questions before evaluation-only ones within a kind
    order = [x["question_id"] for x in c["candidates"]]
    assert order.index("q-wrong") < order.index("e-1")
    assert c["counts"]["learned"] == 1 and c["best_kind"] == "learned"
    other = T.surprise(c, current=pick["key"], seed=1)
    assert other is not None and other["key"] != pick["key"]


def test_story_of_the_picked_question(root):
    s = T.story(root / "story", "arithmetic", "q-learn")
    assert s["kind"] == "learned" and s["gold"] == "12"
    by_it = {it["iteration"]: it for it in s["iterations"]}
    assert sorted(by_it) == [1, 2]
    it1 = by_it[1]
    assert [x["decision"] for x in it1["first"]] == ["wrong"]
    (retry,) = it1["retry"]
    assert retry["decision"] == "rationalized" and retry["kept"] and retry["hint"] == "Answer: 12"
    assert SCRIPT in retry["raw_output"]
    assert retry["audit"] == {
        **UNFAITHFUL,
        "verdict": "unfaithful",
        "no_rationale": None,
        "version": 1,
        "first_bad_line": None,
    }
    assert [t["source"] for t in it1["train"]] == ["rationalized"] and "Answer:" not in it1["train"][0]["prompt"]
    assert retry["train_example"]["id"] == it1["train"][0]["id"]
    assert it1["solved_without_hint"] is False and by_it[2]["solved_without_hint"] is True
    block, start = Q.last_question_block(retry["prompt"])
    assert block.startswith("Input:\nq-learn sum\nAnswer: 12") and retry["prompt"][start:] == block
    assert T.story(root / "story", "arithmetic", "nope") is None


def test_objective_numbers_match_the_store(root):
    run = root / "story"
    n1 = T.objective_numbers(run, 1)
    assert (n1["sampled"], n1["questions"], n1["correct"], n1["kept_first"], n1["dropped"]) == (4, 4, 1, 1, 3)
    assert (n1["retried"], n1["rescued"], n1["K"], n1["train_examples"], n1["trained"]) == (3, 2, 3, 3, 3)
    assert n1["train_by_source"] == {"correct": 1, "rationalized": 2}
    assert n1["eval_prev"]["accuracy"] == 0.5 and n1["eval_now"]["accuracy"] == 0.5
    n2 = T.objective_numbers(run, 2)
    assert (n2["sampled"], n2["kept_first"], n2["dropped"], n2["retried"], n2["rescued"], n2["K"]) == (4, 2, 2, 2, 0, 2)
    assert n2["eval_now"]["n_correct"] == 2 and n2["eval_prev"]["n_correct"] == 1
    # the same numbers as the SQL the dashboard's funnel uses
    fn = Q.funnel(run, 1)
    assert (fn["sampled"], fn["correct"], fn["rationalized"], fn["kept"]) == (
        n1["sampled"],
        n1["kept_first"],
        n1["rescued"],
        n1["K"],
    )


def test_fallbacks_without_rationalization_and_iteration_zero_only(root):
    c = T.candidates(root / "norz")
    assert c["best_kind"] == "self_learned" and T.auto_pick(c)["question_id"] == "q-learn"
    assert c["counts"]["learned"] == c["counts"]["rationalized"] == 0
    assert T.overview(root / "norz")["rationalize"] is False
    n = T.objective_numbers(root / "norz", 1)
    assert n["rescued"] == n["retried"] == 0 and n["K"] == 1 and n["rationalize"] is False

    c = T.candidates(root / "zero")
    pick = T.auto_pick(c)
    assert c["best_kind"] == "wrong" and pick["question_id"] == "e-1" and pick["focus_iteration"] == 0
    ov = T.overview(root / "zero")
    assert ov["sampled_iterations"] == [] and ov["iterations"] == [0]
    n = T.objective_numbers(root / "zero", 0)
    assert n["sampled"] == 0 and n["K"] == 0 and n["eval_now"]["n_correct"] == 1

    c = T.candidates(root / "live")  # sampled, no retry yet
    assert c["best_kind"] == "wrong" and T.auto_pick(c)["question_id"] == "q-learn"
    assert T.overview(root / "live")["rationalized_iterations"] == []


def _marks(prompt: str, hint: str) -> tuple[str, list[tuple[int, int]]]:
    m = Q.hint_marks(prompt, hint)
    return m.block, m.block_spans


def test_hint_marks_in_the_last_block():
    ex = "Q: ex\nAnswer Choices:\n(a) x (CORRECT)\nA: fine\n\n"
    block, spans = _marks(
        ex + "Q: where?\nAnswer Choices:\n(a) desk\n(b) shelf (CORRECT)\nA:", "choice (b) marked (CORRECT)"
    )  # the hint text of older stores: the marked choice
    assert block.startswith("Q: where?") and [block[a:b] for a, b in spans] == ["(b) shelf (CORRECT)"]
    block, spans = _marks(
        ex + "Q: where?\nAnswer Choices:\n(a) desk\n(b) shelf (CORRECT)\nA:", "(b) shelf (CORRECT)"
    )  # the engine's CommonsenseQA hint text now
    assert [block[a:b] for a, b in spans] == ["(b) shelf (CORRECT)"]
    block, spans = _marks(ex + "Q: Ann has 40 and 2 more. (The answer is 42.)\nA:", "The answer is 42.")
    assert [block[a:b] for a, b in spans] == ["The answer is 42."]
    block, spans = _marks("Input:\n7 + 0\nAnswer: 7\nTarget:\n", "7")  # a bare number: its last place
    assert spans == [(block.rindex("7"), block.rindex("7") + 1)]
    assert _marks("Q: no hint here\nA:", "Answer: 3") == ("Q: no hint here\nA:", [])
    # only in an exemplar: its last place in the whole prompt, outside the block
    m = Q.hint_marks("Q: 1 (Answer: 3)\nA: 3\n\nQ: 2\nA:", "(Answer: 3)")
    assert not m.in_block and m.spans == [(5, 16)] and m.block_spans == []


def test_unreadable_stores_raise_run_unavailable(root):
    for bad in ("broken", "half"):
        with pytest.raises(Q.RunUnavailable):
            T.candidates(root / bad)
    assert T.as_bool("false") is False and T.as_bool("True") is True and T.as_bool(None) is None


# --------------------------------------------------------------------------
# the page
# --------------------------------------------------------------------------
@pytest.fixture
def env(root, monkeypatch, tmp_path):
    monkeypatch.setenv(Q.RUNS_ROOT_ENV, str(root))
    monkeypatch.setenv(Q.DEMO_RUNS_ENV, "0")
    monkeypatch.chdir(tmp_path)
    return root


def test_page_tells_the_picked_story_with_the_objective(env):
    run = env / "story"
    at = open_tour(run="story")
    assert at.title[0].value == "Teaching tour" and at.caption[0].value.startswith("One question followed")
    latex = texts(at, "latex")
    assert any(r"J = \sum_i \mathbb{E}[\mathbb{1}(\hat y_i = y_i)]" in x for x in latex)
    assert any(
        r"\nabla J = \sum_i \mathbb{E}[\mathbb{1}(\hat y_i = y_i)\,\nabla \log p(\hat y_i, \hat r_i \mid x_i)]" in x
        for x in latex
    )
    assert any("K = 1 + 2 = 3" in x for x in latex)
    assert at.selectbox(key="tour_q").value == "arithmetic::q-learn" and at.query_params["q"] == "arithmetic::q-learn"
    md = " ".join(texts(at, "markdown"))
    assert "Story: wrong → rationalized → learned" in md
    codes = texts(at, "code")
    first_out, rz_out = sql(
        run, "SELECT raw_output FROM samples WHERE question_id='q-learn' AND iteration=1 ORDER BY phase='rationalize'"
    )
    assert first_out[0] in codes and rz_out[0] in codes  # first attempt and rationalization, shown literally
    te_prompt, te_completion = sql(run, "SELECT prompt, completion FROM train_examples WHERE question_id='q-learn'")[0]
    assert te_prompt.rstrip() in codes and te_completion in codes  # st.code drops trailing whitespace
    assert "Answer: 12" in codes  # the hint
    hl = " ".join(texts(at, "html"))
    assert "<mark" in hl and ">Answer: 12</mark>" in hl and "[1 + 1" not in hl  # the last block, hint marked
    assert any("Right answer, wrong steps" in w for w in texts(at, "warning"))  # the unfaithful rationalization
    assert "• step 2: 5 + 6 is not 12" in codes
    assert any("learned this question" in x for x in texts(at, "success"))
    # the counts shown are the store's
    m = metrics(at)
    n_sampled, n_kept = sql(run, "SELECT count(*), sum(kept) FROM samples WHERE iteration=1 AND phase='sample'")[0]
    n_rz = sql(run, "SELECT count(*) FROM samples WHERE iteration=1 AND phase='rationalize' AND kept=1")[0][0]
    n_te = sql(run, "SELECT count(*) FROM train_examples WHERE iteration=1")[0][0]
    assert m["Sampled (N)"] == str(n_sampled) and m["Right: weight 1, kept"] == str(n_kept)
    assert m["Rescued by rationalization"] == str(n_rz) and m["Dropped: weight 0"] == str(n_sampled - n_kept)
    assert f"**K = {n_te}**" in md
    assert m["Eval accuracy, iteration 0 → 1"] == "50.0%"
    # iteration 2's numbers
    at.selectbox(key="tour_it").select("2").run()
    assert not at.exception
    m = metrics(at)
    assert m["Right: weight 1, kept"] == "2" and m["Rescued by rationalization"] == "0"
    assert m["Eval accuracy, iteration 1 → 2"] == "100.0%" and at.query_params["it"] == "2"


def test_page_says_what_was_kept_of_a_right_answer_with_wrong_steps(env):
    """The warning "kept and trained on" follows the sample's stored decision: never for an evaluation output,
    nor for a retry that reject_unfaithful rejected; and it stays for a rationalization that was kept."""

    def notes(at: AppTest) -> list[str]:
        return [x for x in texts(at, "warning") + texts(at, "info") if x.startswith("Right answer, wrong steps")]

    at = open_tour(run="strict", q="arithmetic::e-1")  # evaluation outputs only, right with wrong steps
    assert at.selectbox(key="tour_q").value == "arithmetic::e-1"
    ns = notes(at)
    assert len(ns) == 2 and all("evaluation output" in n and "nothing from it is trained on" in n for n in ns), ns
    assert not any("wrong steps" in w for w in texts(at, "warning"))  # a note, not a warning: nothing is kept

    at = open_tour(run="strict", q="arithmetic::q-learn")  # the hinted retry rejected as unfaithful
    ns = notes(at)
    assert any("rejected it (`reject_unfaithful`): it is not trained on" in n for n in ns), ns
    assert not any("trained on" in n and "not trained on" not in n for n in ns), ns

    at = open_tour(run="story", q="arithmetic::q-learn")  # the paper's rule: the unfaithful retry was kept
    assert any("was kept and is trained on" in w for w in texts(at, "warning"))


def test_page_shows_model_text_literally(env):
    at = open_tour(run="story")
    assert any(SCRIPT in c for c in texts(at, "code"))
    for m in texts(at, "markdown") + texts(at, "caption") + texts(at, "info") + texts(at, "warning"):
        assert "<script" not in m and "**bold**" not in m
    for h in texts(at, "html"):
        assert "<script" not in h


def test_page_picker_surprise_and_links(env):
    at = open_tour(run="story")
    at.selectbox(key="tour_q").select("arithmetic::q-rz").run()
    assert not at.exception and at.query_params["q"] == "arithmetic::q-rz"
    assert "Story: wrong → rationalized." in " ".join(texts(at, "markdown"))
    before = at.selectbox(key="tour_q").value
    at.button(key="tour_surprise").click().run()
    assert not at.exception and at.selectbox(key="tour_q").value != before
    assert at.query_params["q"] == at.selectbox(key="tour_q").value
    # a link opens the named question and iteration
    at = open_tour(run="story", q="arithmetic::q-wrong", it="2")
    assert at.selectbox(key="tour_q").value == "arithmetic::q-wrong" and at.selectbox(key="tour_it").value == "2"
    assert not texts(at, "info")  # the run has a full story; no fallback note


def test_page_fallbacks(env):
    at = open_tour(run="norz")
    assert any("Rationalization was off" in x for x in texts(at, "info"))
    assert metrics(at)["Rescued by rationalization"] == "off"
    assert "Story: wrong → learned" in " ".join(texts(at, "markdown"))

    at = open_tour(run="zero")
    infos = " ".join(texts(at, "info"))
    assert "Only iteration 0" in infos
    assert len(at.latex) == 2 and "Eval accuracy of the few-shot model (iteration 0)" in metrics(at)

    at = open_tour(run="live")
    assert any("No hinted retries are stored yet" in x for x in texts(at, "info"))
    assert "Rationalization has not run yet at this iteration (stage: sampled)" in " ".join(texts(at, "markdown"))
    assert any("M1 is not trained yet" in x for x in texts(at, "caption"))


def test_page_on_the_dashboard_fixture_run(env):
    run = env / "alpha"
    at = open_tour(run="alpha")
    pick = T.auto_pick(T.candidates(run))
    assert pick["kind"] == "learned" and at.selectbox(key="tour_q").value == pick["key"]
    it = int(at.selectbox(key="tour_it").value)
    fn = Q.funnel(run, it, pick["task"])
    m = metrics(at)
    assert m["Right: weight 1, kept"] == str(fn["correct"])
    assert m["Rescued by rationalization"] == str(fn["rationalized"])
    assert f"**K = {fn['kept']}**" in " ".join(texts(at, "markdown"))


@pytest.mark.parametrize("bad,kind,words", [("broken", "error", "cannot be read"), ("half", "info", "no run yet")])
def test_page_unreadable_run_is_a_message(env, bad, kind, words):
    at = open_tour(run=bad)
    assert any(words in m or "not a readable SQLite" in m for m in texts(at, kind))


def test_tour_never_imports_torch(env):
    code = f"""
import os, sys
os.environ["STAR_RUNS_ROOT"] = {str(env)!r}
os.environ["STAR_DEMO_RUNS"] = "0"
from streamlit.testing.v1 import AppTest
at = AppTest.from_file({str(APP)!r}, default_timeout=60)
at.query_params["run"] = "story"
at.switch_page({TOUR!r})
at.run()
assert not at.exception
assert "torch" not in sys.modules, "torch imported"
print("ok")
"""
    import subprocess

    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr[-2000:]


def test_the_warm_start_is_labelled_and_no_story(tmp_path, monkeypatch):
    run = F.build_run(
        tmp_path / "roots" / "warm", iterations=2, n_train=8, n_eval=6, warm_start=5, direct=True, payload=False
    )
    assert T.overview(run)["warm_start"] == 5
    cands = T.candidates(run)["candidates"]
    assert cands and not [c for c in cands if c["question_id"].startswith("warm-")]
    ev = sql(run, "SELECT question_id FROM samples WHERE phase='warm_eval' LIMIT 1")[0][0]
    s = T.story(run, "arithmetic", ev)
    it0 = s["iterations"][0]
    assert [x["phase"] for x in it0["eval"]] == ["eval"] and [x["phase"] for x in it0["warm"]] == ["warm_eval"]
    assert not it0["first"]  # the direct-answer evaluation is no part of the story
    n = T.objective_numbers(run, 1)
    warm_right = sql(run, "SELECT sum(correct), count(*) FROM samples WHERE phase='warm_eval'")[0]
    assert n["warm_examples"] == 5 and n["trained"] == n["K"] + 5
    assert (n["eval_prev"]["phase"], n["eval_prev"]["n_correct"], n["eval_prev"]["n"]) == ("warm_eval", *warm_right)
    assert T.objective_numbers(run, 2)["eval_prev"]["phase"] == "eval"
    # the page
    monkeypatch.setenv(Q.RUNS_ROOT_ENV, str(run.parent))
    monkeypatch.setenv(Q.DEMO_RUNS_ENV, "0")
    monkeypatch.chdir(tmp_path)
    at = open_tour(run="warm", it="1")
    info = " ".join(texts(at, "info"))
    assert "5 reference rationales of the warm start" in info and "not bootstrapped" in info
    assert "Eval accuracy, warm start → 1" in metrics(at)
    at = open_tour(run="warm", q=f"arithmetic::{ev}")  # an evaluation question: iteration 0 has its story
    md = " ".join(texts(at, "markdown"))
    assert "then the warm start fine-tunes M0 on 5 reference rationales" in md
    assert "**Evaluation after the warm start** (supervised, not bootstrapped), no hint" in md
