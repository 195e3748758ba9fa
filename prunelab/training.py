"""Training and evaluation on in-memory tensors.

The whole split lives in one tensor on the training device; batches are index slices of
it. This avoids the per-sample PIL + transform DataLoader of the handout, which dominates
the epoch time on a small CNN (DESIGN.md §3).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from prunelab.metrics import scores_from_predictions
from prunelab.runtime import progress


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
    label: str = "train",
    max_batches: int | None = None,
) -> list[EpochLog]:
    """Adam on cross-entropy; evaluates the test split after every epoch. `label` names the
    progress bar (the stages say which seed is training). `max_batches` ends the last epoch
    early after that many batches in all (fine-tuning for a fraction of an epoch).

    On the CPU, model and images are laid out channels-last while training: oneDNN's
    convolutions and max pooling are much faster that way (SimpleCNN at batch 64: about
    25 % less time per step), and the fused Adam kernel replaces a dozen small ops per
    parameter (see `FusedAdam`). The model is handed back in the ordinary layout.
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
    optimizer = adam(model, lr)
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
            acc, bacc = scores_from_predictions(test[1], predict(model, x_test), n_classes)
            entry = EpochLog(epoch, float(total_loss) / max(1, len(order)), acc, bacc)
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


class FusedAdam:
    """Adam with torch.optim.Adam's defaults (betas 0.9 / 0.999, eps 1e-8, no weight decay),
    one call of torch's fused Adam kernel per step: the call torch.optim.Adam(fused=True)
    makes, so the updates are bit-for-bit the same (tests/test_training.py).

    Why not torch.optim.Adam itself: constructing any torch.optim optimizer imports
    TorchDynamo (Optimizer.__init__ is wrapped in torch._disable_dynamo), 2.8 s of the
    train stage on 2 cores, for a compiler nothing here uses.
    """

    def __init__(self, params: list[nn.Parameter], lr: float):
        self.params, self.lr = params, lr
        self.exp_avgs = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in params]
        self.exp_avg_sqs = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in params]
        self.steps = [torch.zeros((), dtype=torch.float32, device=p.device) for p in params]  # as torch's fused Adam

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop the gradients (`set_to_none` is there for torch.optim's signature; always True)."""
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        live = [i for i, p in enumerate(self.params) if p.grad is not None]
        steps = [self.steps[i] for i in live]
        torch._foreach_add_(steps, 1)
        torch._fused_adam_(
            [self.params[i] for i in live],
            [self.params[i].grad for i in live],
            [self.exp_avgs[i] for i in live],
            [self.exp_avg_sqs[i] for i in live],
            [],
            steps,
            amsgrad=False,
            lr=self.lr,
            beta1=0.9,
            beta2=0.999,
            weight_decay=0.0,
            eps=1e-8,
            maximize=False,
            grad_scale=None,
            found_inf=None,
        )


def adam(model: nn.Module, lr: float) -> FusedAdam | torch.optim.Adam:
    """`FusedAdam` where torch's fused kernel applies: every parameter a float on one CPU or
    CUDA device, with one dtype. Otherwise torch.optim.Adam (with its unfused loop)."""
    params = [p for p in model.parameters() if p.requires_grad]
    devices, dtypes = {p.device for p in params}, {p.dtype for p in params}
    fusable = (
        hasattr(torch, "_fused_adam_")
        and len(devices) == len(dtypes) == 1
        and next(iter(devices)).type in ("cpu", "cuda")
        and next(iter(dtypes)) in (torch.float16, torch.bfloat16, torch.float32, torch.float64)
    )
    return FusedAdam(params, lr) if fusable else torch.optim.Adam(params, lr=lr)


def finetune_batches(epochs: float, n_samples: int, batch_size: int) -> tuple[int, int]:
    """(whole epochs to start, batches in all) for fine-tuning `epochs` passes, fractions allowed."""
    batches = max(1, round(epochs * -(-n_samples // batch_size)))
    return max(1, math.ceil(epochs)), batches
