"""Training and evaluation on in-memory tensors.

The whole split lives in one tensor on the training device; batches are index slices of
it. This avoids the per-sample PIL + transform DataLoader of the handout, which dominates
the epoch time on a small CNN (DESIGN.md §3).
"""

from __future__ import annotations

import ctypes
import ctypes.util
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
    """Adam on cross-entropy; evaluates the test split after every epoch.

    On the CPU, model and images are laid out channels-last while training: oneDNN's
    convolutions and max pooling are much faster that way (SimpleCNN at batch 64: about
    25 % less time per step), and the fused Adam kernel replaces a dozen small ops per
    parameter. The model is handed back in the ordinary layout.
    """
    if device.type == "cpu":
        keep_freed_memory()
    layout = training_layout(device, train[0])
    x_train, y_train = train[0].to(device).contiguous(memory_format=layout), train[1].to(device)
    x_test = test[0].contiguous(memory_format=layout) if test[0].dim() == 4 else test[0]
    model.to(device).train()
    if layout == torch.channels_last:
        model.to(memory_format=layout)
    weights = class_weights(train[1], n_classes, class_weight)
    loss_fn = nn.CrossEntropyLoss(weight=None if weights is None else weights.to(device))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, fused=_fused_adam(model, device))
    shuffler = torch.Generator().manual_seed(seed)  # CPU generator: same order on every device
    history = []
    try:
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
            acc, bacc = scores_from_predictions(test[1], predict(model, x_test), n_classes)
            entry = EpochLog(epoch, float(total_loss) / len(order), acc, bacc)
            history.append(entry)
            if on_epoch:
                on_epoch(entry)
    finally:
        if layout == torch.channels_last:
            model.to(memory_format=torch.contiguous_format)
    return history


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory for reuse rather than hand it back to the kernel.

    By default glibc returns freed blocks above a (moving) mmap threshold to the kernel
    and trims the top of the heap, so every training step page-faults its activation
    buffers in again; on the 2-core VM this project is measured on that was 10-25 % of a
    SimpleCNN step at batch 64. A fixed 32 MiB mmap threshold and a 1 GiB trim threshold
    keep those buffers in the heap. Process-wide and idempotent; the price is that up to
    1 GiB of freed memory stays with the process. Returns False where glibc's mallopt is
    not available (nothing changes then).
    """
    global _MEMORY_KEPT
    if _MEMORY_KEPT is None:
        _MEMORY_KEPT = False
        name = ctypes.util.find_library("c")
        try:
            mallopt = ctypes.CDLL(name).mallopt if name else None
        except (OSError, AttributeError):
            mallopt = None
        if mallopt is not None:
            m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's <malloc.h>
            _MEMORY_KEPT = bool(mallopt(m_mmap_threshold, 32 << 20)) and bool(mallopt(m_trim_threshold, 1 << 30))
    return _MEMORY_KEPT


_MEMORY_KEPT: bool | None = None


def training_layout(device: torch.device, images: torch.Tensor) -> torch.memory_format:
    """channels_last for image batches on the CPU; the default layout elsewhere (GPU timings
    of the two layouts have not been measured here)."""
    return torch.channels_last if device.type == "cpu" and images.dim() == 4 else torch.contiguous_format


def _fused_adam(model: nn.Module, device: torch.device) -> bool | None:
    """The fused Adam kernel where torch has one for these parameters (CPU and CUDA floats)."""
    floating = all(p.dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64) for p in model.parameters())
    return True if floating and device.type in ("cpu", "cuda") else None
