"""The fast K sweep: many removal orders at every K of any conv layer, cheaply.

The layer's output is computed once, each channel's contribution to the consumer (fc1, or
the next conv) is computed once, and pruning K channels subtracts a prefix sum of
contributions; only what follows the consumer runs per K (docs/performance.md). `seed_loop_confusions`
is the lab's loop (prune, then a full pass, per K), kept as the reference and the benchmark's
baseline.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from prunelab.models.nets import PrunableNet
from prunelab.models.training import predict
from prunelab.pruning.consumers import ConsumerParts
from prunelab.pruning.surgery import prune
from prunelab.scoring.scores import confusion

CPU_BATCH = 128  # samples per pass on the CPU: larger batches spill the feature maps out of cache


@torch.no_grad()
def block_outputs(
    model: PrunableNet, images: torch.Tensor, batch_size: int, device: torch.device, layer: str | None = None
) -> torch.Tensor:
    """A layer's channel maps for every sample (N×P×h×w: after its BN, ReLU and pooling, what
    a mask multiplies), computed once for all K. `layer` names it; None is the lab's layer.

    On the CPU this runs a channels-last copy of the chain up to the layer, at most CPU_BATCH
    samples at a time whatever `batch_size` says: oneDNN's convolutions and, above all, max
    pooling are several times faster on channels-last maps, and small batches keep those
    maps in cache (10,000 SimpleCNN images, one thread: 2.9 s → 1.3 s). The result is
    written into one preallocated, ordinarily laid out tensor; the model is not changed.
    """
    model = model.to(device).eval()
    chosen = model.layer(layer)
    net: nn.Module = nn.Sequential(*(module for _, module in model.chain()[: chosen.output + 1]))
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


# Called with (first sample, rows of ks, first order, head outputs rows×orders×n×C) as the walk
# produces them; every (K row, order, sample) is emitted exactly once.
Emit = Callable[[int, list[int], int, torch.Tensor], None]


def default_sizes(conv_consumer: bool, device: torch.device) -> tuple[int, int]:
    """(chunk_elements, stash_elements) when the caller names none. On the CPU, small enough that a
    chunk's contributions stay in cache; a conv consumer's pre-activation is large (C'·h'·w' per
    sample) and everything after it runs per K, so bigger chunks keep those calls few. On a GPU
    every call costs a launch whatever its size, so chunks are 16 times larger (a few hundred MB in
    float64). Sizes change speed only, never results on one device."""
    chunk, stash = (1 << 24, 1 << 22) if conv_consumer else (1 << 21, 1 << 19)
    return (chunk << 4, stash << 4) if device.type == "cuda" else (chunk, stash)


def rows_index(rows: list[int]) -> slice | list[int]:
    """`rows` as a slice when they are consecutive (ks listed in ascending order, each once: the usual
    case), so that writing them is one copy rather than an indexed scatter; else the list itself."""
    return slice(rows[0], rows[0] + len(rows)) if rows == list(range(rows[0], rows[0] + len(rows))) else rows


@torch.no_grad()
def _sweep(
    model: PrunableNet,
    outputs: torch.Tensor,
    orders: np.ndarray,
    ks: Sequence[int],
    emit: Emit,
    mode: str,
    dtype: torch.dtype | None,
    chunk_elements: int | None,
    stash_elements: int | None,
    layer: str | None,
) -> None:
    """The fast sweep, written once: head outputs (logits) for pruning orders[r][:k] at every
    requested K, handed to `emit` chunk by chunk (see `sweep_confusions` for the method)."""
    device = outputs.device
    if dtype is None:
        # fc1 is cheap and float64 keeps the walk exact; a conv consumer and every later conv run
        # per K, and float64 convs have no fast kernels on the CPU, so they run in the model's dtype.
        consumer = model.chain()[model.layer(layer).consumer][1]
        dtype = torch.float64 if isinstance(consumer, nn.Linear) else outputs.dtype
    head = ConsumerParts.of(model, mode, dtype, device, tuple(outputs.shape[2:]), layer)
    p, hidden = outputs.shape[1], head.hidden
    default_chunk, default_stash = default_sizes(head.conv is not None, device)
    chunk_elements = chunk_elements or default_chunk
    stash_elements = stash_elements or default_stash
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
            logits = head.finish(full)
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
    dtype: torch.dtype | None = None,
    chunk_elements: int | None = None,
    stash_elements: int | None = None,
    layer: str | None = None,
) -> np.ndarray:
    """Confusion matrices (R×len(ks)×C×C) for pruning orders[r][:k] of `layer` (None: the
    lab's layer) from that layer's outputs (`block_outputs`).

    The consumer is linear: fc1(z) = b + Σ_c W_c z_c, and a conv likewise sums one conv per
    input channel. So removing a channel subtracts its contribution (in zero_weights mode it
    leaves that of its constant output instead). The contributions are computed once per
    chunk of samples (one consumer's worth of work, in `dtype`) and shared by every order.
    The orders then walk K upwards together: per K, one gather and one subtraction update
    every order's running pre-activation; the rest of the network (for the last conv: ReLU →
    fc2; for an earlier one: its BN, pooling and every later layer) runs only at the
    requested K, on all orders and several K at once. With `dtype` None, fc1's walk runs in
    float64, so results match a reference forward pass up to summation order; a conv
    consumer's runs in the model's dtype (float64 models: exact likewise, as the tests use).

    Sizes, for speed only (results do not depend on them): a chunk holds about
    `chunk_elements` contributions (P×n×H), small enough to stay in cache while every order
    reads them; at most `stash_elements` pre-activations (orders × K × n × H) are held
    between evaluations of the rest. None picks sizes that suit the consumer.
    """
    device = outputs.device
    ks_list = [int(k) for k in ks]
    # Predicted classes of every (K row, order, sample), counted once at the end: one confusion
    # call rather than one per K-block (int64, R·K·n of them: 20 MB for the default study).
    found = torch.empty(len(ks_list), len(orders), len(outputs), dtype=torch.int64, device=device)

    def keep(start: int, rows: list[int], first: int, logits: torch.Tensor) -> None:
        predicted = logits.argmax(-1)  # rows × orders × n
        found[rows_index(rows), first : first + predicted.shape[1], start : start + predicted.shape[2]] = predicted

    _sweep(model, outputs, orders, ks_list, keep, mode, dtype, chunk_elements, stash_elements, layer)
    return confusion(labels.to(device), found.transpose(0, 1).contiguous(), n_classes).cpu().numpy()


@torch.no_grad()
def sweep_logits(
    model: PrunableNet,
    outputs: torch.Tensor,
    orders: np.ndarray,
    ks: Sequence[int],
    mode: str = "remove",
    out_dtype: torch.dtype = torch.float32,
    dtype: torch.dtype | None = None,
    chunk_elements: int | None = None,
    stash_elements: int | None = None,
    layer: str | None = None,
    on_device: bool = False,
) -> np.ndarray | torch.Tensor:
    """The pruned models' logits, R×len(ks)×n×C (in `out_dtype`, on the CPU), by the same fast
    sweep as `sweep_confusions`: what threshold-free scores and recalibration need. Memory
    grows with R·len(ks)·n·C; callers bound it by passing a few orders at a time.
    `on_device`: a tensor on the outputs' device instead, for scoring there (no host copy)."""
    ks_list = [int(k) for k in ks]
    result: torch.Tensor | None = None

    def keep(start: int, rows: list[int], first: int, logits: torch.Tensor) -> None:
        nonlocal result
        if result is None:
            shape = (len(orders), len(ks_list), len(outputs), logits.shape[-1])
            result = torch.empty(shape, dtype=out_dtype, device=outputs.device if on_device else "cpu")
        block = logits.transpose(0, 1).to(result.device, out_dtype)  # orders × rows × n × C
        result[first : first + block.shape[0], rows_index(rows), start : start + block.shape[2]] = block

    _sweep(model, outputs, orders, ks_list, keep, mode, dtype, chunk_elements, stash_elements, layer)
    assert result is not None
    return result if on_device else result.numpy()


def _walk(
    head: ConsumerParts,
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
        logits = head.finish(stash[:size] if len(wanted) == size else stash[wanted])
        picks = [i for i, j in enumerate(wanted) for _ in rows_at[k0 + j]]
        rows = [row for j in wanted for row in rows_at[k0 + j]]
        emit(start, rows, first, logits if picks == list(range(len(logits))) else logits[picks])


def seed_loop_confusions(
    model: PrunableNet,
    images: torch.Tensor,
    labels: torch.Tensor,
    order: np.ndarray,
    ks: Sequence[int],
    n_classes: int,
    mode: str = "remove",
    batch_size: int = 1000,
    layer: str | None = None,
) -> np.ndarray:
    """The lab's loop, as reference and benchmark baseline: prune `layer`, then a full pass, per K."""
    name = model.layer(layer).name
    out = []
    for k in ks:
        pruned = prune(model, {name: order[:k].tolist()}, mode)
        out.append(confusion(labels, predict(pruned, images, batch_size), n_classes).numpy())
    return np.stack(out)
