"""Four verdicts against random (better, worse, equivalent, inconclusive), power, and intervals
that stay inside the range of their scores."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from prunelab.study.intervals import SHARE_RANGE, bounded_interval, score_entry, share_entry, t_interval
from prunelab.study.verdicts import ALPHA, MAX_SEEDS, comparison, mde, seeds_needed, sentence, tost_p, verdict_of


def test_tost_p_is_the_larger_of_scipys_two_one_sided_t_tests() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        x = rng.normal(rng.uniform(-2, 2), rng.uniform(0.2, 3), size=int(rng.integers(2, 12)))
        margin = float(rng.uniform(0.5, 3))
        lower = stats.ttest_1samp(x, -margin, alternative="greater").pvalue
        upper = stats.ttest_1samp(x, margin, alternative="less").pvalue
        assert tost_p(x, margin) == pytest.approx(max(lower, upper), rel=1e-12)


def test_tost_by_hand() -> None:
    """x = 0, 1, 2, 1, 1: mean 1, s = √0.5, sem = √0.1; margin 2. The upper test's t = −1/√0.1 = −√10
    on 4 df is the larger p-value; for 4 df the t tail has a closed form: P(T > t) = (1 − u(3 − u²)/2) / 2
    with u = t / √(t² + 4)."""
    x, margin = [0.0, 1.0, 2.0, 1.0, 1.0], 2.0
    u = math.sqrt(10) / math.sqrt(10 + 4)
    assert tost_p(x, margin) == pytest.approx((1 - u * (3 - u * u) / 2) / 2, rel=1e-9)


def test_equivalent_exactly_when_the_90_percent_interval_lies_inside_the_margin() -> None:
    rng = np.random.default_rng(1)
    for _ in range(200):
        x = rng.normal(rng.uniform(-1.5, 1.5), rng.uniform(0.1, 2), size=int(rng.integers(2, 10)))
        margin = float(rng.uniform(0.3, 2.5))
        _, low, high = t_interval(x, confidence=1 - 2 * ALPHA)
        assert (tost_p(x, margin) < ALPHA) == (-margin < low and high < margin)


def test_minimum_detectable_effect_by_hand() -> None:
    """n = 5, s = 2: (t_0.975,4 + t_0.8,4) · 2 / √5 with the t table's 2.776445 and 0.940965."""
    assert mde(2.0, 5) == pytest.approx((2.776445 + 0.940965) * 2 / math.sqrt(5), rel=1e-6)
    assert mde(2.0, 1) == math.inf


def test_seeds_needed_is_the_first_n_whose_mde_reaches_the_margin() -> None:
    for sd, margin in [(1.0, 1.0), (3.0, 1.0), (0.5, 2.0), (10.0, 0.5)]:
        n = seeds_needed(sd, margin)
        assert mde(sd, n) <= margin
        assert n == 2 or mde(sd, n - 1) > margin
    assert seeds_needed(0.0, 1.0) == 2
    assert seeds_needed(1e6, 1e-6) == MAX_SEEDS


@pytest.mark.parametrize(
    ("diffs", "margin", "expected"),
    [
        ([3.0, 4.0, 5.0, 4.5, 3.5], 1.0, "better"),
        ([-3.0, -4.0, -5.0, -4.5, -3.5], 1.0, "worse"),
        ([0.1, -0.1, 0.05, -0.05, 0.0], 1.0, "equivalent"),
        # Significantly above 0 but by less than the margin: equivalent (the margin says it does not matter).
        ([0.3, 0.35, 0.25, 0.3, 0.32], 1.0, "equivalent"),
        ([5.0, -4.0, 3.0, -6.0, 1.0], 1.0, "inconclusive"),
        ([2.0], 1.0, "inconclusive"),  # one seed decides nothing
    ],
    ids=["better", "worse", "equivalent", "equivalent-though-significant", "inconclusive", "one-seed"],
)
def test_each_of_the_four_verdicts(diffs: list[float], margin: float, expected: str) -> None:
    assert verdict_of(diffs, margin) == expected
    assert comparison(diffs, margin)["verdict"] == expected


def test_an_inconclusive_sentence_says_how_many_seeds_to_add() -> None:
    diffs = [5.0, -4.0, 3.0, -6.0, 1.0]
    entry = comparison(diffs, 2.0)
    assert entry["seeds_needed"] == seeds_needed(float(np.std(diffs, ddof=1)), 2.0)
    text = sentence(entry, 5, "mean balanced accuracy over K")
    assert f"add {entry['seeds_needed'] - 5} seeds" in text and "±2 points" in text
    assert {"verdict", "tost_p", "margin", "mde", "seeds_needed", "wins"} <= set(entry)


def test_bounded_intervals_never_leave_0_to_100_and_equal_scipys_inside() -> None:
    rng = np.random.default_rng(2)
    for _ in range(300):
        centre = rng.choice([1.0, 50.0, 99.0])
        x = np.clip(rng.normal(centre, rng.uniform(0.1, 30), size=int(rng.integers(2, 8))), 0, 100)
        mean, low, high = bounded_interval(x)
        assert 0.0 <= low <= mean <= high <= 100.0
        if np.ptp(x) > 0:
            ref_low, ref_high = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
            assert low == pytest.approx(max(ref_low, 0.0)) and high == pytest.approx(min(ref_high, 100.0))


def test_a_clipped_score_says_so() -> None:
    skewed = [99.9, 40.0, 99.8, 99.5, 99.7]  # the t interval reaches past 100
    entry = score_entry(skewed)
    assert entry["ci_high"] == 100.0 and entry["clipped"] == 1
    assert "clipped" not in score_entry([50.0, 51.0, 49.0])


def test_share_entries_never_leave_0_to_1_and_equal_scipys_inside() -> None:
    """A share (of 8 pruned K values, say) is bounded to [0, 1] by the same rule as a score."""
    rng = np.random.default_rng(3)
    for _ in range(300):
        x = rng.integers(0, 9, size=int(rng.integers(2, 8))) / 8
        entry = share_entry(x)
        assert entry["mean"] == pytest.approx(x.mean())
        assert 0.0 <= entry["ci_low"] <= entry["mean"] <= entry["ci_high"] <= 1.0
        _, ref_low, ref_high = t_interval(x)
        assert (entry["ci_low"], entry["ci_high"]) == (max(ref_low, 0.0), min(ref_high, 1.0))
        assert (entry.get("clipped") == 1) == (ref_low < 0.0 or ref_high > 1.0)
        assert bounded_interval(x, SHARE_RANGE) == (entry["mean"], entry["ci_low"], entry["ci_high"])
