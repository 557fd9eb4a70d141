"""Every filter decision, table-driven, on real task objects."""

import pytest

from star_core.filtering import judge
from star_core.tasks import Problem, get_task

ARITH = get_task("arithmetic")
P47 = ARITH.make_problem(47, 38, "p47")
GSM = get_task("gsm8k")
PG = Problem("g1", "Tom has 3 apples and buys 4. How many?", "7", meta={})
CQA = get_task("commonsenseqa")
PC = Problem(
    "c1",
    "Where is money kept?",
    "B",
    meta={
        "stem": "Where is money kept?",
        "choices": [{"label": L, "text": t} for L, t in zip("ABCDE", ["pocket", "bank", "oven", "river", "shoe"])],
    },
)

GOOD = " 47 + 38 = (40 + 30) + (7 + 8) = 70 + 15 = 85. The answer is 85."
BARE = " 47 + 38 = 85. The answer is 85."  # no intermediate step
COPIED = " 47 + 38 = (40 + 30) + (7 + 8) = 70 + 14 = 84. The answer is 85."  # steps wrong, answer right

CASES = [
    # task, problem, phase, completion, truncated, reject_unfaithful, decision, kept, reason contains
    (ARITH, P47, "sample", GOOD, False, False, "correct", True, "all 6 steps hold"),
    (ARITH, P47, "sample", " 47 + 38 = 86. The answer is 86.", False, False, "wrong", False, "answered 86, gold is 85"),
    (ARITH, P47, "sample", " I think it is big.", False, False, "unparsable", False, "no final answer"),
    (
        ARITH,
        P47,
        "sample",
        " 47 + 38 = (40 + 30) + (7 + 8) = 70",
        True,
        False,
        "truncated",
        False,
        "max_new_tokens (96)",
    ),
    (ARITH, P47, "sample", GOOD, True, False, "truncated", False, "answer 85"),
    (ARITH, P47, "sample", COPIED, False, False, "correct", True, "audit:"),
    (ARITH, P47, "sample", COPIED, False, True, "unfaithful", False, "a step is wrong"),
    (ARITH, P47, "rationalize", GOOD, False, False, "rationalized", True, "with the hint"),
    (ARITH, P47, "rationalize", COPIED, False, False, "rationalized", True, "steps wrong"),
    (ARITH, P47, "rationalize", COPIED, False, True, "unfaithful", False, "a step is wrong"),
    (ARITH, P47, "rationalize", " The hint says 85. The answer is 85.", False, False, "hint_leak", False, "hint"),
    (ARITH, P47, "rationalize", " 47 + 38 = 84. The answer is 84.", False, False, "wrong", False, "gold is 85"),
    (ARITH, P47, "eval", GOOD, False, True, "correct", False, "matches gold"),
    (ARITH, P47, "eval", COPIED, False, True, "correct", False, "audit:"),  # eval never rejects on the audit
    (GSM, PG, "sample", " He has 3 + 4 = 7 apples.\n#### 7", False, False, "correct", True, "hold"),
    (GSM, PG, "sample", " He has 3 + 4 = 8 apples.\n#### 7", False, True, "unfaithful", False, "3 + 4 = 8"),
    (GSM, PG, "sample", " He has 3 + 4 = 7 apples.\n#### 1,234", False, False, "wrong", False, "answered 1234"),
    (GSM, PG, "rationalize", " (The answer is 7.) So 7.\n#### 7", False, False, "hint_leak", False, ""),
    (CQA, PC, "sample", " Money goes in a bank. So the answer is bank (b).", False, False, "correct", True, ""),
    (CQA, PC, "sample", " So the answer is oven (b).", False, True, "unfaithful", False, "names (c)"),
    (CQA, PC, "sample", " So the answer is oven (c).", False, False, "wrong", False, "answered C, gold is B"),
    (
        CQA,
        PC,
        "rationalize",
        " The bank is marked (CORRECT). So the answer is bank (b).",
        False,
        False,
        "hint_leak",
        False,
        "CORRECT",
    ),
    # no rationale: a bare answer or the question restated is kept by the paper's rule only
    (ARITH, P47, "sample", BARE, False, False, "correct", True, "audit: no rationale (no intermediate step"),
    (ARITH, P47, "sample", BARE, False, True, "no_rationale", False, "right answer 85 but no rationale"),
    (ARITH, P47, "sample", " The answer is 85.", False, True, "no_rationale", False, "no arithmetic steps"),
    (
        ARITH,
        P47,
        "rationalize",
        " 47 + 38 = (47 + 38) = 85. The answer is 85.",
        False,
        True,
        "no_rationale",
        False,
        "writes only the question and the answer",
    ),
    (ARITH, P47, "eval", BARE, False, True, "correct", False, "no rationale"),
    (GSM, PG, "sample", " He has 7 apples.\n#### 7", False, True, "no_rationale", False, "no equation"),
    (CQA, PC, "sample", " Money is kept safe in a bank (b).", False, True, "correct", True, ""),  # nothing checkable
]


@pytest.mark.parametrize("task, problem, phase, text, truncated, reject, decision, kept, needle", CASES)
def test_decisions(task, problem, phase, text, truncated, reject, decision, kept, needle):
    d = judge(task, problem, text, truncated, phase, max_new_tokens=96, reject_unfaithful=reject)
    assert (d.decision, d.kept) == (decision, kept), d.reason
    assert needle in d.reason
    assert d.correct == (d.parsed.answer == problem.gold)
    if d.kept:
        assert d.parsed.answer == problem.gold


def test_kept_text_is_cut_at_the_stop_string():
    d = judge(ARITH, P47, GOOD + "\nQ: What is 1 + 1?\nA: 2", False, "sample", 96)
    assert d.kept and d.text == GOOD


def test_unknown_phase_is_refused():
    with pytest.raises(ValueError):
        judge(ARITH, P47, GOOD, False, "train", 96)


def test_limit_per_question_keeps_the_first_distinct_ones():
    from star_core.filtering import limit_per_question

    texts = [" 1 + 2 = 3.", "1 +  2 = 3. ", " x = 3.", " y = 3."]
    kept = [
        {"id": 10 * n + k, "question_id": q, "k": k, "completion": t}
        for n, q in enumerate(("a", "b"), 1)
        for k, t in enumerate(texts)
    ]
    assert limit_per_question(kept, 0) == []
    got = {i: (d, r) for i, d, r in limit_per_question(kept, 2)}
    assert {i: d for i, (d, _) in got.items()} == {11: "duplicate", 13: "over_limit", 21: "duplicate", 23: "over_limit"}
    assert "sample k=0" in got[11][1] and "max_kept_per_question=2" in got[13][1]
    # sample order decides, not the order the rows come in
    assert sorted(limit_per_question(list(reversed(kept)), 2)) == sorted(limit_per_question(kept, 2))
    assert {i for i, _, _ in limit_per_question(kept, 1)} == {11, 12, 13, 21, 22, 23}
