"""The study's arithmetic: t intervals against scipy, paired differences, verdicts, bands, the report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from prunelab.study.aggregate import band_table, paired_differences, study_metrics
from prunelab.study.intervals import interval_entry, t_interval
from prunelab.study.report import report_markdown
from prunelab.study.verdicts import mde


@pytest.mark.parametrize("values", [[71.8, 81.9, 75.0, 79.3, 73.4], [59.1, 83.6], [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]])
def test_t_interval_is_scipys_student_t_interval(values: list[float]) -> None:
    mean, low, high = t_interval(values)
    expected = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert mean == pytest.approx(np.mean(values))
    assert (low, high) == pytest.approx(expected)


def test_five_seeds_use_t_2776() -> None:
    """With 5 seeds a two-sided 95 % t interval uses t = 2.776 (4 degrees of freedom)."""
    values = np.array([1.0, 3.0, 2.0, 5.0, 4.0])
    mean, low, high = t_interval(values)
    half = 2.776 * values.std(ddof=1) / np.sqrt(5)
    assert high - mean == pytest.approx(half, rel=1e-3) and mean - low == pytest.approx(half, rel=1e-3)


def test_one_seed_has_no_interval_and_equal_values_a_zero_width_one() -> None:
    mean, low, high = t_interval([70.0])
    assert mean == 70.0 and np.isnan(low) and np.isnan(high)
    assert interval_entry([70.0]) == {"mean": 70.0}
    assert t_interval([3.0, 3.0, 3.0]) == (3.0, 3.0, 3.0)


def summary(acc: float, criteria: dict[str, float]) -> dict:
    return {
        "channels": 8, "n_test": 100, "majority_floor": 90.0, "balanced_floor": 50.0, "ranking_split_is_test": 1,
        "baseline_accuracy": acc, "baseline_balanced_accuracy": acc - 20,
        "criteria": {
            name: {"acc_over_k": v + 10, "bacc_over_k": v, "max_k_within_1pt": 2} for name, v in criteria.items()
        },
    }  # fmt: skip


MARGINS = {"acc": 2.0, "bacc": 2.0, "roc_auc": 1.0, "recal_acc": 2.0, "recal_bacc": 2.0}
SUMMARIES = {
    0: summary(92.0, {"mean_activation": 60.0, "l1_norm": 70.0, "random": 65.0}),
    1: summary(93.0, {"mean_activation": 55.0, "l1_norm": 72.0, "random": 66.0}),
    3: summary(91.0, {"mean_activation": 58.0, "l1_norm": 64.0, "random": 67.0}),
}


def test_paired_differences_are_taken_within_each_seed() -> None:
    diffs = paired_differences(SUMMARIES, "bacc_over_k")
    np.testing.assert_allclose(diffs["mean_activation"], [-5.0, -11.0, -9.0])
    np.testing.assert_allclose(diffs["l1_norm"], [5.0, 6.0, -3.0])
    assert "random" not in diffs


def test_study_metrics_hold_means_intervals_and_paired_comparisons() -> None:
    metrics = study_metrics(SUMMARIES, MARGINS)
    assert metrics["n_seeds"] == 3 and metrics["channels"] == 8
    acc = metrics["baseline_accuracy"]
    assert acc["mean"] == pytest.approx(92.0)
    assert (acc["ci_low"], acc["ci_high"]) == pytest.approx(t_interval([92.0, 93.0, 91.0])[1:])
    paired = metrics["criteria"]["mean_activation"]["bacc_over_k_vs_random"]
    assert paired["mean"] == pytest.approx(-25 / 3) and paired["wins"] == 0
    assert (paired["ci_low"], paired["ci_high"]) == pytest.approx(t_interval([-5.0, -11.0, -9.0])[1:])
    assert metrics["criteria"]["l1_norm"]["bacc_over_k_vs_random"]["wins"] == 2
    assert metrics["criteria"]["l1_norm"]["acc_over_k_vs_random"]["mean"] == pytest.approx(8 / 3)
    assert "bacc_over_k_vs_random" not in metrics["criteria"]["random"]


def test_each_comparison_carries_its_verdict_margin_and_power() -> None:
    metrics = study_metrics(SUMMARIES, MARGINS)
    assert metrics["margins"] == MARGINS
    worse = metrics["criteria"]["mean_activation"]["bacc_over_k_vs_random"]
    assert worse["verdict"] == "worse" and worse["margin"] == 2.0
    assert worse["mde"] == pytest.approx(mde(float(np.std([-5.0, -11.0, -9.0], ddof=1)), 3))
    unclear = metrics["criteria"]["l1_norm"]["bacc_over_k_vs_random"]
    assert unclear["verdict"] == "inconclusive" and unclear["seeds_needed"] > 3


def test_score_intervals_stay_in_range_and_say_when_clipped() -> None:
    near_top = {s: summary(99.0 if s else 40.0, {"random": 65.0}) for s in range(5)}
    entry = study_metrics(near_top, MARGINS)["baseline_accuracy"]
    assert entry["ci_high"] == 100.0 and entry["clipped"] == 1


@pytest.mark.parametrize(
    ("shares", "clipped_end"),
    [
        ([0.0, 0.0, 0.0, 0.0, 0.125], "ci_low"),  # a criterion that almost never beats random: t reaches below 0
        ([1.0, 1.0, 0.875, 1.0, 1.0], "ci_high"),  # one that almost always does: t reaches past 1
        ([0.25, 0.5, 0.375, 0.5, 0.25], None),  # inside [0, 1]: scipy's t interval, unmarked
    ],
)
def test_share_intervals_stay_in_0_to_1_and_say_when_clipped(shares: list[float], clipped_end: str | None) -> None:
    """`beats_random_frac` (a share of the pruned K values) is bounded like a score, to [0, 1]."""
    summaries = {}
    for seed, share in enumerate(shares):
        summaries[seed] = summary(92.0, {"l1_norm": 70.0, "random": 65.0})
        summaries[seed]["criteria"]["l1_norm"]["beats_random_frac"] = share
    entry = study_metrics(summaries, MARGINS)["criteria"]["l1_norm"]["beats_random_frac"]
    mean, low, high = t_interval(shares)
    assert entry["mean"] == pytest.approx(mean)
    assert 0.0 <= entry["ci_low"] <= entry["mean"] <= entry["ci_high"] <= 1.0
    if clipped_end is None:
        assert (entry["ci_low"], entry["ci_high"]) == pytest.approx((low, high)) and "clipped" not in entry
    else:
        assert not 0.0 <= {"ci_low": low, "ci_high": high}[clipped_end] <= 1.0  # the plain t interval left [0, 1]
        assert entry[clipped_end] == {"ci_low": 0.0, "ci_high": 1.0}[clipped_end] and entry["clipped"] == 1
        other = "ci_high" if clipped_end == "ci_low" else "ci_low"
        assert entry[other] == pytest.approx({"ci_low": low, "ci_high": high}[other])


def test_band_table_has_one_row_per_criterion_and_k() -> None:
    sweeps = pd.DataFrame(
        {"k": [0, 1, 0, 1], "criterion": "random", "acc": [90.0, 80.0, 92.0, 84.0], "bacc": 0.0, "seed": [0, 0, 1, 1]}
    )
    band = band_table(sweeps, "acc")
    assert band["k"].tolist() == [0, 1]
    assert band["mean"].tolist() == [91.0, 82.0]
    low, high = t_interval([80.0, 84.0])[1:]  # 56.6 … 107.4: the band keeps it in [0, 100]
    assert (band.loc[1, "ci_low"], band.loc[1, "ci_high"]) == pytest.approx((low, 100.0)) and high > 100


def test_report_has_a_row_and_a_sentence_per_criterion() -> None:
    metrics = study_metrics(SUMMARIES, MARGINS)
    text = report_markdown(metrics, [0, 1, 3], {"model": "pair_cnn"}, {"acc": (91.0, 93.0), "bacc": (71.0, 73.0)})
    assert text.startswith("# The study: 3 seeds (0, 1, 3)")
    assert "| mean_activation | 57.7 [" in text and "| random | 66.0 [" in text
    assert "- **mean_activation**: worse than random on mean balanced accuracy over K" in text
    assert "- **l1_norm**: inconclusive on mean balanced accuracy over K" in text and "add " in text
    assert "balanced accuracy ±2" in text  # the margins are stated


def test_the_headline_holds_about_twenty_scalars_with_short_keys() -> None:
    from prunelab.study.headline import headline_metrics

    metrics = study_metrics(SUMMARIES, MARGINS)
    metrics["baseline_roc_auc"] = {"mean": 90.0, "ci_low": 88.0, "ci_high": 92.0}
    for entry in metrics["criteria"].values():
        entry["recal_bacc_over_k_vs_random"] = {"mean": 1.5, "ci_low": 0.5, "ci_high": 2.5}
    efficiency = {"k": 7, "ratio": {"speedup_batch256": 1.5, "flops": 2.0}, "study_recal_bacc_unpruned": 80.0,
                  "study_recal_bacc_at_k": 79.25, "score_loss_points": 0.75}  # fmt: skip
    headline = headline_metrics(metrics, efficiency)
    assert headline["unpruned"] == {
        "bacc": metrics["baseline_balanced_accuracy"]["mean"],
        "bacc_low": metrics["baseline_balanced_accuracy"]["ci_low"],
        "bacc_high": metrics["baseline_balanced_accuracy"]["ci_high"],
        "roc_auc": 90.0, "roc_auc_low": 88.0, "roc_auc_high": 92.0,
    }  # fmt: skip
    assert headline["vs_random"] == {name: 1.5 for name in metrics["criteria"]}
    assert headline["shipped"] == {"k": 7, "speedup": 1.5, "flops_ratio": 2.0, "loss": 0.75}
    # A whole-network export is named by its FLOPs budget instead of K.
    network = {"budget": 0.5, "ratio": {"speedup_batch256": 2.1, "flops": 2.4}, "score_loss_points": -0.5}
    assert headline_metrics(metrics, network)["shipped"] == {"budget": 0.5, "speedup": 2.1, "flops_ratio": 2.4,
                                                             "loss": -0.5}  # fmt: skip

    def flat(node: dict, prefix: str = "") -> dict:
        out = {}
        for key, value in node.items():
            out.update(flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
        return out

    scalars = flat(headline)
    assert len(scalars) <= 20 and all(isinstance(v, int | float) for v in scalars.values())
