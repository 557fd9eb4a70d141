"""Compare reads: questions matched by id across runs or iterations, the filters' counts, an escaped diff."""

from __future__ import annotations

import html
import re

import pytest

from helpers import dash_fixtures as F
from star_core.queries.comparison import FILTERS, compare, compare_choices, diff_html, diff_ops, filter_mask


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("cmp")
    a = F.build_run(d / "a", tasks=("arithmetic",), iterations=2, n_train=8, n_eval=12)
    b = F.build_run(d / "b", tasks=("arithmetic",), iterations=2, n_train=8, n_eval=16, payload=False)
    return a, b


def _eval(run, it):
    rows = F.sql(
        run,
        "SELECT question_id, id, correct, answer, coalesce(rationale, raw_output) FROM samples "
        "WHERE iteration=? AND phase='eval' AND task='arithmetic'",
        it,
    )
    return {r[0]: r[1:] for r in rows}


def test_two_iterations_of_one_run(runs):
    a, _ = runs
    res = compare(a, 0, a, 2, "arithmetic")
    A, B = _eval(a, 0), _eval(a, 2)
    both = sorted(set(A) & set(B))
    assert len(res["rows"]) == len(both) and res["only_b"] == 0
    assert res["only_a"] == len(set(A) - set(B)) == 1  # the payload question is evaluated at iteration 0 only
    exp = {
        "all": len(both),
        "a_right_b_wrong": sum(A[q][1] and not B[q][1] for q in both),
        "a_wrong_b_right": sum(not A[q][1] and B[q][1] for q in both),
        "answer_changed": sum((A[q][2] or "") != (B[q][2] or "") for q in both),
        "rationale_changed": sum(" ".join(A[q][3].split()) != " ".join(B[q][3].split()) for q in both),
    }
    assert res["counts"] == exp
    assert exp["a_right_b_wrong"] + exp["a_wrong_b_right"] > 0 and exp["rationale_changed"] > 0
    r = res["rows"].set_index("question_id")
    for q in both:
        assert (int(r.loc[q, "a_id"]), int(r.loc[q, "b_id"])) == (A[q][0], B[q][0])
    for name in FILTERS:  # each filter's rows are the ones counted
        assert int(filter_mask(res["rows"], name).sum()) == res["counts"][name]


def test_two_runs_with_different_question_sets_compare_the_overlap(runs):
    a, b = runs
    res = compare(a, 0, b, 1, "arithmetic")
    A, B = _eval(a, 0), _eval(b, 1)
    assert res["n_a"] == len(A) and res["n_b"] == len(B)
    assert res["only_a"] == len(set(A) - set(B)) == 1  # the payload question is only in run a
    assert res["only_b"] == len(set(B) - set(A)) == 4
    assert sorted(res["rows"]["question_id"]) == sorted(set(A) & set(B))


def test_compare_choices(runs):
    a, _ = runs
    c = compare_choices(a)
    ev = c[(c["phase"] == "eval")]
    assert ev["iteration"].tolist() == [0, 1, 2]
    assert int(ev["n"].iloc[0]) == F.sql(a, "SELECT count(*) FROM samples WHERE iteration=0 AND phase='eval'")[0][0]


def test_diff_marks_changed_words_and_escapes_everything():
    a = "47 + 38 = (40 + 30) + (7 + 8) = 70 + 15 = 85 <script>alert(1)</script>"
    b = "47 + 38 = 47 + 30 + 8 = 77 + 8 = 85 <img src=x onerror=alert(1)>"
    ops = diff_ops(a, b)
    assert "".join(x for _, x, _ in ops) == a and "".join(y for _, _, y in ops) == b
    ha, hb = diff_html(a, b)
    for h in (ha, hb):
        assert "<script" not in h and "<img" not in h
    ours = re.compile(r"</?(pre|del|ins)\b[^>]*>")  # the only tags diff_html adds
    assert html.unescape(ours.sub("", ha)) == a and html.unescape(ours.sub("", hb)) == b
    assert "<" not in ours.sub("", ha) + ours.sub("", hb)
    assert "<del" in ha and "<ins" in hb and "<ins" not in ha and "<del" not in hb
    same_a, same_b = diff_html("same text", "same text")
    assert "<del" not in same_a and "<ins" not in same_b


def test_diff_of_long_rationales_falls_back_to_plain_side_by_side():
    """Two 8,000-word rationales: no quadratic word diff (it took 44 s), the texts shown whole and escaped, no
    marks, and the fallback said (``diff_fits``); short texts still get their marks."""
    import random
    import time

    from star_core.queries.comparison import DIFF_MAX_TOKENS, diff_fits

    rnd = random.Random(0)
    words = [f"w{i}" for i in range(500)] + ["<b>", "&"]
    a = " ".join(rnd.choice(words) for _ in range(8000))
    b = " ".join(rnd.choice(words) for _ in range(8000))
    t0 = time.perf_counter()
    ha, hb = diff_html(a, b)
    assert time.perf_counter() - t0 < 5
    assert not diff_fits(a, b) and diff_fits("a b c", "a c d")
    assert "<del" not in ha + hb and "<ins" not in ha + hb and "<b>" not in ha + hb
    ours = re.compile(r"</?pre\b[^>]*>")
    assert html.unescape(ours.sub("", ha)) == a and html.unescape(ours.sub("", hb)) == b
    edge = " ".join(["x"] * (DIFF_MAX_TOKENS // 2))  # words and the spaces between: one token short of the cap
    assert diff_fits(edge, edge) and not diff_fits(edge + " x", edge)
    assert "<ins" in diff_html("a b", "a b c")[1]
