"""Wilson intervals and the exact McNemar test (star_core.stats), against published and hand-computed values."""

import math

import pytest

from star_core.stats import describe, describe_change, mcnemar, significant, wilson


@pytest.mark.parametrize(
    "k, n, low, high",
    [
        # Newcombe (1998), Statistics in Medicine 17:857-872, table I, method 3 (Wilson score)
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
        # 15 of 30: symmetric around 0.5; by hand, z/(1 + z²/30) · sqrt(0.25/30 + z²/3600) = 0.1685
        (15, 30, 0.3315, 0.6685),
        (30, 30, 0.8865, 1.0),
    ],
)
def test_wilson_matches_known_values(k, n, low, high):
    lo, hi = wilson(k, n)
    assert (lo, hi) == (pytest.approx(low, abs=5e-5), pytest.approx(high, abs=5e-5))


def test_wilson_of_no_questions_is_everything():
    assert wilson(0, 0) == (0.0, 1.0)


def test_wilson_is_about_17_points_each_side_on_30_questions():
    lo, hi = wilson(15, 30)
    assert 0.16 < (hi - lo) / 2 < 0.18  # not the ±9 of one standard error


@pytest.mark.parametrize(
    "lost, gained, p",
    [
        (1, 9, 2 * (1 + 10) / 2**10),  # 0.021484375
        (9, 1, 2 * (1 + 10) / 2**10),  # two-sided: the same either way
        (0, 5, 2 / 2**5),  # 0.0625: five out of five is not enough
        (0, 6, 2 / 2**6),  # 0.03125
        (2, 10, 2 * (1 + 12 + 66) / 2**12),  # 0.0386
        (6, 9, 2 * sum(math.comb(15, i) for i in range(7)) / 2**15),  # 0.607, the paper-rule run's 2-digit rise
        (3, 3, 1.0),
        (0, 0, 1.0),
    ],
)
def test_mcnemar_exact(lost, gained, p):
    assert mcnemar(lost, gained) == pytest.approx(p)


def test_significance_threshold():
    assert significant(mcnemar(1, 9)) and not significant(mcnemar(0, 5))


def test_descriptions():
    assert describe(8, 30) == "26.7 % [14.2–44.4] (8/30)"
    assert describe_change(6, 9) == "+9 −6 questions, p = 0.61 (not significant at 0.05)"
    assert describe_change(12, 1) == "+1 −12 questions, p = 0.0034 (significant at 0.05)"


def test_mcnemar_with_thousands_of_pairs_is_exact_and_quick():
    import math
    import time

    from star_core.stats import mcnemar

    t0 = time.perf_counter()
    p = mcnemar(2500, 2600)
    assert time.perf_counter() - t0 < 0.5  # evaluations of 1M-sample runs pair thousands of questions
    n = 5100
    assert p == min(1.0, 2 * sum(math.comb(n, i) for i in range(2501)) / 2**n)
