"""Arithmetic task: formats, parsing, the rationale audit, hint leaks, generation and loading."""

import json
import sys

import pytest

from star_core.tasks import DataError, Parsed, get_task
from star_core.tasks.arithmetic import ArithmeticTask

FORMATS = ["decomposition", "columns", "carry", "scratchpad"]


def task(fmt="decomposition", **kw) -> ArithmeticTask:
    return get_task("arithmetic", format=fmt, **kw)


def prob(a, b, fmt="decomposition"):
    return task(fmt).make_problem(a, b, f"t-{a}+{b}")


# ---- prompt formats ------------------------------------------------------------


@pytest.mark.parametrize(
    "fmt, a, b, question, target",
    [
        (
            "decomposition",
            47,
            38,
            "Q: What is 47 + 38?\nA:",
            " 47 + 38 = (40 + 30) + (7 + 8) = 70 + 15 = 85. The answer is 85.",
        ),
        (
            "decomposition",
            347,
            258,
            "Q: What is 347 + 258?\nA:",
            " 347 + 258 = (300 + 200) + (40 + 50) + (7 + 8) = 500 + 90 + 15 = 605. The answer is 605.",
        ),
        ("decomposition", 3, 5, "Q: What is 3 + 5?\nA:", " 3 + 5 = 8. The answer is 8."),
        (
            "columns",
            47,
            38,
            "Q: What is 47 + 38?\nA:",
            " Add the ones: 7 + 8 = 15, write 5 carry 1. Add the tens: 4 + 3 + 1 = 8, write 8. The answer is 85.",
        ),
        (
            "columns",
            95,
            17,
            "Q: What is 95 + 17?\nA:",
            " Add the ones: 5 + 7 = 12, write 2 carry 1. Add the tens: 9 + 1 + 1 = 11, write 1 carry 1."
            " Write the last carry 1. The answer is 112.",
        ),
        (  # the trace, literally
            "carry",
            47,
            38,
            "Q: What is 47 + 38?\nA:",
            " 47 + 38, carry 0, result none.\n7 + 8 + 0 = 15, digit 5, carry 1. Left 4 + 3, result 5.\n"
            "4 + 3 + 1 = 8, digit 8, carry 0. Left none, result 85.\nCarry 0, result 85.\nThe answer is 85.",
        ),
        (  # operands zero-padded to one length; the last carry written in front
            "carry",
            95,
            7,
            "Q: What is 95 + 7?\nA:",
            " 95 + 07, carry 0, result none.\n5 + 7 + 0 = 12, digit 2, carry 1. Left 9 + 0, result 2.\n"
            "9 + 0 + 1 = 10, digit 0, carry 1. Left none, result 02.\nCarry 1, result 102.\nThe answer is 102.",
        ),
        (
            "scratchpad",
            29,
            57,
            "Input:\n2 9 + 5 7\nTarget:",
            "\n<scratch>\n2 9 + 5 7 , C: 0\n2 + 5 , 6 C: 1\n, 8 6 C: 0\n</scratch>\n8 6",
        ),
        (
            "scratchpad",
            95,
            17,
            "Input:\n9 5 + 1 7\nTarget:",
            "\n<scratch>\n9 5 + 1 7 , C: 0\n9 + 1 , 2 C: 1\n, 1 2 C: 1\n</scratch>\n1 1 2",
        ),
    ],
)
def test_prompt_formats(fmt, a, b, question, target):
    t = task(fmt)
    p = prob(a, b, fmt)
    assert t.format_question(p) == question
    assert t.format_target(t.reference_rationale(p), p.gold) == target
    parsed = t.parse(target)
    assert parsed.answer == str(a + b)
    # audit v3: a 1-digit decomposition (``3 + 5 = 8.``) shows no intermediate step
    bare = fmt == "decomposition" and p.group == "1"
    assert t.audit(p, parsed).verdict == ("no_rationale" if bare else "faithful")


@pytest.mark.parametrize(
    "fmt, hinted",
    [
        ("decomposition", "Q: What is 47 + 38? (Hint: the answer is 85.)\nA:"),
        ("columns", "Q: What is 47 + 38? (Hint: the answer is 85.)\nA:"),
        ("carry", "Q: What is 47 + 38? (Hint: the answer is 85.)\nA:"),
        ("scratchpad", "Input:\n4 7 + 3 8 (Hint: the answer is 8 5)\nTarget:"),
    ],
)
def test_hinted_question(fmt, hinted):
    t = task(fmt)
    p = prob(47, 38, fmt)
    assert t.format_question(p, hint=True) == hinted
    assert "85" in t.hint_text(p).replace(" ", "")


@pytest.mark.parametrize("fmt", FORMATS)
def test_few_shot_prefix_round_trips(fmt):
    t = task(fmt, train_digits=(1, 5))
    if fmt == "carry":  # by default one exemplar of every length, as in the paper (a 1-digit trace has a step)
        exs = t.exemplars()
        assert [e.problem.group for e in exs] == ["1", "2", "3", "4", "5"]
    else:
        exs = t.exemplars(4)
        assert [e.problem.group for e in exs] == ["2", "3", "4", "5"]  # from 2 digits up: every one shows steps
    for hint in (False, True):
        prefix = t.few_shot_prefix(exs, hint=hint)
        blocks = prefix.split("\n\n")
        assert blocks[-1] == "" and len(blocks) == len(exs) + 1
        for e, block in zip(exs, blocks):
            q = t.format_question(e.problem, hint=hint)
            assert block.startswith(q)
            completion = block[len(q) :]
            assert completion == t.format_target(e.rationale, e.answer)
            assert t.trim(completion + "\n\nQ: more") == completion
            parsed = t.parse(completion)
            assert parsed.answer == e.problem.gold
            assert t.audit(e.problem, parsed).faithful is True
            assert t.hint_leak(e.problem, completion) is None


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("split", ["train", "eval"])
def test_generated_reference_rationales_parse_and_audit(fmt, split):
    t = task(fmt)
    for p in t.load(split, limit=120, seed=3):
        parsed = t.parse(t.format_target(t.reference_rationale(p), p.gold))
        assert parsed.answer == p.gold
        a = t.audit(p, parsed)
        bare = fmt == "decomposition" and p.group == "1"  # ``3 + 5 = 8.``: no intermediate step (audit v3)
        assert a.verdict == ("no_rationale" if bare else "faithful") and a.first_bad_line is None, (p, a)


# ---- parsing -------------------------------------------------------------------


@pytest.mark.parametrize(
    "completion, answer, rationale",
    [
        (" 47 + 38 = 85. The answer is 85.", "85", "47 + 38 = 85."),
        ("The answer is 1,234.", "1234", ""),
        ("the answer is 85", "85", ""),  # lowercase, no period
        ("The answer is: 85.", "85", ""),
        ("The answer is 8 5.", "85", ""),  # digits spaced out
        ("The answer is 0085.", "85", ""),  # leading zeros
        ("The answer is -7.", "-7", ""),  # negatives
        ("I think the answer is 84. Wait, the answer is 85. Q: What", "85", "I think the answer is 84. Wait,"),
        ("The answer is 85 apples and 3 pears.", "85", ""),  # extra text after the answer
        ("47 + 38 = 85.", None, "47 + 38 = 85."),  # no answer sentence
        ("The answer is unknown.", None, "The answer is unknown."),
        ("", None, ""),
    ],
)
def test_parse(completion, answer, rationale):
    parsed = task().parse(completion)
    assert parsed.answer == answer
    assert parsed.rationale == rationale


@pytest.mark.parametrize(
    "completion, answer",
    [
        ("\n<scratch>\n2 9 + 5 7 , C: 0\n2 + 5 , 6 C: 1\n, 8 6 C: 0\n</scratch>\n8 6", "86"),
        ("\n<scratch>\n, 8 6 C: 0\n</scratch>\n1,086\n\nInput:", "1086"),
        ("\n<scratch>\n2 9 + 5 7 , C: 0\n</scratch>", None),  # no digits after </scratch>
        ("\n<scratch>\n...\nThe answer is 86.", "86"),  # falls back to "The answer is"
    ],
)
def test_parse_scratchpad(completion, answer):
    assert task("scratchpad").parse(completion).answer == answer


@pytest.mark.parametrize(
    "answer, gold, ok",
    [
        ("85", "85", True),
        ("085", "85", True),
        ("84", "85", False),
        (None, "85", False),
    ],
)
def test_is_correct(answer, gold, ok):
    assert task().is_correct(answer, gold) is ok


# ---- the rationale audit -----------------------------------------------------------


@pytest.mark.parametrize(
    "completion, verdict, errors",
    [
        (" 47 + 38 = (40 + 30) + (7 + 8) = 70 + 15 = 85. The answer is 85.", "faithful", []),
        # a wrong step
        (
            " 47 + 38 = (40 + 30) + (7 + 8) = 70 + 14 = 84. The answer is 84.",
            "unfaithful",
            ["(7 + 8) = 14 is wrong: 7 + 8 = 15"],
        ),
        (
            " 47 + 38 = (40 + 30) + (7 + 8) = 70 + 15 = 84. The answer is 84.",
            "unfaithful",
            ["70 + 15 = 84 is wrong: 70 + 15 = 85"],
        ),
        # the answer copied from the hint while the steps are wrong
        (
            " 47 + 38 = (40 + 30) + (7 + 8) = 70 + 14 = 84. The answer is 85.",
            "unfaithful",
            ["(7 + 8) = 14 is wrong: 7 + 8 = 15", "the steps end at 84 but the answer says 85"],
        ),
        # right steps, then a different answer
        (
            " 47 + 38 = (40 + 30) + (7 + 8) = 70 + 15 = 85. The answer is 86.",
            "unfaithful",
            ["the steps end at 85 but the answer says 86"],
        ),
        # the chain starts from another problem
        (
            " 47 + 39 = (40 + 30) + (7 + 9) = 70 + 16 = 86. The answer is 85.",
            "unfaithful",
            ["the steps start from 47 + 39, not the problem's 47 + 38", "the steps end at 86 but the answer says 85"],
        ),
        # operands in the other order are fine
        (" 38 + 47 = (30 + 40) + (8 + 7) = 70 + 15 = 85. The answer is 85.", "faithful", []),
        # one intermediate step is enough
        (" 47 + 38 = 47 + 30 + 8 = 77 + 8 = 85. The answer is 85.", "faithful", []),
        # no step at all, a bare answer, the question restated (in any order): no rationale
        (" The answer is 85.", "no_rationale", []),
        (" 47 + 38 = 85. The answer is 85.", "no_rationale", []),
        (" 47 + 38 = (47 + 38) = 85. The answer is 85.", "no_rationale", []),
        (" 47 + 38 = 38 + 47 + 0 = 85 = 85. The answer is 85.", "no_rationale", []),
        # a wrong bare answer is unfaithful: a wrong step outweighs a missing one
        (
            " 47 + 38 = 86. The answer is 85.",
            "unfaithful",
            ["47 + 38 = 86 is wrong: 47 + 38 = 85", "the steps end at 86 but the answer says 85"],
        ),
    ],
)
def test_audit_decomposition(completion, verdict, errors):
    t = task()
    p = prob(47, 38)
    a = t.audit(p, t.parse(completion))
    assert a.verdict == verdict and a.faithful is (verdict == "faithful")
    assert list(a.errors) == errors
    if verdict == "no_rationale":
        assert "no " in a.no_rationale  # the reason, in words


@pytest.mark.parametrize(
    "a, b, completion, verdict",
    [
        (3, 5, " 3 + 5 = 8. The answer is 8.", "no_rationale"),  # audit v3: a 1-digit sum needs a step too
        (5, 0, " 5 + 0 = 5. The answer is 5.", "no_rationale"),
        (3, 5, " The answer is 8.", "no_rationale"),
        (4, 0, " 4 + 0 = (4 + 0) + (0 + 0) = 4o. The answer is 4.", "unfaithful"),  # garbage is never faithful
        (7386, 8090, " 7386 + 8090 = 15476. The answer is 15476.", "no_rationale"),
        (47, 5, " 47 + 5 = (40 + 0) + (7 + 5) = 40 + 12 = 52. The answer is 52.", "faithful"),
        (47, 5, " 47 + 5 = 52. The answer is 52.", "no_rationale"),  # 2 digits: max of the operands
    ],
)
def test_audit_needs_an_intermediate_step_at_every_length(a, b, completion, verdict):
    t = task()
    assert t.audit(prob(a, b), t.parse(completion)).verdict == verdict


@pytest.mark.parametrize(
    "fmt, completion",
    [
        ("columns", " The answer is 85."),
        ("scratchpad", " 8 5"),
        ("scratchpad", "\n<scratch>\n</scratch>\n8 5"),
    ],
)
def test_audit_of_other_formats_without_steps_is_no_rationale(fmt, completion):
    t = task(fmt)
    a = t.audit(prob(47, 38, fmt), Parsed(completion, "85"))
    assert a.verdict == "no_rationale" and a.errors == () and a.checked == 0


@pytest.mark.parametrize(
    "completion, errors",
    [
        (" Add the ones: 7 + 8 = 15, write 5 carry 1. Add the tens: 4 + 3 + 1 = 8, write 8. The answer is 85.", []),
        # wrong carry: the tens then add without it
        (
            " Add the ones: 7 + 8 = 15, write 5. Add the tens: 4 + 3 = 7, write 7. The answer is 75.",
            [
                "column 1 (ones): wrote 5 carry 0, expected 5 carry 1",
                "column 2 (tens): added 4 + 3, expected 4 + 3 + 1",
                "column 2 (tens): wrote 7 carry 0, expected 8 carry 0",
            ],
        ),
        # wrong sum in a step
        (
            " Add the ones: 7 + 8 = 14, write 4 carry 1. Add the tens: 4 + 3 + 1 = 8, write 8. The answer is 84.",
            ["7 + 8 = 14 is wrong: 7 + 8 = 15", "column 1 (ones): wrote 4 carry 1, expected 5 carry 1"],
        ),
        # copied answer, wrong steps
        (
            " Add the ones: 7 + 8 = 14, write 4 carry 1. Add the tens: 4 + 3 + 1 = 8, write 8. The answer is 85.",
            [
                "7 + 8 = 14 is wrong: 7 + 8 = 15",
                "column 1 (ones): wrote 4 carry 1, expected 5 carry 1",
                "the written digits give 84 but the answer says 85",
            ],
        ),
        # a missing column
        (" Add the ones: 7 + 8 = 15, write 5 carry 1. The answer is 85.", ["column 2 (tens) is missing"]),
    ],
)
def test_audit_columns(completion, errors):
    t = task("columns")
    a = t.audit(prob(47, 38, "columns"), t.parse(completion))
    assert list(a.errors) == errors
    assert a.faithful is (not errors)


def test_audit_columns_final_carry():
    t = task("columns")
    p = prob(95, 17, "columns")
    good = t.format_target(t.reference_rationale(p), "112")
    assert t.audit(p, t.parse(good)).faithful is True
    missing = good.replace(" Write the last carry 1.", "")
    a = t.audit(p, t.parse(missing))
    assert "the final carry 1 is not written" in a.errors


@pytest.mark.parametrize(
    "scratch, answer, errors",
    [
        ("2 9 + 5 7 , C: 0\n2 + 5 , 6 C: 1\n, 8 6 C: 0", "8 6", []),
        # wrong carry in column 1
        (
            "2 9 + 5 7 , C: 0\n2 + 5 , 6 C: 0\n, 7 6 C: 0",
            "7 6",
            ["column 1: wrote 6 carry 0, expected 6 carry 1", "column 2: wrote 7 carry 0, expected 8 carry 0"],
        ),
        # wrong digit, answer copied from the hint
        (
            "2 9 + 5 7 , C: 0\n2 + 5 , 5 C: 1\n, 8 5 C: 0",
            "8 6",
            [
                "column 1: wrote 5 carry 1, expected 6 carry 1",
                "column 2: line ', 8 5 C: 0' should read ', 8 6 C: 0'",
                "the scratchpad gives 8 5 but the answer says 8 6",
            ],
        ),
        # the input restated wrongly
        (
            "2 9 + 5 8 , C: 0\n2 + 5 , 6 C: 1\n, 8 6 C: 0",
            "8 6",
            ["first line '2 9 + 5 8 , C: 0' should read '2 9 + 5 7 , C: 0'"],
        ),
        ("2 9 + 5 7 , C: 0", "8 6", ["column 1 is missing", "column 2 is missing"]),
    ],
)
def test_audit_scratchpad(scratch, answer, errors):
    t = task("scratchpad")
    completion = f"\n<scratch>\n{scratch}\n</scratch>\n{answer}"
    a = t.audit(prob(29, 57, "scratchpad"), t.parse(completion))
    assert list(a.errors) == errors
    assert a.faithful is (not errors)


def test_audit_counts_steps():
    t = task()
    p = prob(347, 258)
    a = t.audit(p, t.parse(t.format_target(t.reference_rationale(p), "605")))
    # start + 3 links (one whole, three reduction terms, one whole) + end
    assert a.checked == 1 + 1 + 3 + 1 + 1


# ---- hint leaks ---------------------------------------------------------------


@pytest.mark.parametrize(
    "completion, leaks",
    [
        (" 47 + 38 = (40 + 30) + (7 + 8) = 70 + 15 = 85. The answer is 85.", False),
        (" The hint says 85. The answer is 85.", True),
        (" As the HINT shows, 47 + 38 = 85. The answer is 85.", True),
        (" The answer is given as 85. The answer is 85.", True),
        (" We are told the answer is 85. The answer is 85.", True),
    ],
)
def test_hint_leak(completion, leaks):
    t = task()
    assert (t.hint_leak(prob(47, 38), completion) is not None) is leaks


# ---- decoding ------------------------------------------------------------------


@pytest.mark.parametrize(
    "fmt, completion, complete, trimmed",
    [
        ("decomposition", " 3 + 5 = 8. The answer is 8.", True, " 3 + 5 = 8. The answer is 8."),
        ("decomposition", " 3 + 5 = 8. The answer is 8", False, " 3 + 5 = 8. The answer is 8"),
        ("decomposition", " 3 + 5 = 8. The answer is 8.\nQ: What", True, " 3 + 5 = 8. The answer is 8."),
        ("decomposition", " 3 + 5 = 8. The answer is 8. Q: What is", True, " 3 + 5 = 8. The answer is 8."),
        ("decomposition", " 3 + 5 = 8", False, " 3 + 5 = 8"),
        ("decomposition", "\n 3 + 5 = 8. The answer is 8.\nQ:", True, "\n 3 + 5 = 8. The answer is 8."),
        ("scratchpad", "\n<scratch>\n, 8 C: 0\n</scratch>\n8\n", True, "\n<scratch>\n, 8 C: 0\n</scratch>\n8"),
        (
            "scratchpad",
            "\n<scratch>\n, 8 C: 0\n</scratch>\n8\n\nInput:\n1 + 1",
            True,
            "\n<scratch>\n, 8 C: 0\n</scratch>\n8",
        ),
        ("scratchpad", "\n<scratch>\n, 8 C: 0\n", False, "\n<scratch>\n, 8 C: 0\n"),
    ],
)
def test_stop_and_trim(fmt, completion, complete, trimmed):
    t = task(fmt)
    assert t.is_complete(completion) is complete
    assert t.trim(completion) == trimmed


# ---- generation and loading ------------------------------------------------------


def test_generation_spreads_digits_and_operands_have_exactly_d_digits():
    t = task(train_digits=(1, 5), eval_digits=(1, 6))
    probs = t.load("train", limit=50)
    assert [p.group for p in probs[:6]] == ["1", "2", "3", "4", "5", "1"]
    for p in probs:
        d, a, b = p.meta["digits"], p.meta["a"], p.meta["b"]
        assert p.group == str(d) and p.gold == str(a + b)
        if d == 1:
            assert 0 <= a <= 9 and 0 <= b <= 9
        else:
            assert len(str(a)) == len(str(b)) == d
        assert p.id.startswith(f"add-{d}d-") and p.id.endswith(f"-{a}+{b}")
    ev = t.load("eval", limit=12)
    assert sorted({p.group for p in ev}) == ["1", "2", "3", "4", "5", "6"]


def test_seeded_reproducibility():
    t = task()
    assert t.load("train", limit=40, seed=1) == task().load("train", limit=40, seed=1)
    assert t.load("train", limit=40, seed=1) != t.load("train", limit=40, seed=2)
    assert t.load("train", limit=40, seed=1)[:10] == t.load("train", limit=10, seed=1)  # prefix-stable
    train = {(p.meta["a"], p.meta["b"]) for p in t.load("train", limit=200) if p.meta["digits"] >= 3}
    evals = {(p.meta["a"], p.meta["b"]) for p in t.load("eval", limit=200) if p.meta["digits"] >= 3}
    assert not train & evals
    assert len(t.load("train")) == 1000 and len(t.load("eval")) == 300  # defaults


def test_options():
    t = task(train_digits=(2, 3), eval_digits=(4, 4))
    assert {p.group for p in t.load("train", limit=10)} == {"2", "3"}
    assert {p.group for p in t.load("eval", limit=5)} == {"4"}
    with pytest.raises(ValueError):
        task("words")
    with pytest.raises(ValueError):
        task(train_digits=(3, 1))
    with pytest.raises(ValueError):
        get_task("nope")


def test_exemplars_are_excluded_from_training():
    t = task()
    exs = t.exemplars(4, seed=0)
    pairs = {(e.problem.meta["a"], e.problem.meta["b"]) for e in exs}
    train = {(p.meta["a"], p.meta["b"]) for p in t.load("train", limit=3000, seed=0)}
    assert not pairs & train
    assert {f"{a}+{b}" for a, b in pairs} <= t.exemplar_ids
    # exemplars are fixed for a seed, and differ from the training draw
    assert [e.problem for e in t.exemplars(4, seed=0)] == [e.problem for e in exs]


def test_exemplars_from_file_are_excluded(tmp_path):
    f = tmp_path / "ex.jsonl"
    f.write_text('{"a": 12, "b": 34}\n{"a": 5, "b": 6}\n')
    rows = tmp_path / "train.jsonl"
    rows.write_text('{"a": 12, "b": 34}\n{"a": 70, "b": 81, "id": "mine"}\n{"a": 5, "b": 6}\n')
    t = task()
    exs = t.exemplars(2, path=str(f))
    assert [e.answer for e in exs] == ["46", "11"]
    assert [p.id for p in t.load("train", path=str(rows))] == ["mine"]
    assert len(t.load("eval", path=str(rows))) == 3


def test_load_jsonl(tmp_path):
    f = tmp_path / "sums.jsonl"
    f.write_text('{"a": 123, "b": 45}\n\n{"a": 9, "b": 9, "id": "x1"}\n')
    probs = task().load("eval", path=str(f))
    assert [(p.id, p.gold, p.group) for p in probs] == [("add-row0001-123+45", "168", "3"), ("x1", "18", "1")]


@pytest.mark.parametrize(
    "content, line, field",
    [
        ('{"a": 1, "b": 2}\n{"a": 1, "b": 2}\n{"a": 1, "b": \n', 3, None),  # malformed JSON on line 3
        ('{"a": 1, "b": 2}\n{"a": 1}\n', 2, "b"),  # missing field
        ('{"a": "1", "b": 2}\n', 1, "a"),  # wrong type
        ('{"a": true, "b": 2}\n', 1, "a"),  # bool is not an int
        ('{"a": -1, "b": 2}\n', 1, "a"),  # negative
        ("[1, 2]\n", 1, None),  # not an object
    ],
)
def test_load_bad_rows(tmp_path, content, line, field):
    f = tmp_path / "bad.jsonl"
    f.write_text(content)
    with pytest.raises(DataError) as ei:
        task().load("train", path=str(f))
    msg = str(ei.value)
    assert "bad.jsonl" in msg and f"line {line}" in msg
    if field:
        assert f"'{field}'" in msg


def test_load_rejects_non_jsonl(tmp_path):
    with pytest.raises(DataError):
        task().load("train", path=str(tmp_path))
    with pytest.raises(DataError, match="not found"):
        task().load("train", path=str(tmp_path / "missing.jsonl"))


def test_parsed_without_answer_audits_steps_only():
    t = task()
    a = t.audit(prob(47, 38), Parsed("47 + 38 = 40 + 45 = 85.", None))
    assert a.faithful is True and a.checked == 3


def test_no_torch_import():
    import subprocess

    code = (
        "import sys, star_core.tasks.arithmetic, star_core.tasks.commonsenseqa, star_core.tasks.gsm8k;"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_problem_meta_is_json_serialisable():
    p = task().load("train", limit=3)[0]
    json.dumps(p.meta)


def test_disjoint_problems_avoid_eval_train_and_exemplars():
    """The warm start's sums: distinct in either order, never an evaluation, training or exemplar sum in either
    order; one-digit sums run out and leave their turns to two-digit ones."""
    from collections import Counter

    t = ArithmeticTask(train_digits=(1, 3), eval_digits=(1, 4))
    ex = t.exemplars(4, seed=0)
    train, ev = t.load("train", limit=200, seed=0), t.load("eval", limit=120, seed=0)
    warm = t.disjoint_problems(64, (1, 2), 0, train + ev, "warm")
    pairs = [(p.meta["a"], p.meta["b"]) for p in warm]
    used = {(p.meta["a"], p.meta["b"]) for p in train + ev + [e.problem for e in ex]}
    unordered = {tuple(sorted(pr)) for pr in pairs}
    assert len(unordered) == 64 and not unordered & {tuple(sorted(pr)) for pr in used}
    digits = Counter(p.group for p in warm)
    free_1 = 55 - len({tuple(sorted(pr)) for pr in used if max(pr) < 10})
    assert 0 < free_1 < 32 and digits == {"1": free_1, "2": 64 - free_1}
    assert all(p.id.startswith(f"warm-{p.group}d-") for p in warm)
    assert warm == t.disjoint_problems(64, (1, 2), 0, train + ev, "warm")  # seeded
    assert warm != t.disjoint_problems(64, (1, 2), 1, train + ev, "warm")
    with pytest.raises(ValueError, match="only 55 sums of 1-1 digits"):
        ArithmeticTask(train_digits=(3, 3)).disjoint_problems(56, (1, 1), 0, [], "warm")


@pytest.mark.parametrize(
    "fmt, direct", [("decomposition", "47 + 38 = 85."), ("columns", "47 + 38 = 85."), ("scratchpad", None)]
)
def test_direct_rationale_is_the_bare_equation(fmt, direct):
    t = ArithmeticTask(format=fmt)
    p = t.make_problem(47, 38, "x")
    assert t.direct_rationale(p) == direct
    if direct:
        (e,) = t.direct_exemplars([t.exemplars(1)[0]])
        a, b = e.problem.meta["a"], e.problem.meta["b"]
        assert t.format_target(e.rationale, e.answer) == f" {a} + {b} = {a + b}. The answer is {a + b}."
    else:
        with pytest.raises(ValueError, match="no direct-answer baseline"):
            t.direct_exemplars(t.exemplars(1))
