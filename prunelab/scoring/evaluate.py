"""Scoring pruned models: every K of many removal orders at once (from the fast sweep's logits),
and one model on one split. The scores themselves are defined in `prunelab.scoring.scores`.

Everything runs on the logits of the fast sweep (`prunelab.pruning.sweep.sweep_logits`), a few
orders at a time so that memory stays bounded. The logits stay on the sweep's device and are scored
there, all orders and K at once, by `prunelab.scoring.batched` (whose reference is
`prunelab.scoring.scores.score_logits`); only the scores come back.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from prunelab.pruning.sweep import SweepInputs, sweep_logits
from prunelab.pruning.views import GroupView
from prunelab.scoring.batched import score_logits
from prunelab.scoring.scores import (
    SCORES,
    accuracy,
    balanced_accuracy,
    confusion_counts,
    roc_auc,
    softmax,
)


@dataclass(frozen=True)
class SplitOutputs:
    """One split as the sweep sees it: the group's sweep inputs (computed once: `block_outputs`) and the labels."""

    outputs: SweepInputs
    labels: torch.Tensor


def evaluate_orders(
    view: GroupView,
    test: SplitOutputs,
    calibration: SplitOutputs,
    orders: np.ndarray,
    ks: list[int],
    n_classes: int,
    mode: str = "remove",
    element_budget: int = 1 << 25,
) -> dict[str, np.ndarray]:
    """Every score of SCORES for pruning orders[r][:k] of the view's group (the splits hold its
    sweep inputs), as R×len(ks) arrays in percent.

    Orders are swept a group at a time, so the logits held at once stay within about
    `element_budget` numbers whatever R, K and the split sizes.
    """
    orders = np.asarray(orders)
    per_order = len(ks) * (len(test.labels) + len(calibration.labels)) * n_classes
    group = max(1, element_budget // max(1, per_order))
    parts: list[dict[str, np.ndarray]] = []
    for first in range(0, len(orders), group):
        chosen = orders[first : first + group]
        # float64 test logits: the default decision then matches a reference forward pass (tested).
        test_logits = sweep_logits(view, test.outputs, chosen, ks, mode, out_dtype=torch.float64, on_device=True)
        cal_logits = sweep_logits(view, calibration.outputs, chosen, ks, mode, on_device=True)
        parts.append(score_logits(test_logits, test.labels, cal_logits, calibration.labels, n_classes))
    return {name: np.concatenate([p[name] for p in parts]) for name in SCORES}


# Scoring one model, on the CPU: image batches of 256 in channels-last layout, whatever the model's own
# layout (a channels-last input is enough for oneDNN's convolutions to take their channels-last kernels).
# Measured on 2 cores, the pair CNN over 2,600 images: 0.52 s in NCHW at batch 1000, 0.37 s channels-last at
# batch 1000, 0.22 s channels-last at batch 256, with identical scores there (over the whole study, the logits'
# last bits moved two tied pairs of one ROC AUC: docs/performance.md). Elsewhere the ordinary layout.
INFERENCE_BATCH = 256


def inference_batches(
    images: torch.Tensor, device: torch.device, batch_size: int = INFERENCE_BATCH
) -> Iterator[torch.Tensor]:
    """`images` in batches on `device`, laid out for a fast forward pass (channels-last on the CPU)."""
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].to(device)
        if device.type == "cpu" and batch.dim() == 4:
            batch = batch.contiguous(memory_format=torch.channels_last)
        yield batch


@torch.no_grad()
def model_scores(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, n_classes: int, batch_size: int = INFERENCE_BATCH
) -> dict[str, float]:
    """acc, bacc and roc_auc (percent) of a model on a split, at its own decision."""
    device = next(model.parameters()).device
    model.eval()
    logits = torch.cat([model(batch).double().cpu() for batch in inference_batches(images, device, batch_size)])
    truth = labels.cpu().numpy()
    conf = confusion_counts(truth, logits.argmax(-1).numpy(), n_classes)
    scores = logits[:, 1] - logits[:, 0] if n_classes == 2 else softmax(logits.numpy())
    return {
        "acc": float(accuracy(conf)),
        "bacc": float(balanced_accuracy(conf)),
        "roc_auc": float(roc_auc(np.asarray(scores), truth, n_classes)),
    }


@torch.no_grad()
def every_score(
    model: nn.Module,
    test: tuple[torch.Tensor, torch.Tensor],
    calibration: tuple[torch.Tensor, torch.Tensor],
    n_classes: int,
    batch_size: int = INFERENCE_BATCH,
) -> dict[str, float]:
    """Every score of SCORES (percent) of one model: at its own decision on the test split, and
    with the decision re-fitted on the calibration split, as the sweep scores each K."""
    device = next(model.parameters()).device
    model.eval()

    def logits(images: torch.Tensor) -> torch.Tensor:
        parts = [model(batch).double() for batch in inference_batches(images, device, batch_size)]
        return torch.cat(parts)[None]  # one "order" for the batched scorer

    scores = score_logits(
        logits(test[0]), test[1].to(device), logits(calibration[0]), calibration[1].to(device), n_classes
    )
    return {name: float(values[0]) for name, values in scores.items()}
