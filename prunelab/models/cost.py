"""What a model costs: parameters and FLOPs, of any model and of any channels kept per group.

FLOPs are counted the way `torch.utils.flop_counter.FlopCounterMode` counts them: 2 per
multiply-add of convolutions and matrix products, nothing for BatchNorm, ReLU, pooling or
bias additions (Torch-Pruning's `count_ops_and_params` counts MACs and also BN, ReLU and
pooling, so its numbers differ by design). Removing one channel of a group removes the same
work whichever channel it is, so the cost of any kept counts is exact arithmetic from the
unpruned model (`CostModel`), tested against FlopCounterMode on physically smaller models.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from prunelab.data.spec import InputSpec
from prunelab.models.groups import ChannelGroup
from prunelab.models.records import CostModel


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


def _sides(groups: Sequence[ChannelGroup]) -> tuple[dict[str, int], dict[str, int]]:
    """Module path → index of the group it reads (inputs) and of the group it writes (outputs)."""
    reads, writes = {}, {}
    for index, group in enumerate(groups):
        for path in group.producers + group.norms + group.depthwise:
            writes[path] = index
        for path in group.consumers:
            reads[path] = index
    return reads, writes


@torch.no_grad()
def cost_models(model: nn.Module, groups: Sequence[ChannelGroup], example: torch.Tensor) -> tuple[CostModel, CostModel]:
    """(FLOPs, parameters) of `model` per sample as functions of the channels each group keeps.
    FLOPs count 2 per multiply-add of every Conv2d and Linear (as `torch.utils.flop_counter`
    does), parameters every parameter tensor; a tensor no group touches is a constant term."""
    reads, writes = _sides(groups)
    flops: list[tuple[int, int | None, int | None]] = []

    def count(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        path = names[module]
        if isinstance(module, nn.Conv2d):
            per_output = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
            work = 2 * output[0].numel() * per_output
        else:
            work = 2 * module.in_features * module.out_features
        depthwise = isinstance(module, nn.Conv2d) and module.groups > 1 and path in writes and path not in reads
        flops.append((work, None if depthwise else reads.get(path), writes.get(path)))

    names = {module: name for name, module in model.named_modules()}
    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    was_training = model.training
    model.eval()
    try:
        model(example.to(next(model.parameters()).dtype))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    params: list[tuple[int, int | None, int | None]] = []
    for path, module in model.named_modules():
        for name, tensor in module.named_parameters(recurse=False):
            depthwise = isinstance(module, nn.Conv2d) and module.groups > 1
            weight = name == "weight" and isinstance(module, nn.Conv2d | nn.Linear) and not depthwise
            params.append((tensor.numel(), reads.get(path) if weight else None, writes.get(path)))
    layers = tuple(g.name for g in groups)
    channels = tuple(g.channels for g in groups)
    return CostModel(layers, channels, tuple(flops)), CostModel(layers, channels, tuple(params))


def kept_fractions(flops: CostModel, params: CostModel, group: str, ks: list[int]) -> dict[str, np.ndarray]:
    """Per K of one group pruned alone: the share of parameters and of FLOPs per sample the
    pruned model keeps ((total − K · per channel) / total, exact)."""
    k = np.asarray(ks, dtype=np.float64)
    return {
        "params_kept": (params.total - k * params.per_channel(group)) / params.total,
        "flops_kept": (flops.total - k * flops.per_channel(group)) / flops.total,
    }
