"""The fast K sweep: many removal orders at every K for about the cost of one forward pass.

The block output is computed once, each channel's contribution to fc1 is computed once, and
pruning K channels subtracts a prefix sum of contributions (docs/performance.md). `seed_loop_confusions`
is the lab's loop (prune, then a full pass, per K), kept as the reference and the benchmark's
baseline.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from prunelab.models.nets import PrunableNet
from prunelab.models.training import predict
from prunelab.pruning.surgery import prune
from prunelab.scoring.scores import confusion

CPU_BATCH = 128  # samples per pass on the CPU: larger batches spill the feature maps out of cache


@torch.no_grad()
def block_outputs(model: PrunableNet, images: torch.Tensor, batch_size: int, device: torch.device) -> torch.Tensor:
    """The pruned block's output for every sample (N×P×h×w), computed once for all K.

    On the CPU this runs a channels-last copy of stem and block, at most CPU_BATCH samples
    at a time whatever `batch_size` says: oneDNN's convolutions and, above all, max
    pooling are several times faster on channels-last maps, and small batches keep those
    maps in cache (10,000 SimpleCNN images, one thread: 2.9 s → 1.3 s). The result is
    written into one preallocated, ordinarily laid out tensor; the model is not changed.
    """
    model = model.to(device).eval()
    net: nn.Module = nn.Sequential(model.stem, model.block)
    step, layout = batch_size, torch.contiguous_format
    if device.type == "cpu" and images.dim() == 4:
        step, layout = min(batch_size, CPU_BATCH), torch.channels_last
        net = copy.deepcopy(net).to(memory_format=layout)
    out: torch.Tensor | None = None
    for start in range(0, len(images), step):
        part = net(images[start : start + step].to(device).contiguous(memory_format=layout))
        if out is None:
            out = torch.empty(len(images), *part.shape[1:], dtype=part.dtype, device=device)
        out[start : start + len(part)] = part
    if out is None:  # no images: the shape still follows from the model
        return net(images.to(device))
    return out


@torch.no_grad()
def replacement_values(model: PrunableNet, mode: str, out_side: tuple[int, int]) -> torch.Tensor:
    """What a pruned channel emits at the block output (P×h×w): 0 when removed; with
    zeroed weights, the block applied to a map that equals the conv bias everywhere."""
    p = model.channels
    if mode == "remove" or model.block.conv.bias is None:
        return torch.zeros(p, *out_side)
    bias = model.block.conv.bias.detach().cpu()  # in the model's dtype: float64 models stay exact
    bias_map = bias.view(1, p, 1, 1).expand(1, p, 2 * out_side[0], 2 * out_side[1])
    block = copy.deepcopy(model.block).cpu().eval()
    return block.finish(bias_map)[0]


@dataclass(frozen=True)
class HeadParts:
    """The head split for the sweep: fc1 by channel, and everything after fc1."""

    weight: torch.Tensor  # P×S×H: fc1's weight, grouped by input channel
    bias: torch.Tensor  # H
    rest: nn.Module  # ReLU → fc2 …, in the sweep's dtype
    replaced: torch.Tensor | None  # P×1×H: what a pruned channel still adds (zero_weights); None if nothing

    @staticmethod
    @torch.no_grad()
    def of(
        model: PrunableNet, mode: str, dtype: torch.dtype, device: torch.device, out_side: tuple[int, int]
    ) -> HeadParts:
        p = model.channels
        fc1 = model.head.fc1
        hidden, per_channel = fc1.out_features, fc1.in_features // p
        weight = fc1.weight.detach().to(device, dtype).view(hidden, p, per_channel).permute(1, 2, 0)
        bias = fc1.bias.detach().to(device, dtype)
        rest = copy.deepcopy(model.head.rest).to(device, dtype).eval()
        for layer in rest.modules():
            if getattr(layer, "inplace", False):
                layer.inplace = False  # the sweep reads the pre-activations it passes in again
        values = replacement_values(model, mode, out_side).to(device, dtype).view(p, 1, per_channel)
        replaced = torch.bmm(values, weight) if bool(values.any()) else None
        return HeadParts(weight, bias, rest, replaced)

    @torch.no_grad()
    def contributions(self, outputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """For block outputs n×P×h×w: fc1's pre-activation with nothing removed (n×H), and
        what removing each channel takes away from it (P×n×H)."""
        p, per_channel, _ = self.weight.shape
        z = outputs.to(self.weight.dtype).reshape(-1, p, per_channel).transpose(0, 1)  # P×n×S
        contribution = torch.bmm(z, self.weight)  # channel c's share of fc1's pre-activation
        full = contribution.sum(0) + self.bias
        if self.replaced is not None:
            contribution.sub_(self.replaced)  # a zeroed channel still adds its constant's share
        return full, contribution


# Called with (first sample, rows of ks, first order, head outputs rows×orders×n×C) as the walk
# produces them; every (K row, order, sample) is emitted exactly once.
Emit = Callable[[int, list[int], int, torch.Tensor], None]


@torch.no_grad()
def _sweep(
    model: PrunableNet,
    outputs: torch.Tensor,
    orders: np.ndarray,
    ks: Sequence[int],
    emit: Emit,
    mode: str,
    dtype: torch.dtype,
    chunk_elements: int,
    stash_elements: int,
) -> None:
    """The fast sweep, written once: head outputs (logits) for pruning orders[r][:k] at every
    requested K, handed to `emit` chunk by chunk (see `sweep_confusions` for the method)."""
    device = outputs.device
    head = HeadParts.of(model, mode, dtype, device, tuple(outputs.shape[2:]))
    p, hidden = model.channels, head.bias.shape[0]
    ks_list = [int(k) for k in ks]
    rows_at: dict[int, list[int]] = {}  # K → the result rows that ask for it
    for row, k in enumerate(ks_list):
        rows_at.setdefault(k, []).append(row)
    depth = max(ks_list)
    orders_array = np.asarray(orders, dtype=np.int64).reshape(len(orders), -1)
    if depth > orders_array.shape[1]:
        raise ValueError(f"K={depth} asked for, but the orders list only {orders_array.shape[1]} channels")
    n_orders = len(orders_array)
    steps = torch.as_tensor(orders_array[:, :depth].T.copy(), device=device)  # steps[k - 1]: removed at K=k
    chunk = max(1, chunk_elements // (p * hidden))
    for start in range(0, len(outputs), chunk):
        full, contribution = head.contributions(outputs[start : start + chunk])
        n = len(full)
        if 0 in rows_at:  # nothing removed: the same for every order
            logits = head.rest(full)
            emit(start, rows_at[0], 0, logits.expand(len(rows_at[0]), n_orders, *logits.shape))
        group = max(1, min(n_orders, stash_elements // (n * hidden)))  # orders walked together
        for first in range(0, n_orders, group):
            last = min(n_orders, first + group)
            _walk(head, contribution, full, steps[:, first:last], rows_at, stash_elements, start, first, emit)


@torch.no_grad()
def sweep_confusions(
    model: PrunableNet,
    outputs: torch.Tensor,
    labels: torch.Tensor,
    orders: np.ndarray,
    ks: Sequence[int],
    n_classes: int,
    mode: str = "remove",
    dtype: torch.dtype = torch.float64,
    chunk_elements: int = 1 << 21,
    stash_elements: int = 1 << 19,
) -> np.ndarray:
    """Confusion matrices (R×len(ks)×C×C) for pruning orders[r][:k] from the block outputs.

    fc1(z) = b + Σ_c W_c z_c, so removing a channel subtracts its contribution W_c z_c (in
    zero_weights mode it leaves W_c v_c instead, v_c being its constant output). The
    contributions are computed once per chunk of samples (one fc1's worth of work, in
    `dtype`) and shared by every order. The orders then walk K upwards together: per K, one
    gather and one subtraction update every order's running fc1 pre-activation; the rest
    of the head (ReLU → fc2) runs only at the requested K, on all orders and several K at
    once. float64 by default, so results match a reference forward pass up to summation
    order.

    Sizes, for speed only (results do not depend on them): a chunk holds about
    `chunk_elements` contributions (P×n×H), small enough to stay in cache while every order
    reads them; at most `stash_elements` pre-activations (orders × K × n × H) are held
    between head evaluations.
    """
    device = outputs.device
    ks_list = [int(k) for k in ks]
    # Predicted classes of every (K row, order, sample), counted once at the end: one confusion
    # call rather than one per K-block (int64, R·K·n of them: 20 MB for the default study).
    found = torch.empty(len(ks_list), len(orders), len(outputs), dtype=torch.int64, device=device)

    def keep(start: int, rows: list[int], first: int, logits: torch.Tensor) -> None:
        predicted = logits.argmax(-1)  # rows × orders × n
        found[rows, first : first + predicted.shape[1], start : start + predicted.shape[2]] = predicted

    _sweep(model, outputs, orders, ks_list, keep, mode, dtype, chunk_elements, stash_elements)
    return confusion(labels.to(device), found.transpose(0, 1).contiguous(), n_classes).cpu().numpy()


@torch.no_grad()
def sweep_logits(
    model: PrunableNet,
    outputs: torch.Tensor,
    orders: np.ndarray,
    ks: Sequence[int],
    mode: str = "remove",
    out_dtype: torch.dtype = torch.float32,
    dtype: torch.dtype = torch.float64,
    chunk_elements: int = 1 << 21,
    stash_elements: int = 1 << 19,
) -> np.ndarray:
    """The pruned models' logits, R×len(ks)×n×C (in `out_dtype`, on the CPU), by the same fast
    sweep as `sweep_confusions`: what threshold-free scores and recalibration need. Memory
    grows with R·len(ks)·n·C; callers bound it by passing a few orders at a time."""
    ks_list = [int(k) for k in ks]
    result: torch.Tensor | None = None

    def keep(start: int, rows: list[int], first: int, logits: torch.Tensor) -> None:
        nonlocal result
        if result is None:
            shape = (len(orders), len(ks_list), len(outputs), logits.shape[-1])
            result = torch.empty(shape, dtype=out_dtype)
        block = logits.transpose(0, 1).to("cpu", out_dtype)  # orders × rows × n × C
        index = torch.as_tensor(rows)
        for i in range(block.shape[0]):
            result[first + i, index, start : start + block.shape[2]] = block[i]

    _sweep(model, outputs, orders, ks_list, keep, mode, dtype, chunk_elements, stash_elements)
    assert result is not None
    return result.numpy()


def _walk(
    head: HeadParts,
    contribution: torch.Tensor,
    full: torch.Tensor,
    steps: torch.Tensor,
    rows_at: dict[int, list[int]],
    stash_elements: int,
    start: int,
    first: int,
    emit: Emit,
) -> None:
    """Walk a group of G orders up K = 1 … len(steps) on one chunk of n samples, emitting the
    head's output at each requested K.

    Pre-activations go K-block by K-block: the removed contributions of a block are gathered
    in one call (G > 1), one subtraction per K writes each K's pre-activation into a stash,
    and the rest of the head runs once per block on the requested K of the stash. The next
    block starts from the stash's last entry; its first subtraction may overwrite it in place.
    """
    depth, group = steps.shape
    n, hidden = full.shape
    block = max(1, min(depth, stash_elements // (group * n * hidden)))
    stash = torch.empty(block, group, n, hidden, dtype=full.dtype, device=full.device)
    gathered = torch.empty_like(stash) if group > 1 else None
    channels = steps[:, 0].tolist() if group == 1 else []
    current = full.expand(group, n, hidden)
    for k0 in range(1, depth + 1, block):
        size = min(block, depth + 1 - k0)
        if gathered is not None:
            picked = steps[k0 - 1 : k0 - 1 + size].reshape(-1)
            torch.index_select(contribution, 0, picked, out=gathered[:size].view(size * group, n, hidden))
        for j in range(size):
            removed = gathered[j] if gathered is not None else contribution[channels[k0 - 1 + j]]
            torch.sub(current, removed, out=stash[j])
            current = stash[j]
        wanted = [j for j in range(size) if k0 + j in rows_at]
        if not wanted:
            continue
        logits = head.rest(stash[:size] if len(wanted) == size else stash[wanted])
        picks = [i for i, j in enumerate(wanted) for _ in rows_at[k0 + j]]
        rows = [row for j in wanted for row in rows_at[k0 + j]]
        emit(start, rows, first, logits[picks])


def seed_loop_confusions(
    model: PrunableNet,
    images: torch.Tensor,
    labels: torch.Tensor,
    order: np.ndarray,
    ks: Sequence[int],
    n_classes: int,
    mode: str = "remove",
    batch_size: int = 1000,
) -> np.ndarray:
    """The lab's loop, as reference and benchmark baseline: prune, then a full pass, per K."""
    out = []
    for k in ks:
        pruned = prune(model, order[:k].tolist(), mode)
        out.append(confusion(labels, predict(pruned, images, batch_size), n_classes).numpy())
    return np.stack(out)
