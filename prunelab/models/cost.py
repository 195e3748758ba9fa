"""What a model costs: parameters and FLOPs, of any model and of every K of any conv layer.

FLOPs are counted the way `torch.utils.flop_counter.FlopCounterMode` counts them: 2 per
multiply-add of convolutions and matrix products, nothing for BatchNorm, ReLU, pooling or
bias additions. Removing one channel of a conv layer removes the same work whichever
channel it is (its filter over the M×N map, and the consumer's work on it: the next conv's
kernel slice over its map, or S columns of fc1), so the cost of any K of one layer is exact
arithmetic from the unpruned model: `kept_fractions`, tested against
FlopCounterMode on physically smaller models.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from prunelab.data.spec import InputSpec
from prunelab.models.nets import PrunableNet


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def flops_per_sample(model: torch.nn.Module, spec: InputSpec) -> int:
    """FlopCounterMode's count for one sample of shape spec (C×H×W). (Importing the flop
    counter loads TorchDynamo, about 2.5 s: the sweep uses `layer_flops`, tested equal.)"""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    example = torch.zeros(1, spec.channels, spec.size, spec.size, dtype=next(model.parameters()).dtype)
    with FlopCounterMode(display=False) as counter:
        model(example)
    model.train(was_training)
    return int(counter.get_total_flops())


@torch.no_grad()
def layer_flops(model: torch.nn.Module, spec: InputSpec) -> int:
    """FlopCounterMode's count for one sample, by arithmetic on the shapes each Conv2d and
    Linear sees (2 per multiply-add, nothing for bias or anything else), without the counter."""
    total = 0

    def count(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            per_output = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
            total += 2 * output[0].numel() * per_output
        else:
            total += 2 * module.in_features * module.out_features

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    was_training = model.training
    model.eval()
    try:
        model(torch.zeros(1, spec.channels, spec.size, spec.size, dtype=next(model.parameters()).dtype))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return total


@dataclass(frozen=True)
class ChannelCost:
    """What one channel of a conv layer costs, and what the whole model costs."""

    params: int  # per channel: its filter (+ bias), its BN γ and β, the consumer's weights for it
    flops: int  # per channel and sample: its conv output map, the consumer's work on it
    total_params: int
    total_flops: int


@torch.no_grad()
def channel_cost(model: PrunableNet, spec: InputSpec, layer: str | None = None) -> ChannelCost:
    """The cost of one channel of `layer` (None: the lab's layer). Every channel of a layer costs
    the same: its filter over its map, and the consumer's weights and work for that input
    (a conv: C'·kh·kw weights over its output map; fc1: its S columns). Exact for any K of one
    layer alone; pruning two adjacent layers is not additive (the conv between them loses work
    bilinearly), which `prunelab.models.cost.layer_flops` of the smaller model counts."""
    chosen = model.layer(layer)
    chain = model.chain()
    conv, consumer = chain[chosen.conv][1], chain[chosen.consumer][1]
    example = torch.zeros(1, spec.channels, spec.size, spec.size, dtype=conv.weight.dtype)
    maps = {}
    for at in (chosen.conv, chosen.consumer):
        maps[at] = model.run(example, 0, at + 1).shape[2:]  # the conv's output map (consumer: if a conv)
    per_filter = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1] // conv.groups
    bn_params = 2 if chosen.bn is not None else 0  # γ and β (running stats are buffers)
    height, width = maps[chosen.conv]
    if isinstance(consumer, nn.Linear):
        consumer_params = consumer.in_features // chosen.channels * consumer.out_features
        consumer_flops = 2 * consumer_params
    else:
        consumer_params = consumer.out_channels * consumer.kernel_size[0] * consumer.kernel_size[1] // consumer.groups
        consumer_flops = 2 * consumer_params * maps[chosen.consumer].numel()
    params = per_filter + (conv.bias is not None) + bn_params + consumer_params
    flops = 2 * per_filter * height * width + consumer_flops
    return ChannelCost(params, flops, parameter_count(model), layer_flops(model, spec))


def kept_fractions(cost: ChannelCost, ks: list[int]) -> dict[str, np.ndarray]:
    """Per K: the share of parameters and of FLOPs per sample the pruned model keeps."""
    k = np.asarray(ks, dtype=np.float64)
    return {
        "params_kept": (cost.total_params - k * cost.params) / cost.total_params,
        "flops_kept": (cost.total_flops - k * cost.flops) / cost.total_flops,
    }
