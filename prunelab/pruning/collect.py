"""Collecting the per-channel statistics of the pruned block, in one pass as running sums.

Memory is O(P·M·N + P² + P·H) whatever the number of samples: each batch is reduced into
float64 sums and dropped. The same pass collects everything every criterion needs, including
the first-order Taylor term, which needs a backward pass through the head only, and the
centred Gram matrix of the channels' contributions to fc1 (the `reconstruction` criterion).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from prunelab.errors import UserError
from prunelab.models.nets import PrunableNet
from prunelab.pruning.activations import ActivationStats
from prunelab.runtime import progress

# Contributions (P×n×H, float64) are formed for at most this many elements at a time (16 MiB), so
# the Gram's memory does not grow with activations.batch_size; the sums do not depend on it.
GRAM_CHUNK_ELEMENTS = 1 << 21


def contribution_sums(pooled: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For block outputs n×P×h×w and fc1's weight grouped by channel (P×S×H, float64): the
    uncentred Gram Σ_n <u_c(n), u_c'(n)> (P×P) and Σ_n u_c(n) (P×H) of the contributions
    u_c(n) = W_c z_c(n), as `prunelab.pruning.HeadParts.contributions` forms them."""
    p, per_channel, hidden = weight.shape
    z = pooled.to(weight.dtype).reshape(-1, p, per_channel).transpose(0, 1)  # P×n×S
    gram = torch.zeros(p, p, dtype=weight.dtype, device=weight.device)
    total = torch.zeros(p, hidden, dtype=weight.dtype, device=weight.device)
    step = max(1, GRAM_CHUNK_ELEMENTS // (p * hidden))
    for start in range(0, z.shape[1], step):
        u = torch.bmm(z[:, start : start + step], weight)  # P×n×H
        flat = u.reshape(p, -1)
        gram += flat @ flat.T
        total += u.sum(dim=1)
    return gram, total


def collect_stats(
    model: PrunableNet,
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
    device: torch.device,
    label: str = "collect",
) -> ActivationStats:
    """Every criterion's statistics over (images, labels), in one pass; `label` names the progress bar."""
    model = model.to(device).eval()
    fc1 = model.head.fc1
    p, hidden = model.channels, fc1.out_features
    # fc1's weight as P×S×H: channel c owns input columns c·S … (c+1)·S − 1 (see HeadParts).
    weight = fc1.weight.detach().double().view(hidden, p, fc1.in_features // p).permute(1, 2, 0)
    sums: dict[str, torch.Tensor] = {}
    for start in progress(range(0, len(images), batch_size), desc=label, total=-(-len(images) // batch_size)):
        x = images[start : start + batch_size].to(device)
        y = labels[start : start + batch_size].to(device)
        with torch.no_grad():
            conv_out = model.block.conv(model.stem(x))
        act = model.block.activation(conv_out).requires_grad_(True)
        pooled = model.block.pool(act)  # the block output: pool(relu(·)) ≡ relu(pool(·))
        logits = model.head(pooled)
        # Sum, not mean: each sample's gradient is that of its own loss, whatever the batch size.
        (grad,) = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"), act)
        act = act.detach()
        with torch.no_grad():
            gram, contribution_sum = contribution_sums(pooled.detach(), weight)
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
