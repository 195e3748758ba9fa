"""The format a pruned model ships in: BatchNorm folded into the convs, channels-last tensors.

At inference BatchNorm is an affine map per channel, so it folds into the conv before it
(`torch.nn.utils.fusion.fuse_conv_bn_eval`): one pass over the map less, the same function up
to rounding. oneDNN's convolutions and max pooling are faster on channels-last maps. Neither
changes what the model computes, and both help the unpruned model as much as the pruned one:
speed-ups of pruning are therefore always stated between two models in the same format
(`prunelab.deploy.efficiency.compare_models`), so that folding is never counted as pruning's gain.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from prunelab.models.nets import PrunableNet, PrunedBlock


@torch.no_grad()
def fold_batchnorm(model: PrunableNet) -> PrunableNet:
    """A copy of `model` in eval mode with each conv layer's BatchNorm folded into its conv
    (running statistics and affine terms become the conv's weight scale and bias)."""
    folded = copy.deepcopy(model).eval()
    chain = folded.chain()
    for layer in folded.layers:
        if layer.bn is None:
            continue
        (conv_path, conv), (bn_path, bn) = chain[layer.conv], chain[layer.bn]
        folded.set_submodule(conv_path, fuse_conv_bn_eval(conv, bn))
        parent_path, _, name = bn_path.rpartition(".")
        parent = folded.get_submodule(parent_path)
        if isinstance(parent, PrunedBlock):
            parent.bn = None  # the block applies BN only when it has one
        else:
            setattr(parent, name, nn.Identity())
    return folded


def deployed(model: PrunableNet) -> PrunableNet:
    """The shipped format: BatchNorm folded, weights channels-last, eval mode. Takes inputs in
    either layout (the first conv converts them)."""
    return fold_batchnorm(model).to(memory_format=torch.channels_last).eval()
