"""Threshold-free AUC and calibration fits, checked against scikit-learn, brute force and scipy.optimize."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import logsumexp

# scikit-learn is installed with mlxtend (a project dependency); it is the reference the contract names.
from sklearn.metrics import roc_auc_score

from prunelab.scoring.scores import (
    ABSENT_LOG_PROB,
    fit_bias,
    fit_threshold,
    predict_with_threshold,
    prior_adjusted,
    roc_auc,
    softmax,
)

ROOT = Path(__file__).resolve().parents[1]


def _balanced_accuracy(labels: np.ndarray, predictions: np.ndarray) -> float:
    """Written out here rather than imported, so the test does not share code with what it checks."""
    pos, neg = labels == 1, labels == 0
    return 50.0 * ((predictions[pos] == 1).mean() + (predictions[neg] == 0).mean())


# --- roc_auc -------------------------------------------------------------------------------------------------


def test_two_class_auc_by_hand() -> None:
    # Positives score {1, 2}, negatives {0, 1}: of the 4 (pos, neg) pairs, 3 are ordered right and the
    # (1, 1) pair is a tie worth one half, so AUC = 3.5 / 4.
    labels = np.array([0, 0, 1, 1])
    scores = np.array([0.0, 1.0, 1.0, 2.0])
    assert roc_auc(scores, labels, 2) == pytest.approx(87.5, abs=1e-12)
    assert roc_auc(-scores, labels, 2) == pytest.approx(12.5, abs=1e-12)
    assert roc_auc(np.zeros(4), labels, 2) == pytest.approx(50.0, abs=1e-12)


def test_two_class_auc_matches_sklearn_with_ties_batched() -> None:
    rng = np.random.default_rng(0)
    n = 60
    labels = rng.integers(0, 2, n)
    scores = rng.integers(-3, 4, (3, 4, n)).astype(np.float64)  # 7 distinct values: many ties
    got = roc_auc(scores, labels, 2)
    assert got.shape == (3, 4)
    for idx in np.ndindex(3, 4):
        assert got[idx] == pytest.approx(100 * roc_auc_score(labels, scores[idx]), rel=1e-12, abs=1e-12)


def test_many_class_auc_matches_sklearn_macro_ovr_batched() -> None:
    rng = np.random.default_rng(1)
    n, c = 80, 10
    labels = np.concatenate([np.arange(c), rng.integers(0, c, n - c)])  # every class present
    # Coarse logits give tied probabilities within each column.
    probs = softmax(rng.integers(-2, 3, (3, 4, n, c)).astype(np.float64))
    got = roc_auc(probs, labels, c)
    assert got.shape == (3, 4)
    for idx in np.ndindex(3, 4):
        expected = roc_auc_score(labels, probs[idx], multi_class="ovr", average="macro")
        assert got[idx] == pytest.approx(100 * expected, rel=1e-12, abs=1e-12)


def test_many_class_auc_leaves_absent_classes_out_of_the_mean() -> None:
    rng = np.random.default_rng(2)
    n, c = 50, 5
    labels = rng.choice([0, 2, 3], n)  # classes 1 and 4 never occur
    probs = softmax(rng.normal(size=(2, n, c)))
    got = roc_auc(probs, labels, c)
    for row in range(2):
        per_class = [roc_auc_score(labels == k, probs[row, :, k]) for k in (0, 2, 3)]
        assert got[row] == pytest.approx(100 * np.mean(per_class), rel=1e-12)
    assert np.isfinite(got).all()


def test_auc_is_nan_when_undefined_and_rejects_bad_shapes() -> None:
    assert np.isnan(roc_auc(np.arange(4.0), np.zeros(4, dtype=int), 2))
    assert np.isnan(roc_auc(softmax(np.zeros((4, 3))), np.ones(4, dtype=int), 3))
    with pytest.raises(ValueError):
        roc_auc(np.zeros((4, 2)), np.array([0, 1, 0, 1]), 3)
    with pytest.raises(ValueError):
        roc_auc(np.zeros(4), np.array([0, 1, 2, 1]), 2)


def test_softmax_is_stable_and_normalised() -> None:
    p = softmax(np.array([[1000.0, 1000.0, -1000.0], [0.0, np.log(3.0), -np.inf]]))
    assert np.isfinite(p).all()
    np.testing.assert_allclose(p, [[0.5, 0.5, 0.0], [0.25, 0.75, 0.0]], atol=1e-15)
    np.testing.assert_allclose(softmax(np.zeros((2, 4)), axis=0), np.full((2, 4), 0.5))


# --- fit_threshold -------------------------------------------------------------------------------------------


def _brute_force_best(diffs: np.ndarray, labels: np.ndarray) -> float:
    values = np.unique(diffs)
    thresholds = np.concatenate([[values[0] - 1], (values[:-1] + values[1:]) / 2, [values[-1] + 1]])
    return max(_balanced_accuracy(labels, (diffs > t).astype(int)) for t in thresholds)


def test_threshold_reaches_the_brute_force_maximum_batched() -> None:
    rng = np.random.default_rng(3)
    n = 40
    labels = (rng.random(n) < 0.3).astype(int)  # imbalanced, so the default threshold is rarely optimal
    diffs = (rng.integers(-4, 5, (3, 4, n)) + labels).astype(np.float64)  # integers: ties across classes too
    t = fit_threshold(diffs, labels)
    assert t.shape == (3, 4)
    predictions = predict_with_threshold(diffs, t)
    assert predictions.shape == diffs.shape and predictions.dtype == np.int64
    for idx in np.ndindex(3, 4):
        assert _balanced_accuracy(labels, predictions[idx]) == pytest.approx(_brute_force_best(diffs[idx], labels))
        np.testing.assert_array_equal(predictions[idx], (diffs[idx] > t[idx]).astype(int))


def test_threshold_of_a_row_depends_only_on_that_row() -> None:
    rng = np.random.default_rng(4)
    n = 30
    labels_a = rng.integers(0, 2, n)
    labels_b = 1 - labels_a
    diffs = rng.normal(size=(5, n))
    kept = diffs.copy()
    alone = fit_threshold(diffs, labels_a)
    fit_threshold(rng.normal(size=(5, n)), labels_b)  # another dataset, other labels, in between
    np.testing.assert_array_equal(fit_threshold(diffs, labels_a), alone)
    np.testing.assert_array_equal(diffs, kept)  # inputs are not modified
    for row in range(5):
        np.testing.assert_array_equal(fit_threshold(diffs[row], labels_a), alone[row])


def test_threshold_separates_a_separable_set_and_keeps_the_default_when_it_is_optimal() -> None:
    labels = np.array([0, 0, 0, 1, 1])
    diffs = np.array([3.0, 4.0, 5.0, 7.0, 9.0])  # separable, but the default threshold 0 calls everything 1
    t = fit_threshold(diffs, labels)
    assert t == pytest.approx(6.0)
    assert _balanced_accuracy(labels, predict_with_threshold(diffs, t)) == 100.0
    # Separable around 0: every threshold in [-1, 2) is perfect; the candidate returned is the midpoint.
    assert fit_threshold(np.array([-3.0, -1.0, 2.0, 5.0]), np.array([0, 0, 1, 1])) == 0.5
    # Cuts at 1.5, 2.5 and 3.5 all score 75 %: the one nearest the default 0 wins.
    assert fit_threshold(np.array([1.0, 2.0, 3.0, 4.0]), np.array([0, 1, 0, 1])) == 1.5


def test_threshold_ties_prefer_the_candidate_closest_to_zero() -> None:
    # Alternating labels on sorted scores: the middle cut (3.5) and both edges tie at 50 %.
    labels = np.array([1, 0, 1, 0])
    diffs = np.array([2.0, 3.0, 4.0, 5.0])
    best = _brute_force_best(diffs, labels)
    t = fit_threshold(diffs, labels)
    assert _balanced_accuracy(labels, predict_with_threshold(diffs, t)) == best
    assert t == 0.0  # "all class 1" is among the optima and 0 < min realises it: the default is kept
    assert fit_threshold(-diffs, 1 - labels) == 0.0  # mirrored: "all class 0" with 0 > max
    # Optimal cuts at -3 and +1 (75 %): the one nearer 0 wins although it is the larger.
    assert fit_threshold(np.array([-4.0, -2.0, 0.0, 2.0]), np.array([0, 1, 0, 1])) == 1.0
    # Optimal cuts at -2 and +2 (75 %), equally far from 0, the cut at 0 only 50 %: the smaller one wins.
    diffs, labels = np.array([-3.0, -1.0, 1.0, 3.0]), np.array([0, 1, 0, 1])
    assert _balanced_accuracy(labels, predict_with_threshold(diffs, -2.0)) == _brute_force_best(diffs, labels)
    assert _balanced_accuracy(labels, predict_with_threshold(diffs, 2.0)) == _brute_force_best(diffs, labels)
    assert fit_threshold(diffs, labels) == -2.0


def test_threshold_is_the_default_when_a_class_is_absent() -> None:
    np.testing.assert_array_equal(fit_threshold(np.ones((2, 3, 4)), np.zeros(4, dtype=int)), np.zeros((2, 3)))
    np.testing.assert_array_equal(fit_threshold(np.ones((2, 4)), np.ones(4, dtype=int)), np.zeros(2))


# --- fit_bias / prior_adjusted -------------------------------------------------------------------------------


def _mean_ce(bias: np.ndarray, logits: np.ndarray, labels: np.ndarray) -> float:
    z = logits + bias
    return float(np.mean(logsumexp(z, axis=-1) - z[np.arange(len(labels)), labels]))


def _logits(rng: np.random.Generator, batch: tuple[int, ...], n: int, c: int, labels: np.ndarray) -> np.ndarray:
    z = rng.normal(size=(*batch, n, c)) * 2.0
    z[..., np.arange(n), labels] += 1.5  # informative logits ...
    return z + rng.normal(size=c) * 2.0  # ... with a class bias to undo


@pytest.mark.parametrize("c", [2, 10])
def test_bias_zeroes_the_cross_entropy_gradient(c: int) -> None:
    rng = np.random.default_rng(5)
    n = 200
    labels = rng.integers(0, c, n)
    logits = _logits(rng, (3, 4), n, c, labels)
    bias = fit_bias(logits, labels, c, iterations=500)
    assert bias.shape == (3, 4, c)
    np.testing.assert_allclose(bias.sum(axis=-1), 0.0, atol=1e-10)
    freq = np.bincount(labels, minlength=c) / n
    gradient = softmax(logits + bias[..., None, :]).mean(axis=-2) - freq
    np.testing.assert_allclose(gradient, 0.0, atol=1e-9)


def test_bias_matches_direct_minimisation() -> None:
    rng = np.random.default_rng(6)
    n, c = 150, 4
    labels = rng.integers(0, c, n)
    logits = _logits(rng, (), n, c, labels)
    bias = fit_bias(logits, labels, c, iterations=500)
    direct = minimize(_mean_ce, np.zeros(c), args=(logits, labels), method="BFGS", options={"gtol": 1e-12}).x
    direct -= direct.mean()
    np.testing.assert_allclose(bias, direct, atol=1e-5)
    assert _mean_ce(bias, logits, labels) <= _mean_ce(direct, logits, labels) + 1e-12


def test_one_fixed_point_step_is_exact_for_uninformative_logits() -> None:
    # Logits identical for every example: softmax(z + log freq - z + const) = freq after a single update.
    labels = np.array([0, 0, 0, 1, 2, 2])
    logits = np.broadcast_to(np.array([2.0, -1.0, 0.5]), (2, 6, 3))
    bias = fit_bias(logits, labels, 3, iterations=1)
    freq = np.bincount(labels) / 6
    np.testing.assert_allclose(softmax(logits[:, 0] + bias), np.broadcast_to(freq, (2, 3)), atol=1e-15)


def test_bias_rows_are_independent_of_their_batch() -> None:
    rng = np.random.default_rng(7)
    n, c = 100, 3
    labels = rng.integers(0, c, n)
    logits = _logits(rng, (4,), n, c, labels)
    logits[2] *= 4.0  # a slow row must not change how long the others iterate
    batched = fit_bias(logits, labels, c)
    for row in range(4):
        np.testing.assert_allclose(fit_bias(logits[row], labels, c), batched[row], rtol=0, atol=1e-12)


def test_bias_of_an_absent_class_is_finite_and_very_negative() -> None:
    rng = np.random.default_rng(8)
    n, c = 120, 4
    labels = rng.choice([0, 1, 3], n)  # class 2 never occurs
    logits = _logits(rng, (2,), n, c, labels)
    bias = fit_bias(logits, labels, c, iterations=500)
    assert np.isfinite(bias).all()
    present = [0, 1, 3]
    np.testing.assert_allclose(bias[..., present].sum(axis=-1), 0.0, atol=1e-10)
    probs = softmax(logits + bias[..., None, :])
    assert probs[..., 2].max() <= np.exp(ABSENT_LOG_PROB) * (1 + 1e-9)
    freq = np.bincount(labels, minlength=c) / n
    np.testing.assert_allclose(probs.mean(axis=-2) - freq, 0.0, atol=1e-9)
    # The present classes are fitted as if class 2 did not exist.
    restricted = fit_bias(logits[..., present], np.searchsorted(present, labels), 3, iterations=500)
    np.testing.assert_allclose(bias[..., present], restricted, atol=1e-9)


def test_prior_adjusted_subtracts_the_log_prior() -> None:
    rng = np.random.default_rng(9)
    n, c = 90, 5
    labels = rng.choice([0, 1, 2, 4], n, p=[0.5, 0.3, 0.15, 0.05])
    bias = rng.normal(size=(3, c))
    got = prior_adjusted(bias, labels, c)
    counts = np.bincount(labels, minlength=c)
    for k in range(c):
        if counts[k]:
            np.testing.assert_allclose(got[:, k], bias[:, k] - np.log(counts[k] / n), rtol=1e-15)
        else:
            np.testing.assert_array_equal(got[:, k], bias[:, k])  # absent class: left as it is, not +inf
    assert np.isfinite(got).all()


# --- import hygiene ------------------------------------------------------------------------------------------


def test_module_imports_without_torch() -> None:
    code = "import sys, prunelab.scoring.scores; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
