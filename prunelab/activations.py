"""Collecting the per-channel statistics of the pruned block, in one pass as running sums.

Memory is O(P·M·N) whatever the number of samples: each batch is reduced into float64
sums and dropped. The same pass collects everything every criterion needs, including the
first-order Taylor term, which needs a backward pass through the head only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from prunelab.errors import UserError
from prunelab.models import PrunableNet
from prunelab.runtime import progress
from prunelab.stats import ActivationStats


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
    sums: dict[str, torch.Tensor] = {}
    for start in progress(range(0, len(images), batch_size), desc=label, total=-(-len(images) // batch_size)):
        x = images[start : start + batch_size].to(device)
        y = labels[start : start + batch_size].to(device)
        with torch.no_grad():
            conv_out = model.block.conv(model.stem(x))
        act = model.block.activation(conv_out).requires_grad_(True)
        logits = model.head(model.block.pool(act))
        # Sum, not mean: each sample's gradient is that of its own loss, whatever the batch size.
        (grad,) = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"), act)
        act = act.detach()
        batch = {
            "conv_sum": conv_out.double().sum(dim=(0, 2, 3)),
            "map_sum": act.double().sum(dim=0),
            "zero_count": (act == 0).double().sum(dim=(0, 2, 3)),
            "taylor_sum": (act * grad).double().mean(dim=(2, 3)).abs().sum(dim=0),
        }
        for key, value in batch.items():
            sums[key] = sums[key] + value if key in sums else value
    n = len(images)
    if n == 0:
        raise UserError("activations: the ranking split is empty; choose another activations.split")
    maps = (sums["map_sum"] / n).cpu().numpy()
    positions = maps.shape[1] * maps.shape[2]
    return ActivationStats(
        conv_mean=(sums["conv_sum"] / (n * positions)).cpu().numpy(),
        act_mean=maps.mean(axis=(1, 2)),
        feature_maps=maps,
        apoz=(sums["zero_count"] / (n * positions)).cpu().numpy(),
        taylor=(sums["taylor_sum"] / n).cpu().numpy(),
        n_samples=n,
    )
