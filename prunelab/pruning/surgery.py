"""Taking channels out of a model: real removal, masking, and the seed's weight zeroing.

Three ways, all written once against channel groups (`prunelab.models.groups`), for any group
and any set of groups:

* `remove_channels`: a physically smaller model (Torch-Pruning's `Group.prune()`: every
  producer's filters, BatchNorm entries, depthwise channels and consumers' input slices). This
  is real pruning.
* masking (`prunelab.pruning.views.masked_net`): zeroes the group's channels where its
  consumers read them. Removal must give the same logits; tests check it for every group.
* `zero_conv_weights`: the lab's code. It zeroes only the conv weights, so with a bias and
  BatchNorm the channel still emits a constant. Kept as `prune.mode: zero_weights`.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from prunelab.models.groups import ChannelGroup, Removal, channel_mask, kept_channels, remove_channels

MODES = ("remove", "zero_weights")

__all__ = ["MODES", "Removal", "channel_mask", "kept_channels", "prune", "remove_channels", "zero_conv_weights"]


def zero_conv_weights(model: nn.Module, groups: Sequence[ChannelGroup], removed: Removal) -> nn.Module:
    """The seed code's 'pruning': a copy with the producing convs' weights of the named channels
    set to 0 (per group name)."""
    zeroed = copy.deepcopy(model)
    by_name = {g.name: g for g in groups}
    for name, chosen in removed.items():
        for producer in by_name[name].producers:
            zeroed.get_submodule(producer).weight.data[torch.as_tensor(list(chosen), dtype=torch.long)] = 0.0
    return zeroed.eval()


def prune(
    model: nn.Module, groups: Sequence[ChannelGroup], removed: Removal, mode: str, example: torch.Tensor
) -> nn.Module:
    if mode == "remove":
        return remove_channels(model, groups, removed, example)
    return zero_conv_weights(model, groups, removed)
