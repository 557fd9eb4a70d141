"""The tour tells only audited reasoning as learned: story choice from rationales that pass today's audit, a right
answer without a rationale told as "learned the answer, not the reasoning", a run audited under older rules
flagged, and the eval change with its n and paired p (coloured only when significant). Also the story the tour
picks on each recorded demo run."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.apptest import APP, AppTest, open_tour, texts
from helpers.tour_stores import FAITHFUL, eval_metrics, record
from star_core import queries as Q
from star_core import stats
from star_core.queries import tour as T
from star_core.store import RunStore

pytest.importorskip("streamlit.testing.v1")
from streamlit.proto.Metric_pb2 import Metric as MetricProto

ROOT = Path(__file__).resolve().parent.parent
DEMOS = ROOT / "sample_data" / "runs"
BARE = {
    "checked": 1,
    "errors": [],
    "faithful": False,
    "verdict": "no_rationale",
    "no_rationale": "only the answer",
    "version": Q.AUDIT_VERSION,
}
OLD = {"checked": 1, "errors": [], "faithful": True, "version": Q.AUDIT_VERSION - 1}


def build_audit_run(run_dir: Path, *, good_audit: dict, bare_audit: dict) -> Path:
    """Iteration 1: q-rz and q-learn wrong, both rescued by rationalization. Iteration 2: both right without a hint.
    q-rz's right answers carry ``good_audit``, q-learn's ``bare_audit``. Eval e-1, e-2 at each iteration."""
    st = RunStore(run_dir)
    st.create_run(run_dir.name, "arithmetic", "tiny", {"task": "arithmetic", "rationalize": True}, 2, "cpu (test)")
    audits = {"q-rz": good_audit, "q-learn": bare_audit}
    evals = {0: [False, False], 1: [True, False], 2: [True, True]}
    for it in range(3):
        st.begin_iteration(it, 40 if it else None)
        if it == 1:
            st.add_samples([record(1, "sample", q, False) for q in audits])
            st.set_stage(1, "sampled")
            st.add_samples([record(1, "rationalize", q, True, audit=a) for q, a in audits.items()])
            st.set_stage(1, "rationalized")
        if it == 2:
            st.add_samples([record(2, "sample", q, True, audit=a) for q, a in audits.items()])
            st.set_stage(2, "sampled")
        if it:
            st.finish_training(it, [(1, 1.0, 3e-4, 0.1)], f"adapters/iter_{it}", len(st.train_examples(it)))
        ev = [record(it, "eval", q, ok, audit=good_audit if ok else None) for q, ok in zip(("e-1", "e-2"), evals[it])]
        st.add_samples(ev)
        st.finish_iteration(it, eval_metrics(ev))
    st.set_status("finished")
    st.close()
    return run_dir


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    r = tmp_path_factory.mktemp("trust_runs")
    build_audit_run(r / "mixed", good_audit=FAITHFUL, bare_audit=BARE)
    build_audit_run(r / "old", good_audit=OLD, bare_audit=OLD)
    return r


@pytest.fixture
def env(root, monkeypatch, tmp_path):
    monkeypatch.setenv(Q.RUNS_ROOT_ENV, str(root))
    monkeypatch.setenv(Q.DEMO_RUNS_ENV, "0")
    monkeypatch.chdir(tmp_path)
    return root


def test_only_audited_reasoning_is_learned(root):
    c = T.candidates(root / "mixed")
    kinds = {x["question_id"]: x["kind"] for x in c["candidates"]}
    assert kinds["q-rz"] == "learned" and kinds["q-learn"] == "answer_only"
    assert T.auto_pick(c)["question_id"] == "q-rz"
    s = T.story(root / "mixed", "arithmetic", "q-learn")
    assert s["kind"] == "answer_only" and s["learned_iteration"] == 2


def test_an_older_audit_is_never_learned(root):
    """A "faithful" stored under older rules does not pass: nothing is learned, and the run is flagged."""
    c = T.candidates(root / "old")
    assert c["counts"]["learned"] == 0 and c["counts"]["self_learned"] == 0 and c["best_kind"] == "answer_only"
    b = Q.run_brief(root / "old")
    assert b["audit_version"] == Q.AUDIT_VERSION - 1 and b["audit_outdated"]
    b = Q.run_brief(root / "mixed")
    assert b["audit_version"] == Q.AUDIT_VERSION and not b["audit_outdated"]


def test_page_tells_a_bare_answer_without_celebration(env):
    at = open_tour(run="mixed", q="arithmetic::q-learn")
    assert at.selectbox(key="tour_q").value == "arithmetic::q-learn"
    assert any("learned the answer, not the reasoning" in w for w in texts(at, "warning"))
    assert not any("learned this question" in x for x in texts(at, "success"))
    at = open_tour(run="mixed")
    assert at.selectbox(key="tour_q").value == "arithmetic::q-rz"
    assert any("passes the audit: STaR has learned this question" in x for x in texts(at, "success"))
    assert not any("Audited under older rules" in w for w in texts(at, "warning"))


def test_page_flags_an_older_audit(env):
    at = open_tour(run="old")
    warnings = " ".join(texts(at, "warning"))
    assert "Audited under older rules" in warnings and f"now version {Q.AUDIT_VERSION}" in warnings
    assert not texts(at, "success")
    assert "⚠ old audit" in at.sidebar.selectbox[0].format_func(at.sidebar.selectbox[0].value)


def test_the_tour_change_carries_n_and_its_paired_p(env):
    """Iteration 0 → 1 on the eval questions: e-1 gained, nothing lost; p from the exact McNemar test, uncoloured."""
    at = open_tour(run="mixed", q="arithmetic::q-rz", it="1")
    m = next(x for x in at.metric if x.label.startswith("Eval accuracy"))
    p = stats.mcnemar(0, 1)
    assert f"+1 −0 of 2 paired questions, p = {p:.2g}" in m.delta
    assert not stats.significant(p) and m.proto.color == MetricProto.MetricColor.GRAY  # uncoloured
    assert "(1/2)" in m.help  # the accuracy with its n


def _learned_sample(s: dict) -> dict | None:
    it = next(x for x in s["iterations"] if x["iteration"] == s["learned_iteration"])
    return next((x for x in it["first"] + it["eval"] if T.passes_audit(x)), None)


@pytest.mark.parametrize("name", (DEMOS / Q.ORDER_FILE).read_text().split())
def test_the_story_picked_on_each_demo_run(name):
    """The tour's automatic pick on each recorded run: a story told as learned has a rationale that passes
    today's audit at the iteration it is learned; a run audited under older rules tells none as learned."""
    run = DEMOS / name
    pick = T.auto_pick(T.candidates(run))
    assert pick is not None
    s = T.story(run, pick["task"], pick["question_id"])
    assert s["kind"] == pick["kind"]
    if s["kind"] in ("learned", "self_learned"):
        smp = _learned_sample(s)
        assert smp is not None and smp["audit"]["verdict"] == "faithful"
        assert smp["audit"]["version"] >= Q.AUDIT_VERSION
    if Q.run_brief(run)["audit_outdated"]:
        assert s["kind"] not in ("learned", "self_learned", "rationalized")


def _open(page: str, **params):
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.query_params.update({k: str(v) for k, v in params.items()})
    at.switch_page(f"app_pages/{page}.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.mark.parametrize("page", ["runs", "accuracy"])
def test_runs_and_accuracy_flag_an_older_audit(env, page):
    at = _open(page, run="old")
    assert any("Audited under older rules" in w for w in texts(at, "warning"))
    at = _open(page, run="mixed")
    assert not any("Audited under older rules" in w for w in texts(at, "warning"))


def test_accuracy_captions_use_the_runs_own_n(env):
    at = _open("accuracy", run="mixed")
    caps = " ".join(texts(at, "caption"))
    n = 2  # evaluation questions paired in this run
    lo, hi = stats.wilson(n // 2, n)
    assert f"On these {n} evaluation questions a 95 % interval is about ±{100 * (hi - lo) / 2:.0f} points" in caps
    assert "On 30 questions" not in caps
    table = next(d.value for d in at.dataframe if "p_value" in d.value.columns)
    assert list(table.columns[:4]) == ["gained", "lost", "p_value", "significant"]  # the numbers lead


def test_rejections_grouped_by_kind():
    from star_dashboard import reasons as R

    g = R.group({"correct": 5, "wrong": 7, "truncated": 2, "no_rationale": 1}, {"wrong": 3, "hint_leak": 4, "odd": 1})
    assert [(x["kind"], x["n"]) for x in g] == [
        ("wrong answer", 10),
        ("hint leak", 4),
        ("truncated", 2),
        ("no rationale", 1),
        ("other", 1),
    ]
    assert g[0]["parts"] == [("sample", "wrong", 7), ("rationalize", "wrong", 3)]
    assert R.group({"correct": 3}, {}) == []
