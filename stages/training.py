"""Training and evaluation on in-memory tensors.

The whole split lives in one tensor on the training device; batches are index slices of
it. This avoids the per-sample PIL + transform DataLoader of the handout, which dominates
the epoch time on a small CNN (DESIGN.md §3).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from stages.metrics import scores_from_predictions
from stages.runtime import progress


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
    test: tuple[torch.Tensor, torch.Tensor],
    *,
    n_classes: int,
    epochs: int,
    batch_size: int,
    lr: float,
    class_weight: str,
    device: torch.device,
    seed: int,
    on_epoch: Callable[[EpochLog], None] | None = None,
) -> list[EpochLog]:
    """Adam on cross-entropy; evaluates the test split after every epoch."""
    x_train, y_train = train[0].to(device), train[1].to(device)
    model.to(device).train()
    weights = class_weights(train[1], n_classes, class_weight)
    loss_fn = nn.CrossEntropyLoss(weight=None if weights is None else weights.to(device))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    shuffler = torch.Generator().manual_seed(seed)  # CPU generator: same order on every device
    history = []
    for epoch in progress(range(1, epochs + 1), desc="train", total=epochs):
        order = torch.randperm(len(y_train), generator=shuffler).to(device)
        total_loss = torch.zeros((), device=device)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            loss = loss_fn(model(x_train[idx]), y_train[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total_loss += loss.detach() * len(idx)
        acc, bacc = scores_from_predictions(test[1], predict(model, test[0]), n_classes)
        entry = EpochLog(epoch, float(total_loss) / len(order), acc, bacc)
        history.append(entry)
        if on_epoch:
            on_epoch(entry)
    return history
