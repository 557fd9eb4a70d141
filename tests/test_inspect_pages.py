"""The inspector's pages in AppTest: Compare, annotating while reading, downloads, the annotation filter."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import dash_fixtures as F
from star_core import queries as Q
from star_core.annotations import Annotations, agreement
from star_core.queries.comparison import FILTERS, compare

pytest.importorskip("streamlit.testing.v1")
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app.py"
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    r = tmp_path_factory.mktemp("inspect_runs")
    F.build_run(r / "alpha", tasks=("arithmetic", "commonsenseqa"), iterations=2, n_train=10, n_eval=8)
    F.build_run(r / "beta", tasks=("arithmetic",), iterations=1, n_train=6, n_eval=10, seed=0, payload=False)
    return r


@pytest.fixture
def env(root, monkeypatch, tmp_path):
    from streamlit import config

    for var in ("STAR_DASHBOARD_LAUNCH", "STAR_DASHBOARD_TOKEN", "STAR_DASHBOARD_MAX_RUNS"):
        monkeypatch.delenv(var, raising=False)
    old = config.get_option("server.address")
    config.set_option("server.address", "127.0.0.1")
    monkeypatch.setenv("STAR_RUNS_ROOT", str(root))
    monkeypatch.setenv(Q.DEMO_RUNS_ENV, "0")
    monkeypatch.chdir(tmp_path)
    yield root
    config.set_option("server.address", old)


def open_page(page: str, **params) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.query_params.update({k: str(v) for k, v in params.items()})
    at.switch_page(f"app_pages/{page}.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _codes(at: AppTest) -> list[str]:
    return [str(c.value) for c in at.code]


def test_compare_two_iterations_with_counts_and_url(env):
    run = env / "alpha"
    res = compare(run, 0, run, 2, "arithmetic", "eval")
    at = open_page(
        "compare", run="alpha", ra="alpha", ia=0, rb="alpha", ib=2, task="arithmetic", phase="eval", f="a_wrong_b_right"
    )
    sel = at.selectbox(key="cmp_f")
    assert sel.value == "a_wrong_b_right"
    for k in FILTERS:  # each filter is offered with its count
        assert f"{FILTERS[k]} ({res['counts'][k]:,})" in sel.options
    rows = res["rows"][~res["rows"]["a_correct"] & res["rows"]["b_correct"]]
    assert len(rows) >= 1
    first = rows.iloc[0]
    assert at.query_params["qid"] == [first["question_id"]] or at.query_params["qid"] == first["question_id"]
    assert any(f"Question 1 of {len(rows)}" in m.value for m in at.markdown)
    assert first["question"] in _codes(at)
    htmls = [h.proto.body for h in at.get("html")]
    assert len(htmls) == 2 and all("star-diff" in h for h in htmls)
    assert len(at.download_button) == 2
    # Next moves to the second question of the filter, and the URL says which
    if len(rows) > 1:
        at.button(key="cmp_next").click().run()
        q = at.query_params["qid"]
        assert (q[0] if isinstance(q, list) else q) == rows.iloc[1]["question_id"]


def test_compare_runs_with_different_questions_shows_the_overlap(env):
    at = open_page("compare", run="alpha", ra="alpha", ia=0, rb="beta", ib=1, task="arithmetic", phase="eval")
    res = compare(env / "alpha", 0, env / "beta", 1, "arithmetic", "eval")
    assert res["only_a"] and res["only_b"]
    info = " ".join(str(i.value) for i in at.info)
    assert f"{len(res['rows']):,} are in both" in info
    assert f"{res['only_a']:,} only in A and {res['only_b']:,} only in B" in info


def test_compare_escapes_model_text(env):
    sid = F.sql(env / "alpha", "SELECT id FROM samples WHERE question_id=? AND phase='eval'", F.PAYLOAD_QID)[0][0]
    at = open_page(
        "compare", run="alpha", ra="alpha", ia=0, rb="alpha", ib=0, task="arithmetic", phase="eval", qid=F.PAYLOAD_QID
    )
    assert any("Payload question <script>" in c for c in _codes(at))
    for h in at.get("html"):
        assert "<script" not in h.proto.body and "<img" not in h.proto.body
    assert sid


def test_two_sessions_annotate_the_same_sample_without_losing_a_write(env):
    run = env / "alpha"
    res = compare(run, 0, run, 1, "arithmetic", "eval")
    qid, sid = res["rows"].iloc[0]["question_id"], int(res["rows"].iloc[0]["a_id"])
    params = dict(run="alpha", ra="alpha", ia=0, rb="alpha", ib=1, task="arithmetic", phase="eval", qid=qid)
    one, two = open_page("compare", **params), open_page("compare", **params)
    one.segmented_control(key=f"cmp_ann_a_{sid}_label").set_value("unfaithful").run()
    two.multiselect(key=f"cmp_ann_a_{sid}_tags").set_value(["interesting"]).run()
    two.text_area(key=f"cmp_ann_a_{sid}_note").input("the carry is dropped").run()
    assert not one.exception and not two.exception
    assert Annotations(run).get(sid) == {"label": "unfaithful", "note": "the carry is dropped", "tags": ["interesting"]}
    one.run()  # the first tab shows what the second wrote
    assert one.multiselect(key=f"cmp_ann_a_{sid}_tags").value == ["interesting"]
    assert two.segmented_control(key=f"cmp_ann_a_{sid}_label").value in (None, "unfaithful")
    two.run()
    assert two.segmented_control(key=f"cmp_ann_a_{sid}_label").value == "unfaithful"
    assert "annotations.sqlite" in os.listdir(run) and F.sql(
        run, "SELECT count(*) FROM sqlite_master WHERE name LIKE '%annot%'"
    ) == [(0,)]
    Annotations(run).set_label(sid, None)
    Annotations(run).remove_tag(sid, "interesting")
    Annotations(run).set_note(sid, None)
    assert agreement(run)["labelled"] == 0


def test_rationales_annotate_filter_and_download(env):
    run = env / "alpha"
    ids = [r[0] for r in F.sql(run, "SELECT id FROM samples WHERE iteration=1 AND phase='eval' ORDER BY id")]
    at = open_page("rationales", run="alpha", it=1, phase="eval", sid=ids[2])
    at.segmented_control(key=f"rat_ann_{ids[2]}_label").set_value("no_rationale").run()
    at.multiselect(key=f"rat_ann_{ids[2]}_tags").set_value(["interesting"]).run()
    assert not at.exception
    assert Annotations(run).get(ids[2])["label"] == "no_rationale"
    assert {b.proto.label for b in at.download_button} == {"CSV", "JSONL"}
    # the annotation filter: only the annotated sample is left, and the URL carries it
    at = open_page("rationales", run="alpha", it=1, phase="eval", ann="tag:interesting")
    assert any("Sample 1 of 1" in m.value for m in at.markdown)
    q = at.query_params["ann"]
    assert (q[0] if isinstance(q, list) else q) == "tag:interesting"
    at = open_page("rationales", run="alpha", ann="no_rationale")
    assert any("Sample 1 of 1" in m.value for m in at.markdown)
    Annotations(run).set_label(ids[2], None)
    Annotations(run).remove_tag(ids[2], "interesting")


def test_accuracy_shows_agreement_with_the_audit(env):
    run = env / "alpha"
    rows = F.sql(
        run,
        "SELECT id, json_extract(audit_json, '$.verdict') FROM samples WHERE "
        "json_extract(audit_json, '$.verdict') IN ('faithful', 'unfaithful') ORDER BY id LIMIT 4",
    )
    a = Annotations(run)
    for sid, v in rows[:3]:
        a.set_label(sid, v)
    a.set_label(rows[3][0], "no_rationale")
    at = open_page("accuracy", run="alpha")
    g = agreement(run)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Samples with both verdicts"] == "4" and metrics["Agree"] == "75 % (3/4)"
    assert metrics["Cohen's kappa"] == f"{g['kappa']:.2f}"
    for sid, _ in rows:
        a.set_label(sid, None)


def test_compare_says_when_rationales_are_too_long_to_diff(env, tmp_path, monkeypatch):
    """Two 8,000-word rationales: the page answers at once, both texts whole, no marks, and says why."""
    import sqlite3
    import time

    root = tmp_path / "long"
    run = F.build_run(root / "long", tasks=("arithmetic",), iterations=1, n_train=4, n_eval=3)
    qid = F.sql(run, "SELECT question_id FROM samples WHERE phase='eval' ORDER BY id LIMIT 1")[0][0]
    with sqlite3.connect(run / "store.sqlite") as con:
        for it in (0, 1):
            text = " ".join(f"w{(i * (it + 3)) % 997}" for i in range(8000))
            con.execute(
                "UPDATE samples SET rationale=? WHERE phase='eval' AND iteration=? AND question_id=?", (text, it, qid)
            )
    monkeypatch.setenv("STAR_RUNS_ROOT", str(root))
    t0 = time.perf_counter()
    at = open_page("compare", run="long", ra="long", ia=0, rb="long", ib=1, task="arithmetic", phase="eval", qid=qid)
    assert time.perf_counter() - t0 < 30
    assert any("too long to mark word by word" in c.value for c in at.caption)
    bodies = [h.proto.body for h in at.get("html")]
    assert bodies and not any("<del" in b or "<ins" in b for b in bodies)
