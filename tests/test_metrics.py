"""Scores that do not hide imbalance, and the summary metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from prunelab.pruning.ranking import ranking_table
from prunelab.scoring.curves import (
    Curve,
    beats_random_fraction,
    max_k_within,
    milestone_ks,
    resolve_ks,
    summary_metrics,
)
from prunelab.scoring.scores import accuracy, balanced_accuracy, confusion, majority_floor, scores_from_predictions


def test_majority_answer_scores_the_floor_not_more() -> None:
    labels = torch.tensor([0] * 90 + [1] * 10)
    always_different = torch.zeros(100, dtype=torch.long)
    acc, bacc = scores_from_predictions(labels, always_different, 2)
    assert acc == pytest.approx(90.0)
    assert bacc == pytest.approx(50.0)
    assert majority_floor(labels) == pytest.approx(90.0)


def test_balanced_accuracy_is_mean_recall() -> None:
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
    preds = torch.tensor([0, 0, 0, 1, 1, 0, 2, 2, 0, 0])
    conf = confusion(labels, preds, 3).numpy()
    assert conf.tolist() == [[3, 1, 0], [1, 1, 0], [2, 0, 2]]
    assert accuracy(conf) == pytest.approx(60.0)
    assert balanced_accuracy(conf) == pytest.approx(100 * (3 / 4 + 1 / 2 + 2 / 4) / 3)


def test_balanced_accuracy_ignores_absent_classes() -> None:
    conf = np.array([[5, 0, 0], [0, 0, 0], [1, 0, 4]])
    assert balanced_accuracy(conf) == pytest.approx(100 * (1 + 0.8) / 2)


def test_confusion_handles_batched_predictions() -> None:
    labels = torch.tensor([0, 1, 1])
    preds = torch.tensor([[0, 1, 1], [1, 1, 0]])
    conf = confusion(labels.expand(2, 3), preds, 2).numpy()
    assert conf[0].tolist() == [[1, 0], [0, 2]] and conf[1].tolist() == [[0, 1], [1, 1]]


def test_ks_always_include_baseline_and_milestones() -> None:
    assert resolve_ks("all", 1, 8) == list(range(8))
    assert resolve_ks("all", 2, 32) == sorted({*range(0, 32, 2), 8, 16, 24, 31})
    assert resolve_ks([3], 1, 128) == [0, 3, 32, 64, 96, 127]
    assert milestone_ks(128) == {
        "acc_at_quarter": 32,
        "acc_at_half": 64,
        "acc_at_three_quarters": 96,
        "acc_at_last": 127,
    }


def test_max_k_within_stops_at_the_first_drop() -> None:
    ks = np.array([0, 1, 2, 3, 4])
    acc = np.array([90.0, 89.5, 88.0, 89.9, 70.0])
    assert max_k_within(ks, acc, 90.0) == 1  # K=3 recovers, but K=2 already fell out


def test_beats_random_needs_two_standard_deviations() -> None:
    ks = np.array([0, 1, 2, 3])
    random = Curve(np.zeros(4), np.array([80.0, 70, 60, 50]), np.zeros(4), np.array([0.0, 5, 5, 5]))
    bacc = np.array([80.0, 80.1, 69.0, 61.0])  # beats at K=1 (>80) and K=3 (>60), not K=2
    assert beats_random_fraction(ks, bacc, random) == pytest.approx(2 / 3)


def test_summary_has_scalars_for_every_criterion() -> None:
    ks = list(range(8))
    flat = np.linspace(90, 10, 8)
    curves = {
        "mean_activation": Curve(flat, flat - 20),
        "random": Curve(flat - 1, flat - 21, np.ones(8), np.ones(8)),
    }
    metrics = summary_metrics(ks, curves, 8, majority_floor=90.0, n_classes=2, n_test=100)
    assert metrics["baseline_accuracy"] == 90.0 and metrics["balanced_floor"] == 50.0
    entry = metrics["criteria"]["mean_activation"]
    assert entry["acc_over_k"] == pytest.approx(flat.mean())
    assert entry["acc_at_half"] == pytest.approx(flat[4]) and entry["acc_at_last"] == pytest.approx(10.0)
    assert "beats_random_frac" in entry and "beats_random_frac" not in metrics["criteria"]["random"]
    ranking = ranking_table({"mean_activation": np.array([[2, 0, 1]]), "random": np.array([[0, 1, 2], [2, 1, 0]])})
    # Every criterion's (first) order: random's first order is the one fine-tuning uses.
    assert ranking.to_dict("list") == {
        "criterion": ["mean_activation"] * 3 + ["random"] * 3,
        "rank": [0, 1, 2] * 2,
        "channel": [2, 0, 1, 0, 1, 2],
    }
