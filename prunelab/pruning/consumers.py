"""A conv layer's channels as separate inputs of the layer that consumes them.

The consumer (fc1, or the next conv) is linear in its input, so its pre-activation is its
bias plus one contribution per input channel. Removing channels subtracts theirs: the fast
sweep (`prunelab.pruning.sweep`) walks K this way, and the `reconstruction` statistics
(`prunelab.pruning.collect`) are the Gram matrix of these contributions.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from prunelab.pruning.views import GroupView


@torch.no_grad()
def replacement_values(view: GroupView, mode: str, out_side: tuple[int, int]) -> torch.Tensor:
    """What a pruned channel emits at the group's read point (P×h×w): 0 when removed; with zeroed
    weights, the per-channel ops after the conv applied to a map that equals the conv bias everywhere."""
    conv = view.producer
    p = view.group.channels
    if mode == "remove" or conv.bias is None:
        return torch.zeros(p, *out_side)
    after = [copy.deepcopy(module).cpu().eval() for module in [*view.activation, *view.pooling]]
    # The map is constant, so only its size matters: large enough that pooling leaves h×w (a
    # max pool commutes with the ReLU it is moved past, and on a constant map anyway).
    scale = math.prod(
        m.stride if isinstance(m.stride, int) else m.stride[0]
        for module in after
        for m in module.modules()
        if isinstance(m, nn.MaxPool2d | nn.AvgPool2d)
    )
    bias = conv.bias.detach().cpu()  # in the model's dtype: float64 models stay exact
    h = bias.view(1, p, 1, 1).expand(1, p, scale * out_side[0], scale * out_side[1])
    for module in after:
        h = module(h)
    return h[0]


def _inference_copy(module: nn.Module, device: torch.device, dtype: torch.dtype) -> nn.Module:
    rest = copy.deepcopy(module).to(device, dtype).eval()
    for module in rest.modules():
        if getattr(module, "inplace", False):
            module.inplace = False  # the sweep reads the pre-activations it passes in again
    return rest


@dataclass(frozen=True)
class ConsumerParts:
    """The network split for the sweep at one group: the consumer (the next conv or fc1) by
    input channel, and everything after the consumer (which may also read values computed once
    without the group, `extras`: a ResNet block's skip tensor).

    The consumer is linear in its input, so its pre-activation (flattened to H numbers per
    sample) is its bias plus one contribution per input channel: for fc1, W_c z_c over channel
    c's columns; for a conv, the conv of channel c's map with its slice of the kernel (a
    grouped conv computes all P at once).

    A conv consumer's H numbers are flattened channels-last (h', w', C'), and everything after
    it runs on channels-last maps: oneDNN's convolutions and pooling are faster on them (what
    follows conv2's consumer in the pairs model, 2,000 samples: about half the time, measured
    alone), and the walk's pre-activations then are such maps with no copy. Sums over H (the
    sweep's subtraction, the reconstruction Gram) do not depend on the order of the H numbers."""

    weight: torch.Tensor  # fc1: P×S×H, grouped by input channel; conv: (P·C')×1×kh×kw, grouped conv kernels
    bias: torch.Tensor  # H
    rest: nn.Module  # everything after the consumer, in the sweep's dtype: (pre-activation, *extras) → logits
    replaced: torch.Tensor | None  # P×1×H: what a pruned channel still adds (zero_weights); None if nothing
    conv: nn.Conv2d | None  # the consumer when it is a conv (its geometry), else None
    map_shape: tuple[int, ...]  # the consumer's output per sample: (H,) for fc1, (C', h', w') for a conv

    @staticmethod
    @torch.no_grad()
    def of(
        view: GroupView, mode: str, dtype: torch.dtype, device: torch.device, out_side: tuple[int, int]
    ) -> ConsumerParts:
        if not view.fast:
            raise ValueError(f"{view.group.name} has no single linear consumer: {view.fast_reason}")
        assert view.consumer is not None and view.after_consumer is not None
        p = view.group.channels
        consumer = view.consumer
        rest = _inference_copy(view.after_consumer, device, dtype)
        values = replacement_values(view, mode, out_side).to(device, dtype)
        if isinstance(consumer, nn.Linear):
            hidden, per_channel = consumer.out_features, consumer.in_features // p
            weight = consumer.weight.detach().to(device, dtype).view(hidden, p, per_channel).permute(1, 2, 0)
            bias = consumer.bias.detach().to(device, dtype)
            parts = ConsumerParts(weight, bias, rest, None, None, (hidden,))
        else:
            kernel = consumer.weight.detach().to(device, dtype)  # C'×P×kh×kw
            grouped = kernel.transpose(0, 1).reshape(p * kernel.shape[0], 1, *kernel.shape[2:])
            geometry = copy.deepcopy(consumer).to(device, dtype)
            probe = torch.zeros(1, p, *out_side, dtype=dtype, device=device)
            shape = tuple(geometry(probe).shape[1:])
            bias = geometry.bias if geometry.bias is not None else torch.zeros(shape[0], dtype=dtype, device=device)
            flat_bias = bias.detach().view(1, 1, -1).expand(shape[1], shape[2], shape[0]).reshape(-1).contiguous()
            rest = rest.to(memory_format=torch.channels_last)
            parts = ConsumerParts(grouped, flat_bias, rest, None, geometry, shape)
        if bool(values.any()):
            parts = replace(parts, replaced=parts.by_channel(values[None]))
        return parts

    @property
    def hidden(self) -> int:
        return self.bias.shape[0]

    def by_channel(self, outputs: torch.Tensor) -> torch.Tensor:
        """Each channel's contribution to the consumer's pre-activation, P×n×H, for maps n×P×h×w."""
        if self.conv is None:
            p, per_channel, _ = self.weight.shape
            z = outputs.to(self.weight.dtype).reshape(-1, p, per_channel).transpose(0, 1)  # P×n×S
            return torch.bmm(z, self.weight)
        conv, p = self.conv, outputs.shape[1]
        mapped = F.conv2d(
            outputs.to(self.weight.dtype), self.weight, None, conv.stride, conv.padding, conv.dilation, groups=p
        )  # n×(P·C')×h'×w': channel c's share is block c
        n, (c, h, w) = len(outputs), self.map_shape
        return mapped.view(n, p, c, h, w).permute(1, 0, 3, 4, 2).reshape(p, n, -1)  # P×n×(h'·w'·C')

    @torch.no_grad()
    def contributions(self, outputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """For layer outputs n×P×h×w: the consumer's pre-activation with nothing removed (n×H),
        and what removing each channel takes away from it (P×n×H)."""
        contribution = self.by_channel(outputs)
        full = contribution.sum(0) + self.bias
        if self.replaced is not None:
            contribution.sub_(self.replaced)  # a zeroed channel still adds its constant's share
        return full, contribution

    def finish(self, pre: torch.Tensor, extras: tuple[torch.Tensor, ...] = ()) -> torch.Tensor:
        """Logits (…×n×C) from the consumer's pre-activations (…×n×H): the rest of the network.
        `extras` are the values the rest also reads, for the same n samples (n×…): repeated for
        every leading (K, order) entry."""
        if extras:
            copies = pre[..., 0, 0].numel()
            extras = tuple(e.expand(copies, *e.shape).reshape(-1, *e.shape[1:]) for e in extras)
        if self.conv is None:
            if not extras:
                return self.rest(pre)
            logits = self.rest(pre.reshape(-1, pre.shape[-1]), *extras)
            return logits.view(*pre.shape[:-1], logits.shape[-1])
        c, h, w = self.map_shape
        maps = pre.reshape(-1, h, w, c).permute(0, 3, 1, 2)  # N×C'×h'×w' laid out channels-last: no copy
        logits = self.rest(maps, *extras)
        return logits.view(*pre.shape[:-1], logits.shape[-1])
