"""Private speed tricks, in one place, each behind a plain public-API fallback.

The stage scripts switch them on through their entry point (`prunelab.runtime.stage_main`
calls `enable()`); a notebook that imports the library gets the plain versions and a process
that nothing here has touched. Both give the same bits (tests/test_speed.py):

* `adam`: torch's fused Adam kernel called directly (`FusedAdam`), because constructing any
  `torch.optim` optimizer imports TorchDynamo (2.8 s of the train stage on 2 cores). Fallback:
  `torch.optim.Adam(fused=True)`, the very call it reproduces.
* `deterministic_algorithms`: torch's eager-kernel switch `torch._C._set_deterministic_algorithms`,
  because `torch.use_deterministic_algorithms` also sets the inductor compiler's flag, and
  importing the compiler's config imports TorchDynamo (about 3 s per stage). Enabled stages
  also skip deterministic mode's NaN fill of new tensors, a debugging aid that costs about 8 %
  of a training step and changes nothing correct kernels compute. Fallback: the public call.
* `keep_freed_memory`: a process-wide glibc `mallopt` so freed activation buffers stay in the
  heap instead of being page-faulted in again every training step (10-25 % of a SimpleCNN
  step at batch 64 on the 2-core VM). Only `enable()` applies it; there is no fallback to run.

A torch upgrade breaks here first: each trick checks that its private name exists and falls
back when it does not.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from torch import nn

_ENABLED = False
_MEMORY_KEPT: bool | None = None


def enable() -> None:
    """Switch the tricks on for this process (a stage script's, not a library user's)."""
    global _ENABLED
    _ENABLED = True
    keep_freed_memory()


def enabled() -> bool:
    return _ENABLED


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory for reuse rather than hand it back to the kernel.

    By default glibc returns freed blocks above a (moving) mmap threshold to the kernel and
    trims the top of the heap, so every training step page-faults its activation buffers in
    again. A fixed 32 MiB mmap threshold and a 1 GiB trim threshold keep those buffers in the
    heap. Process-wide and idempotent; the price is that up to 1 GiB of freed memory stays
    with the process. Returns False where glibc's mallopt is not available (nothing changes).
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


def deterministic_algorithms() -> None:
    """Make torch's eager kernels deterministic (or raise where one has no such version)."""
    import torch

    switch = getattr(torch._C, "_set_deterministic_algorithms", None)
    if _ENABLED and switch is not None and "torch._inductor.config" not in sys.modules:
        switch(True, warn_only=False)
        torch.utils.deterministic.fill_uninitialized_memory = False
    else:
        torch.use_deterministic_algorithms(True, warn_only=False)


class FusedAdam:
    """Adam with torch.optim.Adam's defaults (betas 0.9 / 0.999, eps 1e-8, no weight decay),
    one call of torch's fused Adam kernel per step: the call torch.optim.Adam(fused=True)
    makes, so the updates are bit-for-bit the same (tests/test_speed.py)."""

    def __init__(self, params: list[nn.Parameter], lr: float):
        import torch

        self.params, self.lr = params, lr
        self.exp_avgs = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in params]
        self.exp_avg_sqs = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in params]
        self.steps = [torch.zeros((), dtype=torch.float32, device=p.device) for p in params]  # as torch's fused Adam

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop the gradients (`set_to_none` is there for torch.optim's signature; always True)."""
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        import torch

        with torch.no_grad():
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


def fusable(params: list[nn.Parameter]) -> bool:
    """Whether torch's fused Adam kernel applies: every parameter a float on one CPU or CUDA device, one dtype."""
    import torch

    devices, dtypes = {p.device for p in params}, {p.dtype for p in params}
    return (
        len(devices) == len(dtypes) == 1
        and next(iter(devices)).type in ("cpu", "cuda")
        and next(iter(dtypes)) in (torch.float16, torch.bfloat16, torch.float32, torch.float64)
    )


def adam(model: nn.Module, lr: float) -> FusedAdam | torch.optim.Adam:
    """Adam over the model's trainable parameters: `FusedAdam` in enabled stages where the fused
    kernel applies, else torch.optim.Adam (fused where it applies: the same bits)."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    fused = fusable(params)
    if _ENABLED and fused and hasattr(torch, "_fused_adam_"):
        return FusedAdam(params, lr)
    return torch.optim.Adam(params, lr=lr, fused=True if fused else None)
