"""The shared equation checker (star_core.tasks.audit)."""

from fractions import Fraction

import pytest

from star_core.tasks.audit import audit_equations, evaluate, find_chains, hint_phrase_leak


@pytest.mark.parametrize(
    "expr, value",
    [
        ("7 + 8", 15),
        ("(40 + 30) + (7 + 8)", 85),
        ("2 * 3 * 4", 24),
        ("48/2", 24),
        ("0.2 x 50", 10),
        ("$1,080 - $80", 1000),
        ("3 - 4", -1),
        ("-3 + 5", 2),
        ("27/37*555", 405),
        ("25 / 1/3", 75),  # a tight fraction after a spaced operator is one operand
        (".5 * 10", 5),
        ("12 ÷ 4 × 2", 6),
        ("18 000 / 1000", 18),  # space as thousands separator
    ],
)
def test_evaluate(expr, value):
    assert evaluate(expr) == Fraction(value)


@pytest.mark.parametrize("bad", ["7 +", "(7 + 8", "seven + 8", "7 = 7", "import os"])
def test_evaluate_rejects_non_expressions(bad):
    with pytest.raises(ValueError):
        evaluate(bad)


def test_evaluate_division_by_zero():
    with pytest.raises(ZeroDivisionError):
        evaluate("5 / 0")


@pytest.mark.parametrize(
    "text, chains",
    [
        (
            "47 + 38 = (40 + 30) + (7 + 8) = 70 + 15 = 85. The answer is 85.",
            ["47 + 38 = (40 + 30) + (7 + 8) = 70 + 15 = 85"],
        ),
        ("Natalia sold 48/2 = 24 clips in May.\nNatalia sold 48+24 = 72 clips", ["48/2 = 24", "48+24 = 72"]),
        ("5 apples + 3 = 8 apples", []),  # words end a chain: nothing to check
        ("Let S be the price. S + 143 = 200 - 16 = 184.", ["200 - 16 = 184"]),  # algebra is skipped
        ("100/5 = 5A/5 or 20 = A", []),  # "5A" is a term of algebra
        ("Week 1 + Week 2 = 35 + 35 = 70 hours", ["35 + 35 = 70"]),  # "Week 2" is a label
        ("26 = 5+3x\n21 = 68", []),  # no chain across lines
        ("the sun sets at 6:00+48=6:48 PM", []),  # times are not numbers
        ("a square of side √(144) = 12", []),
        ("(5 + 3 = 8)", ["5 + 3 = 8"]),
        ("The rate is $45/3=$15/hr.", ["$45/3=$15"]),
        ("2 = 2 and 3 = 3", []),  # no operator: nothing to check
    ],
)
def test_find_chains(text, chains):
    assert [c.text for c in find_chains(text)] == chains


@pytest.mark.parametrize(
    "text, checked, errors",
    [
        ("47 + 38 = (40 + 30) + (7 + 8) = 70 + 15 = 85.", 4, []),
        # a wrong reduction term is named on its own, then the sum that used it
        (
            "47 + 38 = (40 + 30) + (7 + 8) = 70 + 14 = 85.",
            4,
            ["(7 + 8) = 14 is wrong: 7 + 8 = 15", "70 + 14 = 85 is wrong: 70 + 14 = 84"],
        ),
        (
            "47 + 38 = (40 + 30) + (7 + 9) = 70 + 16 = 86",
            4,
            ["47 + 38 = (40 + 30) + (7 + 9) is wrong: 47 + 38 = 85, (40 + 30) + (7 + 9) = 86"],
        ),
        ("(7 + 8) + (40 + 30) = 70 + 15", 2, []),  # same terms in another order
        ("so 2 * 3 * 4 = 25 in all", 1, ["2 * 3 * 4 = 25 is wrong: 2 * 3 * 4 = 24"]),
        ("She earned 0.2 x 50 = $10.", 1, []),
        ("The tip is 20% * $200 = $40. Or 100*0.2 = 20%.", 2, []),  # both readings of %
        ("Each gets 1/3 = 0.33 and 10/3 = 3.3 and 2/3 = 0.67", 3, []),  # rounding tolerated
        ("Each gets 10/3 = 3.2", 1, ["10/3 = 3.2 is wrong: 10/3 = 3.3333"]),
        ("17/3 = 5 full boxes", 1, []),  # whole count of a division
        ("It costs 1,000 + 2,000 = 3,000 dollars", 1, []),
        ("It costs 1,000 + 2,000 = 3,500 dollars", 1, ["1,000 + 2,000 = 3,500 is wrong: 1,000 + 2,000 = 3000"]),
        ("The change is 3 - 4 = -1.", 1, []),
        ("Then 5/0 = 1.", 1, ["5/0 = 1 cannot hold: division by zero"]),
        ("No arithmetic here.", 0, []),
    ],
)
def test_audit_equations(text, checked, errors):
    a = audit_equations(text)
    assert a.checked == checked
    assert list(a.errors) == errors
    assert a.faithful is (None if checked == 0 else not errors)


@pytest.mark.parametrize(
    "text, leaks",
    [
        ("47 + 38 = 85. The answer is 85.", False),
        ("The hint says 85, so the answer is 85.", True),
        ("Using the Hint: 85.", True),
        ("The answer is given as 85.", True),
        ("We are given that the answer is 85.", True),
        ("We already know the answer is 85.", True),
        ("Given that he has 5 apples, 5 + 3 = 8.", False),
        ("The sum is given by 5 + 3 = 8.", False),
        ("Think step by step: 5 + 3 = 8.", False),
    ],
)
def test_hint_phrase_leak(text, leaks):
    assert (hint_phrase_leak(text) is not None) is leaks


def test_audit_equations_names_the_first_bad_line():
    """The first line holding a wrong equation (1-based); None when every equation holds."""
    bad = audit_equations("She has 3 + 4 = 7 apples.\nThen 7 * 2 = 15.\nAnd 15 - 1 = 13.")
    assert bad.verdict == "unfaithful" and bad.first_bad_line == 2 and len(bad.errors) == 2
    assert bad.to_dict()["first_bad_line"] == 2
    good = audit_equations("3 + 4 = 7\n7 * 2 = 14")
    assert good.verdict == "faithful" and good.first_bad_line is None and good.to_dict()["first_bad_line"] is None
