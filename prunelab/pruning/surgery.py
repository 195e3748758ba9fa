"""Taking channels out of a conv layer: real removal, masking, and the seed's weight zeroing.

Three ways, all written once against the prunable layers of
`prunelab.models.nets.PrunableNet`, for any layer and any set of layers:

* `remove_channels`: builds a physically smaller model (conv D×3×3×(P−K), its BN, and the
  consumer's input: the next conv's input channels or fc1's columns, sliced). This is real
  pruning.
* masking (`PrunableNet.forward(x, channel_mask)`): zeroes the layer's output channels.
  Removal must give the same logits; tests check it for every layer.
* `zero_conv_weights`: the lab's code. It zeroes only the conv weights, so with a bias
  and BatchNorm the channel still emits a constant. Kept as `prune.mode: zero_weights`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

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


# Channels to take out: a list for the lab's layer (the last conv), or a list per layer name.
Removal = Mapping[str, Sequence[int]] | Sequence[int]


def by_layer(model: PrunableNet, removed: Removal) -> dict[str, list[int]]:
    """`removed` as {layer name: channels}; a bare list means the lab's layer (the last conv)."""
    if isinstance(removed, Mapping):
        names = {layer.name for layer in model.layers}
        unknown = sorted(set(removed) - names)
        if unknown:
            raise ValueError(f"no layer {unknown[0]!r}; this model has {', '.join(sorted(names))}")
        return {name: [int(c) for c in channels] for name, channels in removed.items()}
    return {model.layer().name: [int(c) for c in removed]}


def layer_masks(model: PrunableNet, removed: Removal) -> dict[str, torch.Tensor]:
    """The channel mask of every layer named in `removed`, for `model(x, channel_mask=...)`."""
    return {name: channel_mask(model.layer(name).channels, chosen) for name, chosen in by_layer(model, removed).items()}


def _sliced_conv(conv: nn.Conv2d, out_keep: torch.Tensor | None, in_keep: torch.Tensor | None) -> nn.Conv2d:
    weight = conv.weight.data
    if out_keep is not None:
        weight = weight[out_keep]
    if in_keep is not None:
        weight = weight[:, in_keep]
    new = nn.Conv2d(
        weight.shape[1] * conv.groups, weight.shape[0], conv.kernel_size, conv.stride, conv.padding,
        conv.dilation, conv.groups, bias=conv.bias is not None, padding_mode=conv.padding_mode,
    )  # fmt: skip
    new.weight.data = weight.clone()
    if conv.bias is not None:
        new.bias.data = (conv.bias.data if out_keep is None else conv.bias.data[out_keep]).clone()
    return new


def _sliced_bn(bn: nn.BatchNorm2d, keep: torch.Tensor) -> nn.BatchNorm2d:
    new = nn.BatchNorm2d(len(keep), eps=bn.eps, momentum=bn.momentum, affine=bn.affine)
    if bn.affine:
        new.weight.data = bn.weight.data[keep].clone()
        new.bias.data = bn.bias.data[keep].clone()
    new.running_mean = bn.running_mean[keep].clone()
    new.running_var = bn.running_var[keep].clone()
    new.num_batches_tracked = bn.num_batches_tracked.clone()
    return new


def _sliced_linear(fc: nn.Linear, keep: torch.Tensor, channels: int) -> nn.Linear:
    """fc without the input columns of the dropped channels (channel c owns columns c·S … (c+1)·S − 1)."""
    per_channel = fc.in_features // channels
    columns = (keep[:, None] * per_channel + torch.arange(per_channel)).flatten()
    new = nn.Linear(len(columns), fc.out_features, bias=fc.bias is not None)
    new.weight.data = fc.weight.data[:, columns].clone()
    if fc.bias is not None:
        new.bias.data = fc.bias.data.clone()
    return new


def remove_channels(model: PrunableNet, removed: Removal) -> PrunableNet:
    """A copy of `model` in which each named layer has only its kept output channels.

    Layer l loses each removed channel's filter and bias, its BN γ/β/running stats, and the
    consumer's input for it: the next conv's input channels, or fc1's columns. `removed` is a
    list (the lab's layer) or {layer name: channels}, any number of layers at once.
    """
    chosen = by_layer(model, removed)
    smaller = copy.deepcopy(model)
    chain = smaller.chain()
    out_keep: dict[int, torch.Tensor] = {}  # chain position of a conv → its kept output channels
    in_keep: dict[int, tuple[torch.Tensor, int]] = {}  # consumer position → (kept input channels, channels)
    for layer in smaller.layers:
        if layer.name in chosen:
            keep = kept_channels(layer.channels, chosen[layer.name])
            out_keep[layer.conv] = keep
            in_keep[layer.consumer] = (keep, layer.channels)
            if layer.bn is not None:
                path, bn = chain[layer.bn]
                smaller.set_submodule(path, _sliced_bn(bn, keep))
    for at in sorted(set(out_keep) | set(in_keep)):
        path, module = chain[at]
        keep_in = in_keep.get(at, (None, 0))[0]
        if isinstance(module, nn.Linear):
            assert keep_in is not None and at not in out_keep
            smaller.set_submodule(path, _sliced_linear(module, keep_in, in_keep[at][1]))
        else:
            smaller.set_submodule(path, _sliced_conv(module, out_keep.get(at), keep_in))
    return smaller.eval()


def zero_conv_weights(model: PrunableNet, channels: Removal) -> PrunableNet:
    """The seed code's 'pruning': a copy with the conv weights of `channels` set to 0 (a list:
    the lab's layer; or a list per layer name)."""
    zeroed = copy.deepcopy(model)
    chain = zeroed.chain()
    for name, chosen in by_layer(zeroed, channels).items():
        conv = chain[zeroed.layer(name).conv][1]
        conv.weight.data[torch.as_tensor(chosen, dtype=torch.long)] = 0.0
    return zeroed.eval()


def prune(model: PrunableNet, removed: Removal, mode: str) -> PrunableNet:
    return remove_channels(model, removed) if mode == "remove" else zero_conv_weights(model, removed)
