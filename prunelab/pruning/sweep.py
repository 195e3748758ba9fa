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
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from prunelab.models.graph import as_tuple
from prunelab.models.groups import ChannelGroup
from prunelab.models.training import predict
from prunelab.pruning.consumers import ConsumerParts
from prunelab.pruning.surgery import prune, zero_conv_weights
from prunelab.pruning.views import GroupView, masked_net
from prunelab.scoring.scores import confusion

CPU_BATCH = 128  # samples per pass on the CPU: larger batches spill the feature maps out of cache


@dataclass(frozen=True)
class SweepInputs:
    """What the sweep of one group reads for a split, computed once for every order and K. Fast
    path: the group's channel maps at its read point (N×P×h×w: after its BN, activation and
    pooling, what a mask multiplies) and the values the rest of the network also reads (a
    ResNet block's skip tensor, N×…). Per-K path: the model's inputs themselves."""

    maps: torch.Tensor
    extras: tuple[torch.Tensor, ...] = ()

    def __len__(self) -> int:
        return len(self.maps)


@torch.no_grad()
def block_outputs(view: GroupView, images: torch.Tensor, batch_size: int, device: torch.device) -> SweepInputs:
    """A group's sweep inputs for every sample (see `SweepInputs`), computed once for all K.

    On the CPU this runs a channels-last copy of the network up to the read point, at most
    CPU_BATCH samples at a time whatever `batch_size` says: oneDNN's convolutions and, above all,
    max pooling are several times faster on channels-last maps, and small batches keep those
    maps in cache (10,000 SimpleCNN images, one thread: 2.9 s → 1.3 s). The results are written
    into preallocated, ordinarily laid out tensors; the model is not changed. A group on the
    per-K path gets its images back (on the device): the per-K path runs the whole model.
    """
    if not view.fast:
        return SweepInputs(images.to(device))
    assert view.before_read is not None
    net: nn.Module = view.before_read.to(device).eval()
    step, layout = batch_size, torch.contiguous_format
    if device.type == "cpu" and images.dim() == 4:
        step, layout = min(batch_size, CPU_BATCH), torch.channels_last
        net = copy.deepcopy(net).to(memory_format=layout)
    out: list[torch.Tensor] | None = None
    for start in range(0, len(images), step):
        parts = as_tuple(net(images[start : start + step].to(device).contiguous(memory_format=layout)))
        if out is None:
            out = [torch.empty(len(images), *p.shape[1:], dtype=p.dtype, device=device) for p in parts]
        for whole, part in zip(out, parts, strict=True):
            whole[start : start + len(part)] = part
    if out is None:  # no images: the shapes still follow from the model
        out = list(as_tuple(net(images.to(device))))
    return SweepInputs(out[0], tuple(out[1:]))


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


def _rows_at(ks_list: list[int]) -> dict[int, list[int]]:
    rows_at: dict[int, list[int]] = {}  # K → the result rows that ask for it
    for row, k in enumerate(ks_list):
        rows_at.setdefault(k, []).append(row)
    return rows_at


def _emit_ks(
    emit: Emit, start: int, first: int, ks: list[int], rows_at: dict[int, list[int]], logits: torch.Tensor
) -> None:
    """Hand `emit` the logits of `ks` (one leading entry each), once for every result row that asks
    for its K (a K listed twice is emitted twice)."""
    picks = [i for i, k in enumerate(ks) for _ in rows_at[k]]
    rows = [row for k in ks for row in rows_at[k]]
    emit(start, rows, first, logits if picks == list(range(len(logits))) else logits[picks])


def _orders_array(orders: np.ndarray, depth: int) -> np.ndarray:
    orders_array = np.asarray(orders, dtype=np.int64).reshape(len(orders), -1)
    if depth > orders_array.shape[1]:
        raise ValueError(f"K={depth} asked for, but the orders list only {orders_array.shape[1]} channels")
    return orders_array


@torch.no_grad()
def _sweep(
    view: GroupView,
    inputs: SweepInputs,
    orders: np.ndarray,
    ks: Sequence[int],
    emit: Emit,
    mode: str,
    dtype: torch.dtype | None,
    chunk_elements: int | None,
    stash_elements: int | None,
) -> None:
    """The sweep, written once: head outputs (logits) for pruning orders[r][:k] at every
    requested K, handed to `emit` chunk by chunk (see `sweep_confusions` for the method)."""
    if not view.fast:
        _per_k(view, inputs.maps, orders, ks, emit, mode, stash_elements)
        return
    outputs = inputs.maps
    device = outputs.device
    if dtype is None:
        # fc1 is cheap and float64 keeps the walk exact; a conv consumer and every later conv run
        # per K, and float64 convs have no fast kernels on the CPU, so they run in the model's dtype.
        dtype = torch.float64 if isinstance(view.consumer, nn.Linear) else outputs.dtype
    head = ConsumerParts.of(view, mode, dtype, device, tuple(outputs.shape[2:]))
    extras = tuple(e.to(dtype) for e in inputs.extras)
    p, hidden = outputs.shape[1], head.hidden
    default_chunk, default_stash = default_sizes(head.conv is not None, device)
    chunk_elements = chunk_elements or default_chunk
    stash_elements = stash_elements or default_stash
    ks_list = [int(k) for k in ks]
    rows_at = _rows_at(ks_list)
    depth = max(ks_list)
    orders_array = _orders_array(orders, depth)
    n_orders = len(orders_array)
    steps = torch.as_tensor(orders_array[:, :depth].T.copy(), device=device)  # steps[k - 1]: removed at K=k
    chunk = max(1, chunk_elements // (p * hidden))
    for start in range(0, len(outputs), chunk):
        full, contribution = head.contributions(outputs[start : start + chunk])
        n = len(full)
        sample_extras = tuple(e[start : start + n] for e in extras)
        if 0 in rows_at:  # nothing removed: the same for every order
            logits = head.finish(full, sample_extras)
            emit(start, rows_at[0], 0, logits.expand(len(rows_at[0]), n_orders, *logits.shape))
        group = max(1, min(n_orders, stash_elements // (n * hidden)))  # orders walked together
        for first in range(0, n_orders, group):
            last = min(n_orders, first + group)
            _walk(
                head, contribution, full, steps[:, first:last], rows_at, stash_elements, start, first, emit,
                sample_extras,
            )  # fmt: skip


PER_K_SAMPLES = 1024  # (K, sample) pairs per masked forward pass of the per-K path on a GPU (CPU: CPU_BATCH)


@torch.no_grad()
def _per_k(
    view: GroupView,
    images: torch.Tensor,
    orders: np.ndarray,
    ks: Sequence[int],
    emit: Emit,
    mode: str,
    batch_elements: int | None,
) -> None:
    """The per-K path, for a group the fast sweep does not cover: the whole model, its group's
    channels masked at every producer's read point (≡ removal, tested), run on many (K, sample)
    pairs per pass, each pair with its own mask. Weight zeroing (the lab's method) is not a mask:
    it runs a copy with the producers' filters zeroed per K and order."""
    if mode != "remove":
        _zeroed_per_k(view, images, orders, ks, emit)
        return
    device = images.device
    net: nn.Module = masked_net(view.gm, [view.mask_points]).to(device).eval()
    layout = torch.contiguous_format
    if device.type == "cpu" and images.dim() == 4:
        # As in `block_outputs`: channels-last maps and small passes keep oneDNN fast and in cache
        # (ResNet-20's stage-2 stream, one thread: 1.15 s per K at 1,024 pairs a pass, 0.47 s like this).
        layout = torch.channels_last
        net = copy.deepcopy(net).to(memory_format=layout)
    ks_list = [int(k) for k in ks]
    rows_at = _rows_at(ks_list)
    wanted = sorted(rows_at)
    orders_array = _orders_array(orders, max(ks_list))
    p = view.group.channels
    default = CPU_BATCH if device.type == "cpu" else PER_K_SAMPLES
    samples = max(1, (batch_elements or default))
    chunk = max(1, min(len(images), samples))
    for start in range(0, len(images), chunk):
        x = images[start : start + chunk]
        n = len(x)
        per_pass = max(1, samples // n)  # K values per pass
        for first, order in enumerate(orders_array):
            for at in range(0, len(wanted), per_pass):
                block = wanted[at : at + per_pass]
                masks = torch.ones(len(block), p, dtype=x.dtype, device=device)
                for i, k in enumerate(block):
                    masks[i, torch.as_tensor(order[:k], device=device)] = 0.0
                batch = x.expand(len(block), *x.shape).reshape(-1, *x.shape[1:]).contiguous(memory_format=layout)
                logits = net(batch, masks.repeat_interleave(n, dim=0)).view(len(block), 1, n, -1)
                _emit_ks(emit, start, first, block, rows_at, logits)


@torch.no_grad()
def _zeroed_per_k(view: GroupView, images: torch.Tensor, orders: np.ndarray, ks: Sequence[int], emit: Emit) -> None:
    ks_list = [int(k) for k in ks]
    rows_at = _rows_at(ks_list)
    orders_array = _orders_array(orders, max(ks_list))
    for first, order in enumerate(orders_array):
        for k, rows in rows_at.items():
            net = zero_conv_weights(view.gm, [view.group], {view.group.name: order[:k].tolist()})
            for start in range(0, len(images), PER_K_SAMPLES):
                logits = net(images[start : start + PER_K_SAMPLES])
                emit(start, rows, first, logits.expand(len(rows), 1, *logits.shape))


@torch.no_grad()
def sweep_confusions(
    view: GroupView,
    inputs: SweepInputs,
    labels: torch.Tensor,
    orders: np.ndarray,
    ks: Sequence[int],
    n_classes: int,
    mode: str = "remove",
    dtype: torch.dtype | None = None,
    chunk_elements: int | None = None,
    stash_elements: int | None = None,
) -> np.ndarray:
    """Confusion matrices (R×len(ks)×C×C) for pruning orders[r][:k] of the view's group, from
    its sweep inputs (`block_outputs`). A group off the fast path is masked and run per K.

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
    device = inputs.maps.device
    ks_list = [int(k) for k in ks]
    # Predicted classes of every (K row, order, sample), counted once at the end: one confusion
    # call rather than one per K-block (int64, R·K·n of them: 20 MB for the default study).
    found = torch.empty(len(ks_list), len(orders), len(inputs), dtype=torch.int64, device=device)

    def keep(start: int, rows: list[int], first: int, logits: torch.Tensor) -> None:
        predicted = logits.argmax(-1)  # rows × orders × n
        found[rows_index(rows), first : first + predicted.shape[1], start : start + predicted.shape[2]] = predicted

    _sweep(view, inputs, orders, ks_list, keep, mode, dtype, chunk_elements, stash_elements)
    return confusion(labels.to(device), found.transpose(0, 1).contiguous(), n_classes).cpu().numpy()


@torch.no_grad()
def sweep_logits(
    view: GroupView,
    inputs: SweepInputs,
    orders: np.ndarray,
    ks: Sequence[int],
    mode: str = "remove",
    out_dtype: torch.dtype = torch.float32,
    dtype: torch.dtype | None = None,
    chunk_elements: int | None = None,
    stash_elements: int | None = None,
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
            shape = (len(orders), len(ks_list), len(inputs), logits.shape[-1])
            result = torch.empty(shape, dtype=out_dtype, device=inputs.maps.device if on_device else "cpu")
        block = logits.transpose(0, 1).to(result.device, out_dtype)  # orders × rows × n × C
        result[first : first + block.shape[0], rows_index(rows), start : start + block.shape[2]] = block

    _sweep(view, inputs, orders, ks_list, keep, mode, dtype, chunk_elements, stash_elements)
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
    extras: tuple[torch.Tensor, ...] = (),
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
        logits = head.finish(stash[:size] if len(wanted) == size else stash[wanted], extras)
        _emit_ks(emit, start, first, [k0 + j for j in wanted], rows_at, logits)


def seed_loop_confusions(
    model: nn.Module,
    groups: Sequence[ChannelGroup],
    group: str,
    images: torch.Tensor,
    labels: torch.Tensor,
    order: np.ndarray,
    ks: Sequence[int],
    n_classes: int,
    mode: str = "remove",
    batch_size: int = 1000,
) -> np.ndarray:
    """The lab's loop, as reference and benchmark baseline: prune `group`, then a full pass, per K."""
    example = images[:1].cpu()
    out = []
    for k in ks:
        pruned = prune(model, groups, {group: order[:k].tolist()}, mode, example)
        out.append(confusion(labels, predict(pruned, images, batch_size), n_classes).numpy())
    return np.stack(out)
