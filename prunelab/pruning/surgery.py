"""Taking channels out of a conv layer: real removal, masking, and the seed's weight zeroing.

Three ways, all written once against the stem / block / head interface of
`prunelab.models.nets.PrunableNet`:

* `remove_channels`: builds a physically smaller model (conv D×3×3×(P−K), BN and fc1
  sliced). This is real pruning.
* masking (`PrunableNet.forward(x, channel_mask)`): zeroes the block output. Removal
  must give the same logits; tests check it.
* `zero_conv_weights`: the lab's code. It zeroes only the conv weights, so with a bias
  and BatchNorm the channel still emits a constant. Kept as `prune.mode: zero_weights`.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from prunelab.models.nets import PrunableNet

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
