"""Threshold-free and recalibrated scores per K: equal to pruned models scored directly, and
never fitted on test data; fine-tuning learns from the train split alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from prunelab.params import Params
from prunelab.pruning.finetune import finetune_pruned
from prunelab.pruning.surgery import remove_channels
from prunelab.pruning.sweep import block_outputs
from prunelab.pruning.views import GroupView
from prunelab.scoring.evaluate import SplitOutputs, evaluate_orders
from prunelab.scoring.scores import (
    balanced_accuracy,
    confusion_counts,
    fit_decision,
    fit_threshold,
    recalibrated_predictions,
    score_logits,
    snap_ties,
)
from tests.helpers import lab_example, lab_groups, lab_view, tiny_model

CPU = torch.device("cpu")


def data(n: int, seed: int, n_classes: int = 2, spec: tuple[int, int] = (2, 28)) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, spec[0], spec[1], spec[1], generator=gen), torch.randint(0, n_classes, (n,), generator=gen)


def split(view: GroupView, images: torch.Tensor, labels: torch.Tensor) -> SplitOutputs:
    return SplitOutputs(block_outputs(view, images, 64, CPU), labels)


@pytest.mark.parametrize(("arch", "n_classes"), [("pair_cnn", 2), ("simple_cnn", 10)])
def test_sweep_scores_equal_the_pruned_models_scored_directly(arch: str, n_classes: int) -> None:
    """At every K, ROC AUC and the default decision from the fast sweep are those of the
    physically smaller model's own logits (scikit-learn's roc_auc_score for the AUC)."""
    model = tiny_model(arch).double()
    groups, example = lab_groups(model, arch), lab_example(model, arch)
    view = lab_view(model, arch)  # the lab's layer
    p = view.group.channels
    spec = (2, 28) if arch == "pair_cnn" else (3, 32)
    (x, y), (xc, yc) = data(120, 1, n_classes, spec), data(80, 2, n_classes, spec)
    x, xc = x.double(), xc.double()
    orders = np.stack([np.random.default_rng(s).permutation(p) for s in range(2)])
    ks = [0, 3, p // 2, p - 1]
    scores = evaluate_orders(view, split(view, x, y), split(view, xc, yc), orders, ks, n_classes)
    for r, order in enumerate(orders):
        for i, k in enumerate(ks):
            with torch.no_grad():
                logits = remove_channels(model, groups, {view.group.name: order[:k].tolist()}, example)(x).numpy()
            truth = y.numpy()
            if n_classes == 2:
                expected = 100 * roc_auc_score(truth, logits[:, 1] - logits[:, 0])
            else:
                probs = torch.softmax(torch.from_numpy(logits), -1).numpy()
                expected = 100 * roc_auc_score(truth, probs, multi_class="ovr", average="macro", labels=range(10))
            assert scores["roc_auc"][r, i] == pytest.approx(expected, abs=1e-6)
            bacc = balanced_accuracy(confusion_counts(truth, logits.argmax(-1), n_classes))
            assert scores["bacc"][r, i] == pytest.approx(bacc)


def test_recalibration_never_reads_test_labels() -> None:
    """Changing every test label leaves the re-fitted decision where it was: the recalibrated
    scores are those of the same predictions against the new labels. Changing the calibration
    labels moves it."""
    view = lab_view(tiny_model("pair_cnn").double(), "pair_cnn", "conv3")
    (x, y), (xc, yc) = data(150, 3), data(100, 4)
    test, calibration = split(view, x.double(), y), split(view, xc.double(), yc)
    orders, ks = np.arange(128)[None], [0, 32, 64, 96]
    first = evaluate_orders(view, test, calibration, orders, ks, 2)
    flipped = SplitOutputs(test.outputs, 1 - test.labels)
    second = evaluate_orders(view, flipped, calibration, orders, ks, 2)
    # The same predictions, scored against flipped labels: balanced accuracy becomes 100 − b.
    np.testing.assert_allclose(second["recal_bacc"], 100 - first["recal_bacc"])
    np.testing.assert_allclose(second["bacc"], 100 - first["bacc"])
    moved = evaluate_orders(view, test, SplitOutputs(calibration.outputs, 1 - calibration.labels), orders, ks, 2)
    assert not np.allclose(moved["recal_bacc"], first["recal_bacc"])


def test_two_class_recalibration_is_the_balanced_threshold_of_the_calibration_data() -> None:
    rng = np.random.default_rng(0)
    test_logits, cal_logits = rng.normal(size=(3, 50, 2)), rng.normal(size=(3, 70, 2))
    cal_labels = rng.integers(0, 2, 70)
    predicted = recalibrated_predictions(test_logits, fit_decision(cal_logits, cal_labels, 2))["recal_bacc"]
    threshold = fit_threshold(cal_logits[..., 1] - cal_logits[..., 0], cal_labels)
    expected = (test_logits[..., 1] - test_logits[..., 0]) > threshold[:, None]
    np.testing.assert_array_equal(predicted, expected.astype(np.int64))


def test_recalibration_helps_a_model_whose_threshold_drifted() -> None:
    """A constant shift of the logit difference (what removing channels does to fc1) ruins the
    default decision; the re-fitted threshold undoes it."""
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 400)
    diff = labels * 2.0 + rng.normal(size=400) - 8.0  # separable up to noise, shifted far below 0
    logits = np.stack([np.zeros(400), diff], -1)[None]
    default = balanced_accuracy(confusion_counts(labels, logits.argmax(-1), 2))
    recal = recalibrated_predictions(logits[:, :200], fit_decision(logits[:, 200:], labels[200:], 2))["recal_bacc"]
    assert default[0] == 50.0
    assert balanced_accuracy(confusion_counts(labels[:200], recal, 2))[0] > 75.0


def test_finetuning_learns_from_the_train_split_alone() -> None:
    model = tiny_model("pair_cnn")
    groups = lab_groups(model, "pair_cnn")
    train, test, other_test = data(96, 5), data(40, 6), data(40, 7)
    removed = {"conv3": np.arange(64)}
    kwargs = dict(n_classes=2, epochs=0.5, lr=1e-3, batch_size=16, class_weight="none", device=CPU, seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    tuned, scores = finetune_pruned(model, groups, removed, train, test, **kwargs)
    again, _ = finetune_pruned(model, groups, removed, train, other_test, **kwargs)
    other, _ = finetune_pruned(model, groups, removed, data(96, 8), test, **kwargs)
    assert tuned.block.conv.out_channels == 64
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in tuned.state_dict().items())
    assert not all(torch.equal(v, other.state_dict()[k]) for k, v in tuned.state_dict().items())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # the input model is untouched
    assert set(scores) == {"acc", "bacc", "roc_auc"} and 0 <= scores["roc_auc"] <= 100
    # Unscored (the budget stage and the export score their models themselves): the same weights, no scores.
    unscored, none = finetune_pruned(model, groups, removed, train, test, score=False, **kwargs)
    assert none == {} and all(torch.equal(v, unscored.state_dict()[k]) for k, v in tuned.state_dict().items())


def test_training_without_a_test_split_learns_the_same_weights() -> None:
    """`test=None` skips the evaluation after each epoch (its scores are NaN), and nothing else."""
    from prunelab.models.training import train_model

    train, test = data(96, 5), data(40, 6)
    kwargs = dict(n_classes=2, epochs=2, lr=1e-3, batch_size=16, class_weight="none", device=CPU, seed=0)
    evaluated, unevaluated = tiny_model("pair_cnn"), tiny_model("pair_cnn")
    history = train_model(evaluated, train, test, **kwargs)
    quiet = train_model(unevaluated, train, None, **kwargs)
    assert all(torch.equal(v, unevaluated.state_dict()[k]) for k, v in evaluated.state_dict().items())
    assert [e.train_loss for e in quiet] == [e.train_loss for e in history]
    assert all(np.isnan(e.test_acc) and np.isnan(e.test_bacc) for e in quiet)
    assert all(0 <= e.test_acc <= 100 for e in history)


def test_a_fraction_of_an_epoch_trains_that_many_batches() -> None:
    from prunelab.models.training import finetune_batches

    assert finetune_batches(0.25, 5400, 64) == (1, 21)  # 85 batches per epoch
    assert finetune_batches(1.0, 5400, 64) == (1, 85)
    assert finetune_batches(1.5, 100, 10) == (2, 15)
    assert finetune_batches(0.001, 100, 10) == (1, 1)


def test_rounding_noise_does_not_split_ties() -> None:
    """A model whose outputs are all tied scores ROC AUC 50 and re-fits to one class, even when
    the sweep's float64 rounding (~1e-14) made its outputs differ."""
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 300)
    noisy = 0.7 + rng.normal(scale=1e-14, size=(2, 300))
    snapped = snap_ties(noisy)
    assert (snapped == snapped[:, :1]).all()
    np.testing.assert_array_equal(snap_ties(np.array([3.0, 1.0, 2.0])), [3.0, 1.0, 2.0])  # real gaps stay
    logits = np.stack([np.zeros_like(noisy), noisy], -1)
    scores = score_logits(logits[:, :150], labels[:150], logits[:, 150:], labels[150:], 2)
    np.testing.assert_allclose(scores["roc_auc"], 50.0)
    np.testing.assert_allclose(scores["recal_bacc"], 50.0)


def test_finetune_criteria_resolve_the_headline_and_skip_what_the_study_does_not_rank() -> None:
    """`dvc exp run -S 'prune.criteria=[l1_norm,random]'` needs no second edit of finetune.criteria."""
    import yaml

    from prunelab.params import validate
    from prunelab.pruning.finetune import finetune_criteria
    from tests.helpers import ROOT

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert finetune_criteria(*_requested_and_ranked(validate(raw))) == ["mean_activation", "reconstruction", "random"]
    raw["prune"]["criteria"] = ["l1_norm", "random"]
    raw["finetune"]["criteria"] = ["headline", "reconstruction", "random", "l1_norm"]
    assert finetune_criteria(*_requested_and_ranked(validate(raw))) == ["l1_norm", "random"]


def _requested_and_ranked(params: Params) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return params.finetune.criteria, params.prune.criteria
