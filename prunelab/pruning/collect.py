"""Collecting the per-channel statistics of one conv layer, in one pass as running sums.

Memory is O(P·M·N + P² + P·H) whatever the number of samples: each batch is reduced into
float64 sums and dropped. The same pass collects everything every criterion needs, including
the first-order Taylor term, which needs a backward pass through what follows the layer
only, and the centred Gram matrix of the channels' contributions to the consumer's
pre-activation (fc1, or the next conv: the `reconstruction` criterion).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from prunelab.errors import UserError
from prunelab.models.nets import ConvLayer, PrunableNet
from prunelab.pruning.activations import ActivationStats
from prunelab.pruning.consumers import ConsumerParts
from prunelab.runtime import progress

# Contributions (P×n×H, float64) are formed for at most this many elements at a time (16 MiB), so
# the Gram's memory does not grow with activations.batch_size; the sums do not depend on it.
GRAM_CHUNK_ELEMENTS = 1 << 21


def contribution_sums(
    pooled: torch.Tensor, by_channel: Callable[[torch.Tensor], torch.Tensor], p: int, hidden: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """For layer outputs n×P×h×w and the consumer's per-channel contributions
    (`prunelab.pruning.sweep.ConsumerParts.by_channel`, float64, P×n×H): the uncentred Gram
    Σ_n <u_c(n), u_c'(n)> (P×P) and Σ_n u_c(n) (P×H) of the contributions u_c(n)."""
    gram = torch.zeros(p, p, dtype=torch.float64, device=pooled.device)
    total = torch.zeros(p, hidden, dtype=torch.float64, device=pooled.device)
    step = max(1, GRAM_CHUNK_ELEMENTS // (p * hidden))
    for start in range(0, len(pooled), step):
        u = by_channel(pooled[start : start + step])  # P×n×H
        flat = u.reshape(p, -1)
        gram += flat @ flat.T
        total += u.sum(dim=1)
    return gram, total


def _activation_and_pooling(model: PrunableNet, layer: ConvLayer) -> tuple[list[nn.Module], list[nn.Module]]:
    """The modules between a layer's conv and its output, split into what makes the activation
    map (BN, ReLU) and the pooling after it. Max pooling commutes with ReLU (see
    `prunelab.models.nets.PrunedBlock`), so the map is taken before pooling whatever the order."""
    after = [module for _, module in model.chain()[layer.conv + 1 : layer.output + 1]]
    kinds = [type(m) for m in after]
    pooling_after_bn = nn.BatchNorm2d not in kinds or kinds.index(nn.BatchNorm2d) == 0
    if not pooling_after_bn or not set(kinds) <= {nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d}:
        raise ValueError(f"{layer.name}: expected conv → [BN] → ReLU / MaxPool, got {[k.__name__ for k in kinds]}")
    return [m for m in after if not isinstance(m, nn.MaxPool2d)], [m for m in after if isinstance(m, nn.MaxPool2d)]


def _apply(modules: list[nn.Module], h: torch.Tensor) -> torch.Tensor:
    for module in modules:
        h = module(h)
    return h


def collect_stats(
    model: PrunableNet,
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
    device: torch.device,
    label: str = "collect",
    layer: str | None = None,
) -> ActivationStats:
    """Every criterion's statistics of `layer`'s channels (None: the lab's layer, the last conv)
    over (images, labels), in one pass; `label` names the progress bar."""
    model = model.to(device).eval()
    chosen = model.layer(layer)
    activation, pooling = _activation_and_pooling(model, chosen)
    p = chosen.channels
    with torch.no_grad():
        out_side = tuple(model.run(images[:1].to(device), 0, chosen.output + 1).shape[2:])
    parts = ConsumerParts.of(model, "remove", torch.float64, device, out_side, chosen.name)
    sums: dict[str, torch.Tensor] = {}
    for start in progress(range(0, len(images), batch_size), desc=label, total=-(-len(images) // batch_size)):
        x = images[start : start + batch_size].to(device)
        y = labels[start : start + batch_size].to(device)
        with torch.no_grad():
            conv_out = model.run(x, 0, chosen.conv + 1)
        act = _apply(activation, conv_out).requires_grad_(True)
        pooled = _apply(pooling, act)  # the layer's output: pool(relu(·)) ≡ relu(pool(·))
        logits = model.run(pooled, chosen.output + 1)
        # Sum, not mean: each sample's gradient is that of its own loss, whatever the batch size.
        (grad,) = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"), act)
        act = act.detach()
        with torch.no_grad():
            gram, contribution_sum = contribution_sums(pooled.detach(), parts.by_channel, p, parts.hidden)
        batch = {
            "conv_sum": conv_out.double().sum(dim=(0, 2, 3)),
            "map_sum": act.double().sum(dim=0),
            "zero_count": (act == 0).double().sum(dim=(0, 2, 3)),
            "taylor_sum": (act * grad).double().mean(dim=(2, 3)).abs().sum(dim=0),
            "gram": gram,
            "contribution_sum": contribution_sum,
        }
        for key, value in batch.items():
            sums[key] = sums[key] + value if key in sums else value
    n = len(images)
    if n == 0:
        raise UserError("activations: the ranking split is empty; choose another activations.split")
    maps = (sums["map_sum"] / n).cpu().numpy()
    positions = maps.shape[1] * maps.shape[2]
    # Centring: Σ_n <ũ_c, ũ_c'> = Σ_n <u_c, u_c'> − <Σ_n u_c, Σ_n u_c'> / N. Symmetrised so that
    # G[c, c'] == G[c', c] exactly, which the greedy order's tie-breaking relies on.
    total = sums["contribution_sum"]
    centred = sums["gram"] - total @ total.T / n
    return ActivationStats(
        conv_mean=(sums["conv_sum"] / (n * positions)).cpu().numpy(),
        act_mean=maps.mean(axis=(1, 2)),
        feature_maps=maps,
        apoz=(sums["zero_count"] / (n * positions)).cpu().numpy(),
        taylor=(sums["taylor_sum"] / n).cpu().numpy(),
        contribution_gram=((centred + centred.T) / 2).cpu().numpy(),
        n_samples=n,
    )
