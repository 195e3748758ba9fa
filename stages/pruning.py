"""Channel removal, the seed's weight zeroing, and the fast K sweep, for any PrunableNet.

Three ways to take channels out of the pruned block, all written once against the
stem / block / head interface of `stages.models`:

* `remove_channels`: builds a physically smaller model (conv D×3×3×(P−K), BN and fc1
  sliced). This is real pruning.
* masking (`PrunableNet.forward(x, channel_mask)`): zeroes the block output. Removal
  must give the same logits; tests check it.
* `zero_conv_weights`: the lab's code. It zeroes only the conv weights, so with a bias
  and BatchNorm the channel still emits a constant. Kept as `prune.mode: zero_weights`.

`sweep_confusions` scores many removal orders at many K for about the cost of one
forward pass: the block output is computed once, each channel's contribution to fc1 is
computed once, and pruning K channels subtracts a prefix sum of contributions.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from stages.metrics import confusion
from stages.models import PrunableNet
from stages.training import predict

MODES = ("remove", "zero_weights")


def kept_channels(channels: int, removed: Sequence[int]) -> torch.Tensor:
    keep = torch.ones(channels, dtype=torch.bool)
    keep[torch.as_tensor(list(removed), dtype=torch.long)] = False
    return keep.nonzero().flatten()


def channel_mask(channels: int, removed: Sequence[int]) -> torch.Tensor:
    mask = torch.ones(channels)
    mask[torch.as_tensor(list(removed), dtype=torch.long)] = 0.0
    return mask


def remove_channels(model: PrunableNet, removed: Sequence[int]) -> PrunableNet:
    """A copy of `model` whose pruned conv has only the kept output channels.

    Drops each removed channel's filter and bias, its BN γ/β/running stats, and fc1's
    input columns for it.
    """
    keep = kept_channels(model.channels, removed)
    smaller = copy.deepcopy(model)
    block, fc1 = smaller.block, smaller.head.fc1
    conv = block.conv
    new_conv = nn.Conv2d(
        conv.in_channels, len(keep), conv.kernel_size, conv.stride, conv.padding, bias=conv.bias is not None
    )
    new_conv.weight.data = conv.weight.data[keep].clone()
    if conv.bias is not None:
        new_conv.bias.data = conv.bias.data[keep].clone()
    block.conv = new_conv
    if block.bn is not None:
        bn = block.bn
        new_bn = nn.BatchNorm2d(len(keep), eps=bn.eps, momentum=bn.momentum)
        new_bn.weight.data = bn.weight.data[keep].clone()
        new_bn.bias.data = bn.bias.data[keep].clone()
        new_bn.running_mean = bn.running_mean[keep].clone()
        new_bn.running_var = bn.running_var[keep].clone()
        new_bn.num_batches_tracked = bn.num_batches_tracked.clone()
        block.bn = new_bn
    per_channel = fc1.in_features // model.channels
    columns = (keep[:, None] * per_channel + torch.arange(per_channel)).flatten()
    new_fc1 = nn.Linear(len(columns), fc1.out_features)
    new_fc1.weight.data = fc1.weight.data[:, columns].clone()
    new_fc1.bias.data = fc1.bias.data.clone()
    smaller.head.fc1 = new_fc1
    return smaller.eval()


def zero_conv_weights(model: PrunableNet, channels: Sequence[int]) -> PrunableNet:
    """The seed code's 'pruning': a copy with the conv weights of `channels` set to 0."""
    zeroed = copy.deepcopy(model)
    zeroed.block.conv.weight.data[torch.as_tensor(list(channels), dtype=torch.long)] = 0.0
    return zeroed.eval()


def prune(model: PrunableNet, removed: Sequence[int], mode: str) -> PrunableNet:
    return remove_channels(model, removed) if mode == "remove" else zero_conv_weights(model, removed)


@torch.no_grad()
def block_outputs(model: PrunableNet, images: torch.Tensor, batch_size: int, device: torch.device) -> torch.Tensor:
    """The pruned block's output for every sample (N×P×h×w), computed once for all K."""
    model = model.to(device).eval()
    parts = [model.block(model.stem(images[i : i + batch_size].to(device))) for i in range(0, len(images), batch_size)]
    return torch.cat(parts)


@torch.no_grad()
def replacement_values(model: PrunableNet, mode: str, out_side: tuple[int, int]) -> torch.Tensor:
    """What a pruned channel emits at the block output (P×h×w): 0 when removed; with
    zeroed weights, the block applied to a map that equals the conv bias everywhere."""
    p = model.channels
    if mode == "remove" or model.block.conv.bias is None:
        return torch.zeros(p, *out_side)
    bias = model.block.conv.bias.detach().cpu().float()
    bias_map = bias.view(1, p, 1, 1).expand(1, p, 2 * out_side[0], 2 * out_side[1])
    block = copy.deepcopy(model.block).cpu().eval()
    return block.finish(bias_map)[0]


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
    chunk_elements: int = 1 << 25,
    stash_elements: int = 1 << 21,
) -> np.ndarray:
    """Confusion matrices (R×len(ks)×C×C) for pruning orders[r][:k] from the block outputs.

    fc1(z) = b + Σ_c W_c z_c, so removing a channel subtracts its contribution W_c z_c (in
    zero_weights mode it leaves W_c v_c instead, v_c being its constant output). The
    contributions are computed once per sample chunk and shared by every order; each order
    then walks K upwards, subtracting one contribution per step from a running
    pre-activation that stays in cache, and runs only the rest of the head (ReLU → fc2) at
    the requested K. float64 by default, so results match a reference forward pass up to
    summation order.
    """
    device = outputs.device
    p = model.channels
    fc1 = model.head.fc1
    hidden = fc1.out_features
    per_channel = fc1.in_features // p
    weight = fc1.weight.detach().to(device, dtype).view(hidden, p, per_channel).permute(1, 2, 0)  # P×S×H
    bias = fc1.bias.detach().to(device, dtype)
    rest = copy.deepcopy(model.head.rest).to(device, dtype).eval()
    for layer in rest.modules():
        if isinstance(layer, nn.ReLU):
            layer.inplace = True  # it only ever sees our scratch stash; saves a large allocation per block
    replaced = replacement_values(model, mode, tuple(outputs.shape[2:])).to(device, dtype).view(p, 1, per_channel)
    replaced_contribution = torch.bmm(replaced, weight)  # P×1×H

    ks_list = list(ks)
    slot = {k: i for i, k in enumerate(ks_list)}  # row of each requested K in the result
    orders_list = np.asarray(orders)[:, : max(ks_list)].tolist()
    result = torch.zeros(len(orders_list), len(ks_list), n_classes, n_classes, dtype=torch.int64, device=device)
    labels = labels.to(device)
    chunk = max(1, chunk_elements // (p * hidden))
    for start in range(0, len(outputs), chunk):
        z = outputs[start : start + chunk].to(dtype).reshape(-1, p, per_channel).transpose(0, 1)  # P×n×S
        n = z.shape[1]
        contribution = torch.bmm(z, weight)  # P×n×H: channel c's share of fc1's pre-activation
        full = contribution.sum(0) + bias  # n×H, nothing removed
        delta = contribution.sub_(replaced_contribution)  # what removing channel c takes away
        running = torch.empty_like(full)
        # Pre-activations at requested K are written straight into a stash and sent through
        # the rest of the head in blocks: one batched matmul instead of a tiny one per K.
        stash = torch.empty(
            max(1, min(len(ks_list), stash_elements // (n * hidden))), n, hidden, dtype=dtype, device=device
        )
        predictions = torch.empty(len(orders_list), len(ks_list), n, dtype=torch.int64, device=device)
        for r, order in enumerate(orders_list):
            current, stashed = full, []
            for k in range(len(order) + 1):
                if k in slot and len(stashed) == len(stash):
                    running.copy_(current)  # the head below overwrites the stash in place
                    current = running
                    predictions[r, stashed] = rest(stash).argmax(-1)
                    stashed = []
                target = stash[len(stashed)] if k in slot else running
                if k == 0:
                    target.copy_(full)
                else:
                    torch.sub(current, delta[order[k - 1]], out=target)
                current = target
                if k in slot:
                    stashed.append(slot[k])
            if stashed:
                predictions[r, stashed] = rest(stash[: len(stashed)]).argmax(-1)
        y = labels[start : start + n].expand(len(ks_list), n)
        result += confusion(y, predictions, n_classes)
    return result.cpu().numpy()


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
