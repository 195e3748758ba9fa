"""The format a pruned model ships in: BatchNorm folded into the convs, channels-last tensors.

At inference BatchNorm is an affine map per channel, so it folds into the conv before it
(`torch.nn.utils.fusion.fuse_conv_bn_eval`): one pass over the map less, the same function up
to rounding. oneDNN's convolutions and max pooling are faster on channels-last maps (the
input is converted on the way in, and every later map follows). Neither
changes what the model computes, and both help the unpruned model as much as the pruned one:
speed-ups of pruning are therefore always stated between two models in the same format
(`prunelab.deploy.efficiency.compare_models`), so that folding is never counted as pruning's gain.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from prunelab.models.nets import PrunableNet


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
        folded.set_submodule(bn_path, nn.Identity())
    return folded


class Deployed(nn.Module):
    """The shipped format: a BatchNorm-folded net that runs on channels-last maps. The input is
    converted on the way in, so callers pass either layout. The weights stay in the ordinary
    layout: channels-last weights run a little faster still, but `torch.export.load` then warns
    about them in the user's process."""

    def __init__(self, net: PrunableNet):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.contiguous(memory_format=torch.channels_last))


def deployed(model: PrunableNet) -> Deployed:
    """`model` in the shipped format (BatchNorm folded, channels-last maps), in eval mode."""
    return Deployed(fold_batchnorm(model)).eval()
