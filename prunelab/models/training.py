"""Training and evaluation on in-memory tensors.

The whole split lives in one tensor on the training device; batches are index slices of
it. This avoids the per-sample PIL + transform DataLoader of the handout, which dominates
the epoch time on a small CNN (docs/performance.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from prunelab import _speed
from prunelab.runtime import progress
from prunelab.scoring.scores import scores_from_predictions


@dataclass(frozen=True)
class EpochLog:
    epoch: int
    train_loss: float
    test_acc: float
    test_bacc: float


def class_weights(labels: torch.Tensor, n_classes: int, mode: str) -> torch.Tensor | None:
    """`balanced`: weight each class by N / (n_classes · count), as scikit-learn does."""
    if mode == "none":
        return None
    counts = torch.bincount(labels, minlength=n_classes).double()
    return (len(labels) / (n_classes * counts.clamp(min=1))).float()


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = [model(images[i : i + batch_size].to(device)).argmax(1) for i in range(0, len(images), batch_size)]
    model.train(was_training)
    return torch.cat(out).cpu()


def train_model(
    model: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor] | None,
    *,
    n_classes: int,
    epochs: int,
    batch_size: int,
    lr: float,
    class_weight: str,
    device: torch.device,
    seed: int,
    on_epoch: Callable[[EpochLog], None] | None = None,
    label: str = "train",
    max_batches: int | None = None,
) -> list[EpochLog]:
    """Adam on cross-entropy; evaluates the test split after every epoch (`test` None: no evaluation, the
    log's test scores are NaN; fine-tuning scores its model once, at the end). `label` names the
    progress bar (the stages say which seed is training). `max_batches` ends the last epoch
    early after that many batches in all (fine-tuning for a fraction of an epoch).

    On the CPU, model and images are laid out channels-last while training: oneDNN's
    convolutions and max pooling are much faster that way (SimpleCNN at batch 64: about
    25 % less time per step), and fused Adam replaces a dozen small ops per parameter. The
    model is handed back in the ordinary layout.
    """
    layout = training_layout(device, train[0])
    x_train, y_train = train[0].to(device).contiguous(memory_format=layout), train[1].to(device)
    x_test = None if test is None else test[0].contiguous(memory_format=layout) if test[0].dim() == 4 else test[0]
    model.to(device).train()
    if layout == torch.channels_last:
        model.to(memory_format=layout)
    weights = class_weights(train[1], n_classes, class_weight)
    loss_fn = nn.CrossEntropyLoss(weight=None if weights is None else weights.to(device))
    optimizer = _speed.adam(model, lr)
    shuffler = torch.Generator().manual_seed(seed)  # CPU generator: same order on every device
    batches_per_epoch = -(-len(y_train) // batch_size)
    history = []
    try:
        for epoch in progress(range(1, epochs + 1), desc=label, total=epochs):
            order = torch.randperm(len(y_train), generator=shuffler).to(device)
            if max_batches is not None:  # the batches left of the budget, in this epoch
                left = max_batches - (epoch - 1) * batches_per_epoch
                order = order[: max(0, left) * batch_size]
            total_loss = torch.zeros((), device=device)
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                loss = loss_fn(model(x_train[idx]), y_train[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total_loss += loss.detach() * len(idx)
            acc = bacc = math.nan
            if test is not None:
                acc, bacc = scores_from_predictions(test[1], predict(model, x_test), n_classes)
            entry = EpochLog(epoch, float(total_loss) / max(1, len(order)), acc, bacc)
            history.append(entry)
            if on_epoch:
                on_epoch(entry)
    finally:
        if layout == torch.channels_last:
            model.to(memory_format=torch.contiguous_format)
    return history


def training_layout(device: torch.device, images: torch.Tensor) -> torch.memory_format:
    """channels_last for image batches on the CPU; the default layout elsewhere (GPU timings
    of the two layouts have not been measured here)."""
    return torch.channels_last if device.type == "cpu" and images.dim() == 4 else torch.contiguous_format


def finetune_batches(epochs: float, n_samples: int, batch_size: int) -> tuple[int, int]:
    """(whole epochs to start, batches in all) for fine-tuning `epochs` passes, fractions allowed."""
    batches = max(1, round(epochs * -(-n_samples // batch_size)))
    return max(1, math.ceil(epochs)), batches
