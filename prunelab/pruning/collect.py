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

from prunelab.errors import UserError
from prunelab.models.graph import as_tuple
from prunelab.pruning.consumers import ConsumerParts
from prunelab.pruning.records import ActivationStats
from prunelab.pruning.views import GroupView, apply
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


def collect_stats(
    view: GroupView,
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
    device: torch.device,
    label: str = "collect",
) -> ActivationStats:
    """Every criterion's statistics of the view's group over (images, labels), in one pass;
    `label` names the progress bar. The raw conv output is its first producer's; the activation
    is that producer's map after its BN and activation, before trailing pooling (a max pool
    before a ReLU commutes with it); the Gram matrix of contributions to the consumer exists for
    groups on the fast path only (others: zeros, and `reconstruction` refuses them)."""
    view.gm.to(device).eval()
    p = view.group.channels
    parts = None
    if view.fast:
        with torch.no_grad():
            out_side = tuple(as_tuple(view.before_read(images[:1].to(device)))[0].shape[2:])
        parts = ConsumerParts.of(view, "remove", torch.float64, device, out_side)
    sums: dict[str, torch.Tensor] = {}
    for start in progress(range(0, len(images), batch_size), desc=label, total=-(-len(images) // batch_size)):
        x = images[start : start + batch_size].to(device)
        y = labels[start : start + batch_size].to(device)
        with torch.no_grad():
            h, *extras = as_tuple(view.before_producer(x))
            conv_out = view.producer(h)
        act = apply(view.activation, conv_out).requires_grad_(True)
        pooled = apply(view.pooling, act)  # the read point: pool(relu(·)) ≡ relu(pool(·))
        logits = view.after_read(pooled, *extras)
        # Sum, not mean: each sample's gradient is that of its own loss, whatever the batch size.
        (grad,) = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"), act)
        act = act.detach()
        batch = {
            "conv_sum": conv_out.double().sum(dim=(0, 2, 3)),
            "map_sum": act.double().sum(dim=0),
            "zero_count": (act == 0).double().sum(dim=(0, 2, 3)),
            "taylor_sum": (act * grad).double().mean(dim=(2, 3)).abs().sum(dim=0),
        }
        if parts is not None:
            with torch.no_grad():
                batch["gram"], batch["contribution_sum"] = contribution_sums(
                    pooled.detach(), parts.by_channel, p, parts.hidden
                )
        for key, value in batch.items():
            sums[key] = sums[key] + value if key in sums else value
    n = len(images)
    if n == 0:
        raise UserError("activations: the ranking split is empty; choose another activations.split")
    maps = (sums["map_sum"] / n).cpu().numpy()
    positions = maps.shape[1] * maps.shape[2]
    # Centring: Σ_n <ũ_c, ũ_c'> = Σ_n <u_c, u_c'> − <Σ_n u_c, Σ_n u_c'> / N. Symmetrised so that
    # G[c, c'] == G[c', c] exactly, which the greedy order's tie-breaking relies on.
    if parts is not None:
        total = sums["contribution_sum"]
        centred = sums["gram"] - total @ total.T / n
    else:  # no single linear consumer: no contributions to measure
        centred = torch.zeros(p, p, dtype=torch.float64)
    return ActivationStats(
        conv_mean=(sums["conv_sum"] / (n * positions)).cpu().numpy(),
        act_mean=maps.mean(axis=(1, 2)),
        feature_maps=maps,
        apoz=(sums["zero_count"] / (n * positions)).cpu().numpy(),
        taylor=(sums["taylor_sum"] / n).cpu().numpy(),
        contribution_gram=((centred + centred.T) / 2).cpu().numpy(),
        n_samples=n,
    )
