"""The batched torch scores (`prunelab.scoring.batched`) against their NumPy reference
(`prunelab.scoring.scores`): equal on logits full of ties, for 2 and 10 classes, with leading batch
dims and classes absent from either split; and `evaluate_orders`, which scores with them, against the
reference path on the same sweep logits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from prunelab.pruning.sweep import block_outputs, sweep_logits
from prunelab.scoring import batched, scores
from prunelab.scoring.evaluate import SplitOutputs, evaluate_orders
from tests.helpers import lab_view, tiny_model

CPU = torch.device("cpu")
# Counts turned into percentages by the same formulas: equal to the last bit.
EXACT = ("acc", "bacc", "recal_acc", "recal_bacc")
BATCH = (3, 4)


def tied_logits(rng: np.random.Generator, n: int, n_classes: int, noisy_row: bool) -> np.ndarray:
    """Logits (3×4×n×C) full of ties: rounded to one decimal (ties between examples and between classes),
    the first ten examples repeated, row (0, 1) constant, and, with `noisy_row`, row (2, 3) a constant
    split by float64 rounding noise (what the fast sweep leaves of a dead model) for snapping to undo.
    Row (0, 0) stays unrounded: its calibration logits are constant (see `calibration_logits`)."""
    z = rng.normal(size=(*BATCH, n, n_classes)) * 2
    rounded = np.round(z, 1)
    rounded[0, 0] = z[0, 0]
    rounded[..., n // 2 : n // 2 + 10, :] = rounded[..., :10, :]
    rounded[0, 1] = 0.5
    if noisy_row:
        rounded[2, 3] = 0.7 + rng.normal(scale=1e-14, size=(n, n_classes))
    return rounded


def calibration_logits(rng: np.random.Generator, n: int, n_classes: int) -> np.ndarray:
    """float32, as the sweep hands them over, with ties; row (0, 0) constant. A constant row makes the
    balanced bias the same for every class up to rounding, so its test logits must not tie across
    classes: which of two exactly tied classes wins would then be decided by rounding, in either
    implementation."""
    z = np.round(rng.normal(size=(*BATCH, n, n_classes)) * 2, 1)
    z[0, 0] = 0.25
    return z.astype(np.float32)


def both(test: np.ndarray, y: np.ndarray, cal: np.ndarray, yc: np.ndarray, n_classes: int) -> tuple[dict, dict]:
    """(reference scores, batched scores) of the same logits."""
    expected = scores.score_logits(test, y, cal, yc, n_classes)
    got = batched.score_logits(torch.from_numpy(test), torch.from_numpy(y), torch.from_numpy(cal), yc, n_classes)
    return expected, got


def assert_same_scores(expected: dict, got: dict, n_classes: int) -> None:
    assert set(got) == set(scores.SCORES)
    for name in EXACT:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
        assert got[name].dtype == np.float64 and got[name].shape == expected[name].shape
    if n_classes == 2:  # rank sums of half-integers are exact, and so is every step after them
        np.testing.assert_array_equal(got["roc_auc"], expected["roc_auc"])
    else:  # torch's softmax may round an ulp apart from NumPy's
        np.testing.assert_allclose(got["roc_auc"], expected["roc_auc"], rtol=0, atol=1e-9)


@pytest.mark.parametrize("n_classes", [2, 10])
@pytest.mark.parametrize("absent_in_calibration", [False, True])
def test_batched_scores_equal_the_reference_on_tied_logits(n_classes: int, absent_in_calibration: bool) -> None:
    rng = np.random.default_rng(n_classes + 10 * absent_in_calibration)
    n, n_cal = 300, 200
    y = rng.integers(0, n_classes, n)
    yc = rng.integers(0, n_classes, n_cal)
    if absent_in_calibration:  # two classes: the threshold cannot be fitted; ten: class 3 is fitted out
        yc[yc == (1 if n_classes == 2 else 3)] = 0
    test = tied_logits(rng, n, n_classes, noisy_row=True)
    cal = calibration_logits(rng, n_cal, n_classes)
    expected, got = both(test, y, cal, yc, n_classes)
    assert got["acc"].shape == BATCH
    assert_same_scores(expected, got, n_classes)


@pytest.mark.parametrize("n_classes", [2, 10])
def test_auc_without_both_classes_is_nan_like_the_reference(n_classes: int) -> None:
    """All test labels one class: no AUC (NaN). Ten classes with one absent: it is left out of the mean."""
    rng = np.random.default_rng(20 + n_classes)
    test = tied_logits(rng, 150, n_classes, noisy_row=False)
    cal = calibration_logits(rng, 100, n_classes)
    yc = rng.integers(0, n_classes, 100)
    single = np.ones(150, dtype=np.int64)
    expected, got = both(test, single, cal, yc, n_classes)
    assert np.isnan(got["roc_auc"]).all()
    assert_same_scores(expected, got, n_classes)
    if n_classes > 2:
        missing = rng.integers(0, n_classes - 1, 150)  # class 9 absent
        expected, got = both(test, missing, cal, yc, n_classes)
        assert np.isfinite(got["roc_auc"]).all()
        assert_same_scores(expected, got, n_classes)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_snapping_ranks_and_threshold_equal_the_reference(dtype: type) -> None:
    """snap_ties, the AUC of snapped scores and the threshold fitted on them, on float32 and float64 rows
    with ties split by rounding noise and with duplicates; a NaN makes its row one run (the tolerance is
    NaN), and a row of NaNs has no AUC."""
    rng = np.random.default_rng(30)
    n = 200
    labels = rng.integers(0, 2, n)
    values = np.round(rng.normal(size=(2, 3, n)), 1)
    values[0, 0] = 0.3 + rng.normal(scale=1e-14, size=n)  # noise below the tolerance: one run
    values[0, 1, 100:] = values[0, 1, :100]
    values[1, 2] = -5.0
    values = values.astype(dtype)
    torch_values = torch.from_numpy(values)
    np.testing.assert_array_equal(batched.snap_ties(torch_values).numpy(), scores.snap_ties(values))
    threshold = batched.fit_threshold(torch_values, torch.from_numpy(labels))
    np.testing.assert_array_equal(threshold.numpy(), scores.fit_threshold(scores.snap_ties(values), labels))

    with_nan = values.astype(np.float64)
    with_nan[1, 0, 17] = np.nan
    with_nan[1, 1] = np.nan
    logits = np.stack([np.zeros_like(with_nan), with_nan], axis=-1)  # logit difference = the values
    got = batched.roc_auc(torch.from_numpy(logits), torch.from_numpy(labels), 2)
    expected = scores.roc_auc(scores.snap_ties(with_nan), labels, 2)
    np.testing.assert_array_equal(got, expected)
    assert got[1, 0] == 50.0 and np.isnan(got[1, 1]) and np.isfinite(np.delete(got.ravel(), 4)).all()


def _logits_for_bias(rng: np.random.Generator, case: str, n: int, n_classes: int, labels: np.ndarray) -> np.ndarray:
    z = rng.normal(size=(2, 3, n, n_classes)) * (20.0 if case == "confident" else 2.0)
    z[..., np.arange(n), labels] += 1.5
    if case == "underflowing":  # class 2 far below the others everywhere: its probabilities round to 0
        z[..., 2] -= 800.0
    return z


@pytest.mark.parametrize("case", ["moderate", "confident", "underflowing", "absent"])
def test_newton_bias_equals_the_fixed_point_reference(case: str) -> None:
    """Newton's bias equals the reference's fixed point run to convergence (which takes it up to a
    thousand iterations on confident logits), and zeroes the cross-entropy gradient to 1e-12."""
    rng = np.random.default_rng(40)
    n, n_classes = 300, 4
    labels = rng.choice([0, 1, 3], n) if case == "absent" else rng.integers(0, n_classes, n)
    logits = _logits_for_bias(rng, case, n, n_classes, labels)
    got = batched.fit_bias(torch.from_numpy(logits), torch.from_numpy(labels), n_classes).numpy()
    expected = scores.fit_bias(logits, labels, n_classes, iterations=10_000, tol=1e-13)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    present = np.bincount(labels, minlength=n_classes) > 0
    gradient = scores.softmax(logits + got[..., None, :]).mean(axis=-2) - np.bincount(labels, minlength=n_classes) / n
    np.testing.assert_allclose(gradient[..., present], 0.0, atol=1e-12)
    np.testing.assert_allclose(got[..., present].sum(axis=-1), 0.0, atol=1e-12)
    np.testing.assert_array_equal(
        batched.prior_adjusted(torch.from_numpy(got), labels, n_classes).numpy(),
        scores.prior_adjusted(got, labels, n_classes),
    )
    for row in np.ndindex(logits.shape[:2]):  # a row's fit does not depend on its batch mates
        alone = batched.fit_bias(torch.from_numpy(logits[row]), torch.from_numpy(labels), n_classes).numpy()
        np.testing.assert_allclose(alone, got[row], rtol=0, atol=1e-12)


@pytest.mark.parametrize(("arch", "n_classes", "side"), [("pair_cnn", 2, 28), ("simple_cnn", 10, 32)])
def test_evaluate_orders_scores_as_the_reference_path_would(arch: str, n_classes: int, side: int) -> None:
    """evaluate_orders (logits kept as tensors, batched scores, several groups of orders) against the
    reference path: the sweep's logits as NumPy arrays, scored by `scores.score_logits`."""
    view = lab_view(tiny_model(arch), arch)  # the lab's layer
    gen = torch.Generator().manual_seed(50)
    channels = 2 if n_classes == 2 else 3
    x, xc = torch.randn(120, channels, side, side, generator=gen), torch.randn(80, channels, side, side, generator=gen)
    y, yc = torch.randint(0, n_classes, (120,), generator=gen), torch.randint(0, n_classes, (80,), generator=gen)
    test = SplitOutputs(block_outputs(view, x, 64, CPU), y)
    calibration = SplitOutputs(block_outputs(view, xc, 64, CPU), yc)
    orders = np.stack([np.random.default_rng(s).permutation(view.group.channels) for s in range(3)])
    ks = [0, 1, 4, 9]  # K stays small: the walk's cost grows with the largest
    one_order = len(ks) * (len(y) + len(yc)) * n_classes
    got = evaluate_orders(view, test, calibration, orders, ks, n_classes, element_budget=2 * one_order)

    test_logits = sweep_logits(view, test.outputs, orders, ks, out_dtype=torch.float64)
    cal_logits = sweep_logits(view, calibration.outputs, orders, ks)
    expected = scores.score_logits(test_logits, y.numpy(), cal_logits, yc.numpy(), n_classes)
    assert got["acc"].shape == (len(orders), len(ks))
    assert_same_scores(expected, got, n_classes)
