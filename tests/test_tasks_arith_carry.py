"""The carry scratchpad (arith_format=carry): the trace, decoding, and the audit of every line on hand-written
traces, one test per kind of wrong line; the columns format's closing carry and the first bad line."""

import pytest

from star_core.tasks import get_task
from star_core.tasks.arith_carry import carry_lines

T = get_task("arithmetic", format="carry", train_digits=(1, 5), eval_digits=(1, 5))


def judge(a: int, b: int, text: str):
    """The audit of a completion (``text`` as the model writes it, answer line included)."""
    p = T.make_problem(a, b, f"t-{a}+{b}")
    parsed = T.parse(T.trim(" " + text + "\n\nQ: What is 1 + 1?"), p)
    return parsed, T.audit(p, parsed)


RIGHT = {
    (5, 0): "5 + 0, carry 0, result none.\n5 + 0 + 0 = 5, digit 5, carry 0. Left none, result 5.\n"
    "Carry 0, result 5.\nThe answer is 5.",
    (47, 38): "47 + 38, carry 0, result none.\n7 + 8 + 0 = 15, digit 5, carry 1. Left 4 + 3, result 5.\n"
    "4 + 3 + 1 = 8, digit 8, carry 0. Left none, result 85.\nCarry 0, result 85.\nThe answer is 85.",
    (95, 7): "95 + 07, carry 0, result none.\n5 + 7 + 0 = 12, digit 2, carry 1. Left 9 + 0, result 2.\n"
    "9 + 0 + 1 = 10, digit 0, carry 1. Left none, result 02.\nCarry 1, result 102.\nThe answer is 102.",
    (957, 773): "957 + 773, carry 0, result none.\n7 + 3 + 0 = 10, digit 0, carry 1. Left 95 + 77, result 0.\n"
    "5 + 7 + 1 = 13, digit 3, carry 1. Left 9 + 7, result 30.\n"
    "9 + 7 + 1 = 17, digit 7, carry 1. Left none, result 730.\nCarry 1, result 1730.\nThe answer is 1730.",
    (6048, 51): "6048 + 0051, carry 0, result none.\n8 + 1 + 0 = 9, digit 9, carry 0. Left 604 + 005, result 9.\n"
    "4 + 5 + 0 = 9, digit 9, carry 0. Left 60 + 00, result 99.\n"
    "0 + 0 + 0 = 0, digit 0, carry 0. Left 6 + 0, result 099.\n"
    "6 + 0 + 0 = 6, digit 6, carry 0. Left none, result 6099.\nCarry 0, result 6099.\nThe answer is 6099.",
    (89422, 37815): "89422 + 37815, carry 0, result none.\n"
    "2 + 5 + 0 = 7, digit 7, carry 0. Left 8942 + 3781, result 7.\n"
    "2 + 1 + 0 = 3, digit 3, carry 0. Left 894 + 378, result 37.\n"
    "4 + 8 + 0 = 12, digit 2, carry 1. Left 89 + 37, result 237.\n"
    "9 + 7 + 1 = 17, digit 7, carry 1. Left 8 + 3, result 7237.\n"
    "8 + 3 + 1 = 12, digit 2, carry 1. Left none, result 27237.\nCarry 1, result 127237.\nThe answer is 127237.",
}


@pytest.mark.parametrize("pair", list(RIGHT), ids=[f"{a}+{b}" for a, b in RIGHT])
def test_a_right_trace_is_faithful_at_every_length(pair):
    """Hand-written right traces of 1 to 5 digits (padding included) pass with one checked step per line, and
    are exactly the trace the task writes."""
    a, b = pair
    parsed, audit = judge(a, b, RIGHT[pair])
    assert parsed.answer == str(a + b) and T.is_correct(parsed.answer, str(a + b))
    assert audit.verdict == "faithful" and audit.errors == () and audit.first_bad_line is None
    assert audit.checked == len(RIGHT[pair].splitlines())  # header, one per digit, closing carry, answer
    assert "\n".join(carry_lines(a, b)) + f"\nThe answer is {a + b}." == RIGHT[pair]


def test_a_one_digit_trace_has_one_verified_digit_step():
    _, audit = judge(5, 0, RIGHT[(5, 0)])
    assert audit.verdict == "faithful" and audit.checked == 4  # header, the digit's step, closing carry, answer
    _, bare = judge(5, 0, "5 + 0 = 5.\nThe answer is 5.")
    assert bare.verdict == "no_rationale" and bare.first_bad_line is None
    _, only = judge(5, 0, "5 + 0, carry 0, result none.\nCarry 0, result 5.\nThe answer is 5.")
    assert only.verdict == "unfaithful" and only.first_bad_line == 2  # closes with a digit still left
    _, headers = judge(7, 7, "7 + 7, carry 0, result none.\n7 + 7, carry 0, result none.\nThe answer is 7.")
    assert headers.verdict == "unfaithful" and headers.first_bad_line == 2
    assert headers.errors[1:] == (
        "line 3: the closing line is missing (no digit step came before it)",
        "line 3: no result to give the answer 7",
    )


def wrong(pair, old: str, new: str, count: int = 1) -> str:
    text = RIGHT[pair]
    assert text.count(old) >= count, old
    return text.replace(old, new, count)


# (pair, the right text, the wrong text, the first bad line, words of the error)
WRONG = {
    "wrong digits taken": ((47, 38), "4 + 3 + 1 = 8", "3 + 4 + 1 = 8", 3, "last digits left are 4 + 3"),
    "digits from the middle": ((957, 773), "7 + 3 + 0 = 10", "5 + 7 + 0 = 12", 2, "last digits left are 7 + 3"),
    "wrong carry in": ((47, 38), "4 + 3 + 1 = 8, digit 8", "4 + 3 + 0 = 7, digit 7", 3, "the carry was 1"),
    "wrong sum": ((47, 38), "7 + 8 + 0 = 15, digit 5", "7 + 8 + 0 = 16, digit 6", 2, "is wrong: it is 15"),
    "wrong digit": ((47, 38), "digit 5, carry 1", "digit 4, carry 1", 2, "digit of 15 is 5"),
    "wrong carry out": ((47, 38), "digit 5, carry 1", "digit 5, carry 0", 2, "carry of 15 is 1"),
    "wrong Left": ((957, 773), "Left 95 + 77", "Left 95 + 73", 2, "what is left is 95 + 77"),
    "Left not none at the end": ((47, 38), "Left none, result 85", "Left 4 + 3, result 85", 3, "left is none"),
    "wrong result so far": ((957, 773), "Left 9 + 7, result 30.", "Left 9 + 7, result 03.", 3, "give 30"),
    "false final carry": ((47, 38), "Carry 0, result 85.", "Carry 1, result 185.", 4, "last carry is 0"),
    "final carry left out": ((95, 7), "Carry 1, result 102.", "Carry 0, result 02.", 4, "last carry is 1"),
    "closing result wrong": ((95, 7), "Carry 1, result 102.", "Carry 1, result 112.", 4, "give 102"),
    "closing line missing": ((47, 38), "Carry 0, result 85.\n", "", 4, "closing line"),
    "wrong answer": ((47, 38), "The answer is 85.", "The answer is 84.", 5, "answer 84 is not the result 85"),
    "extra step": ((47, 38), "Carry 0", "1 + 1 + 0 = 2, digit 2, carry 0. Left none, result 285.\nCarry 0", 4, "extra"),
    "extra line": ((47, 38), "Carry 0, result 85.", "Carry 0, result 85.\nCarry 0, result 85.", 5, "extra line"),
    "header unpadded": ((95, 7), "95 + 07, carry", "95 + 7, carry", 1, "should open the trace"),
    "header of another sum": ((47, 38), "47 + 38, carry", "47 + 39, carry", 1, "should open the trace"),
    "garbage line": ((47, 38), "Left 4 + 3, result 5.", "Left 4 + 3, result 5o.", 2, "result 5o"),
    "unreadable line": ((47, 38), "Carry 0, result 85.", "So 4o and 85 it is.", 4, "cannot read"),
    "header repeated": ((47, 38), "\n7 + 8 + 0", "\n47 + 38, carry 0, result none.\n7 + 8 + 0", 2, "header again"),
}


@pytest.mark.parametrize("kind", list(WRONG))
def test_each_kind_of_wrong_line_fails_at_that_line(kind):
    """One hand-written trace per kind of wrong line: the verdict is unfaithful, the first error is on the
    line that is wrong and says what is wrong, and the answer (when right) is still read."""
    pair, old, new, line, words = WRONG[kind]
    text = wrong(pair, old, new)
    assert text != RIGHT[pair]
    parsed, audit = judge(*pair, text)
    assert audit.verdict == "unfaithful", (kind, audit)
    assert audit.first_bad_line == line, (kind, audit)
    assert audit.errors[0].startswith(f"line {line}:") and words in audit.errors[0], (kind, audit.errors)
    assert audit.to_dict()["first_bad_line"] == line and audit.to_dict()["version"] == 3


def test_a_wrong_line_is_checked_once_the_next_line_follows_it():
    """Each line is checked against the one before, so a wrong Left is one error: the next line, which takes
    its digits from that Left, holds against it."""
    text = (
        "957 + 773, carry 0, result none.\n7 + 3 + 0 = 10, digit 0, carry 1. Left 95 + 73, result 0.\n"
        "5 + 3 + 1 = 9, digit 9, carry 0. Left 9 + 7, result 90.\n"
        "9 + 7 + 0 = 16, digit 6, carry 1. Left none, result 690.\nCarry 1, result 1690.\nThe answer is 1690."
    )
    _, audit = judge(957, 773, text)
    assert audit.verdict == "unfaithful" and audit.first_bad_line == 2
    assert audit.errors == ("line 2: Left 95 + 73, but what is left is 95 + 77",)


def test_carry_completions_decode_across_lines():
    """Stop strings never stop at a newline: a blank line or the next question ends the trace, and the
    completion is complete once its answer line is."""
    assert "\n" not in T.stop_strings and set(T.stop_strings) == {"\n\n", "Q:"}
    text = " " + RIGHT[(47, 38)]
    assert not T.is_complete(text.split("The answer")[0])
    assert T.is_complete(text) and T.trim(text + "\n\nQ: What is 2 + 2?") == text
    assert T.trim(text + " And more.") == text
    p = T.make_problem(47, 38, "x")
    assert T.parse(text, p).rationale == RIGHT[(47, 38)].rsplit("\n", 1)[0]
    assert T.hint_leak(p, text) is None


def test_direct_baseline_and_hint_in_the_carry_format():
    p = T.make_problem(47, 38, "x")
    assert T.format_question(p, hint=True) == "Q: What is 47 + 38? (Hint: the answer is 85.)\nA:"
    (ex,) = T.direct_exemplars([T.exemplars(1)[0]])
    block = T.format_target(ex.rationale, ex.answer)
    assert block.endswith(f"\nThe answer is {ex.answer}.") and T.parse(block).answer == ex.answer


@pytest.mark.parametrize(
    "completion, verdict, line",
    [
        (  # a false closing carry fails (it used to pass unchecked)
            " Add the ones: 7 + 1 = 8, write 8. Add the tens: 4 + 3 = 7, write 7. Add the last carry 1."
            " The answer is 178.",
            "unfaithful",
            1,
        ),
        (  # every column right and the closing carry right: passes (it used to fail)
            " Add the ones: 7 + 1 = 8, write 8. Add the tens: 9 + 8 = 17, write 7 carry 1. Add the last carry 1."
            " The answer is 178.",
            "faithful",
            None,
        ),
        (  # the closing carry left out
            " Add the ones: 7 + 1 = 8, write 8. Add the tens: 9 + 8 = 17, write 7 carry 1. The answer is 178.",
            "unfaithful",
            1,
        ),
    ],
)
def test_columns_closing_carry_is_checked(completion, verdict, line):
    t = get_task("arithmetic", format="columns")
    a, b = (47, 31) if "4 + 3" in completion else (97, 81)
    p = t.make_problem(a, b, "x")
    audit = t.audit(p, t.parse(completion, p))
    assert audit.verdict == verdict, audit
    assert audit.first_bad_line == line


def test_decomposition_names_line_one_when_it_fails():
    t = get_task("arithmetic")
    p = t.make_problem(47, 38, "x")
    bad = t.audit(p, t.parse(" 47 + 38 = (40 + 30) + (7 + 8) = 70 + 14 = 84. The answer is 84.", p))
    assert bad.verdict == "unfaithful" and bad.first_bad_line == 1
    garbage = t.audit(t.make_problem(4, 0, "y"), t.parse(" 4 + 0 = (4 + 0) + (0 + 0) = 4o. The answer is 4."))
    assert garbage.verdict == "unfaithful" and "4o" in garbage.errors[-1]


def test_a_wording_change_in_the_templates_changes_the_trace_and_the_audit(monkeypatch):
    """The trace and the audit follow from one set of templates: other wording, the same checks."""
    from star_core.tasks import arith_carry as K

    new = {
        "HEADER": "Add {a} and {b}.",
        "STEP": "{x}+{y}+{c}={s}: write {d}, carry {co}; left {left}; so far {r}.",
        "CLOSE": "Last carry {c}: {r}.",
        "LEFT": "{a} and {b}",
    }
    for name, template in new.items():
        monkeypatch.setattr(K, name, template)
    for name, template in (("_HEADER_RE", new["HEADER"]), ("_STEP_RE", new["STEP"]), ("_CLOSE_RE", new["CLOSE"])):
        monkeypatch.setattr(K, name, K._pattern(template))
    monkeypatch.setattr(K, "_LEFT_RE", K._pattern(new["LEFT"]))
    lines = K.carry_lines(95, 7)
    assert lines == [
        "Add 95 and 07.",
        "5+7+0=12: write 2, carry 1; left 9 and 0; so far 2.",
        "9+0+1=10: write 0, carry 1; left none; so far 02.",
        "Last carry 1: 102.",
    ]
    assert K.audit_carry(95, 7, "\n".join(lines), "102").verdict == "faithful"
    bad = K.audit_carry(95, 7, "\n".join(lines).replace("left 9 and 0", "left 9 and 7"), "102")
    assert bad.verdict == "unfaithful" and bad.first_bad_line == 2 and "left is 9 and 0" in bad.errors[0]


# ---- warm_start_pad: traces of short sums written at a larger width ---------------------------------------------
def test_a_padded_trace_holds_and_a_wrong_padding_does_not():
    from star_core.tasks.arith_carry import audit_carry, carry_rationale

    for a, b, w in ((47, 38, 4), (5, 9, 3), (0, 0, 2), (95, 7, 5)):
        text = carry_rationale(a, b, w)
        assert text.splitlines()[0].startswith(f"{str(a).zfill(max(w, len(str(b))))} + ")
        au = audit_carry(a, b, text, str(a + b))
        assert au.verdict == "faithful" and not au.errors, (a, b, w, au)
        assert au.checked == max(w, len(str(a)), len(str(b))) + 3  # header, a line per digit, close, answer
    # a nonzero digit in front is another sum; padding of unequal length is not one length
    for bad in ("147 + 038", "0047 + 038"):
        text = carry_rationale(47, 38, 3).replace("047 + 038", bad, 1)
        assert audit_carry(47, 38, text, "85").first_bad_line == 1


def test_warm_start_pad_draws_seeded_widths_within_range():
    from star_core.tasks import get_task
    from star_core.tasks.arithmetic import pad_widths

    task = get_task("arithmetic", format="carry", train_digits=(1, 4), eval_digits=(1, 4))
    probs = [task.make_problem(a, b, f"w{a}+{b}") for a, b in ((47, 38), (5, 9), (12, 3), (60, 60))]
    again = [task.make_problem(a, b, f"w{a}+{b}") for a, b in ((47, 38), (5, 9), (12, 3), (60, 60))]
    widths = [p.meta["pad"] for p in pad_widths(probs, 4, seed=3)]
    assert widths == [p.meta["pad"] for p in pad_widths(again, 4, seed=3)]
    assert all(p.meta["digits"] <= w <= 4 for p, w in zip(probs, widths))
    for p in probs:
        lines = task.reference_rationale(p).splitlines()
        assert len(lines) == p.meta["pad"] + 2  # header, a line per written digit, the closing carry
    assert all("pad" not in p.meta for p in pad_widths([task.make_problem(1, 2, "x")], 0, seed=3))


def test_warm_start_pad_needs_the_carry_format_and_a_warm_start():
    from star_core.config import ConfigError, StarConfig

    StarConfig(arith_format="carry", warm_start=8, warm_start_pad=4).validate()
    for cfg in (StarConfig(arith_format="decomposition", warm_start=8, warm_start_pad=4), StarConfig(warm_start_pad=4)):
        with pytest.raises(ConfigError, match="warm_start_pad"):
            cfg.validate()
