"""Scoring pruned models at every K: at the default decision, threshold-free, and with the
decision re-fitted on calibration data.

Removing channels shifts fc1's pre-activations, so the pruned model's decision threshold
moves. Accuracy at the default decision mixes how much the kept channels still know with
where the threshold happens to land. Two more scores separate the two:

* ROC AUC of the model's score (two classes: the logit difference; C classes: macro
  one-vs-rest on the softmax probabilities): no threshold at all.
* Recalibrated accuracy and balanced accuracy: only the decision is re-fitted, a handful of
  numbers and no weights, on calibration data that is never the test split. Two classes: the
  threshold on the logit difference that maximises balanced accuracy there. C classes: the
  final layer's bias, re-fitted by cross-entropy (for accuracy), minus the log class prior
  (for balanced accuracy).

Everything runs on the logits of the fast sweep (`prunelab.pruning.sweep_logits`), a few
orders at a time so that memory stays bounded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from prunelab.metrics import accuracy, balanced_accuracy, confusion_counts
from prunelab.models import PrunableNet
from prunelab.pruning import remove_channels, sweep_logits
from prunelab.scores import fit_bias, fit_threshold, predict_with_threshold, prior_adjusted, roc_auc, softmax
from prunelab.training import finetune_batches, train_model

SCORES = ("acc", "bacc", "roc_auc", "recal_acc", "recal_bacc")


@dataclass(frozen=True)
class Split:
    """Block outputs (computed once, N×P×h×w) and labels of one split."""

    outputs: torch.Tensor
    labels: torch.Tensor


# The sweep computes fc1's pre-activation as "everything minus the removed contributions", so a
# pruned model whose outputs are exactly tied across samples (say, only dead channels left)
# shows ties broken by float64 rounding noise (~1e-14). Rankings and thresholds must not read
# that noise: values closer than this, relative to the row's scale, count as equal.
TIE_TOLERANCE = 1e-9


def snap_ties(values: np.ndarray, tolerance: float = TIE_TOLERANCE) -> np.ndarray:
    """`values` (...×n) with every run of sorted neighbours closer than tolerance·max(1, |max|)
    set to the run's smallest value, row by row: ties that rounding noise split are tied again."""
    order = np.argsort(values, axis=-1, kind="stable")
    ranked = np.take_along_axis(values, order, axis=-1)
    scale = np.maximum(1.0, np.abs(ranked).max(axis=-1, keepdims=True)) if ranked.size else 1.0
    new_run = np.diff(ranked, axis=-1, prepend=-np.inf) > tolerance * scale
    starts = np.where(new_run, np.arange(ranked.shape[-1]), 0)
    firsts = np.maximum.accumulate(starts, axis=-1)
    snapped = np.empty_like(values)
    np.put_along_axis(snapped, order, np.take_along_axis(ranked, firsts, axis=-1), axis=-1)
    return snapped


def recalibrated_predictions(
    test_logits: np.ndarray, cal_logits: np.ndarray, cal_labels: np.ndarray, n_classes: int
) -> dict[str, np.ndarray]:
    """Test-split predictions (...×n) with the decision re-fitted on calibration data only:
    {"recal_acc": ..., "recal_bacc": ...}, the decisions for accuracy and for balanced accuracy.
    No test label is an argument: the fitted decision cannot depend on one."""
    if n_classes == 2:
        threshold = fit_threshold(snap_ties(cal_logits[..., 1] - cal_logits[..., 0]), cal_labels)
        predicted = predict_with_threshold(snap_ties(test_logits[..., 1] - test_logits[..., 0]), threshold)
        return {"recal_acc": predicted, "recal_bacc": predicted}
    bias = fit_bias(cal_logits, cal_labels, n_classes)
    balanced = prior_adjusted(bias, cal_labels, n_classes)
    return {
        "recal_acc": (test_logits + bias[..., None, :]).argmax(-1),
        "recal_bacc": (test_logits + balanced[..., None, :]).argmax(-1),
    }


def decisions(
    test_logits: np.ndarray, test_labels: np.ndarray, cal_logits: np.ndarray, cal_labels: np.ndarray, n_classes: int
) -> dict[str, np.ndarray]:
    """Every score of SCORES, per leading row, from logits (...×n×C) on test and calibration data."""
    default = confusion_counts(test_labels, test_logits.argmax(-1), n_classes)
    out = {"acc": accuracy(default), "bacc": balanced_accuracy(default)}
    if n_classes == 2:
        out["roc_auc"] = roc_auc(snap_ties(test_logits[..., 1] - test_logits[..., 0]), test_labels, 2)
    else:
        probabilities = np.moveaxis(snap_ties(np.moveaxis(softmax(test_logits), -1, -2)), -2, -1)
        out["roc_auc"] = roc_auc(probabilities, test_labels, n_classes)
    recal = recalibrated_predictions(test_logits, cal_logits, cal_labels, n_classes)
    out["recal_acc"] = accuracy(confusion_counts(test_labels, recal["recal_acc"], n_classes))
    out["recal_bacc"] = balanced_accuracy(confusion_counts(test_labels, recal["recal_bacc"], n_classes))
    return out


def evaluate_orders(
    model: PrunableNet,
    test: Split,
    calibration: Split,
    orders: np.ndarray,
    ks: list[int],
    n_classes: int,
    mode: str = "remove",
    element_budget: int = 1 << 25,
) -> dict[str, np.ndarray]:
    """Every score of SCORES for pruning orders[r][:k], as R×len(ks) arrays in percent.

    Orders are swept a group at a time, so the logits held at once stay within about
    `element_budget` numbers whatever R, K and the split sizes.
    """
    orders = np.asarray(orders)
    per_order = len(ks) * (len(test.labels) + len(calibration.labels)) * n_classes
    group = max(1, element_budget // max(1, per_order))
    test_labels, cal_labels = test.labels.cpu().numpy(), calibration.labels.cpu().numpy()
    parts: list[dict[str, np.ndarray]] = []
    for first in range(0, len(orders), group):
        chosen = orders[first : first + group]
        # float64 test logits: the default decision then matches a reference forward pass (tested).
        test_logits = sweep_logits(model, test.outputs, chosen, ks, mode, out_dtype=torch.float64)
        cal_logits = sweep_logits(model, calibration.outputs, chosen, ks, mode)
        parts.append(decisions(test_logits, test_labels, cal_logits, cal_labels, n_classes))
    return {name: np.concatenate([p[name] for p in parts]) for name in SCORES}


@torch.no_grad()
def model_scores(
    model: PrunableNet, images: torch.Tensor, labels: torch.Tensor, n_classes: int, batch_size: int = 1000
) -> dict[str, float]:
    """acc, bacc and roc_auc (percent) of a model on a split, at its own decision."""
    device = next(model.parameters()).device
    model.eval()
    parts = [model(images[i : i + batch_size].to(device)).double().cpu() for i in range(0, len(images), batch_size)]
    logits = torch.cat(parts)
    truth = labels.cpu().numpy()
    conf = confusion_counts(truth, logits.argmax(-1).numpy(), n_classes)
    scores = logits[:, 1] - logits[:, 0] if n_classes == 2 else softmax(logits.numpy())
    return {
        "acc": float(accuracy(conf)),
        "bacc": float(balanced_accuracy(conf)),
        "roc_auc": float(roc_auc(np.asarray(scores), truth, n_classes)),
    }


def finetune_pruned(
    model: PrunableNet,
    removed: np.ndarray,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    *,
    n_classes: int,
    epochs: float,
    lr: float,
    batch_size: int,
    class_weight: str,
    device: torch.device,
    seed: int,
    label: str = "finetune",
) -> tuple[PrunableNet, dict[str, float]]:
    """Remove `removed` for real, fine-tune the smaller model on the train split for `epochs`
    passes (fractions allowed), and score it on the test split, which only scores: the
    weights depend on the train split alone (tested). `model` is left unchanged."""
    pruned = remove_channels(model.cpu(), removed.tolist())
    whole, batches = finetune_batches(epochs, len(train[1]), batch_size)
    train_model(
        pruned, train, test, n_classes=n_classes, epochs=whole, batch_size=batch_size, lr=lr,
        class_weight=class_weight, device=device, seed=seed, label=label, max_batches=batches,
    )  # fmt: skip
    return pruned, model_scores(pruned, test[0], test[1], n_classes)
