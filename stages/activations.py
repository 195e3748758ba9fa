"""Per-channel statistics of the pruned block, collected in one pass as running sums.

Memory is O(P·M·N) whatever the number of samples: each batch is reduced into float64
sums and dropped. The same pass collects everything every criterion needs, including the
first-order Taylor term, which needs a backward pass through the head only.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from stages.errors import UserError
from stages.models import PrunableNet
from stages.runtime import atomic_path, progress


@dataclass(frozen=True)
class ActivationStats:
    """Means over the ranking split; every array is per output channel of the pruned conv."""

    conv_mean: np.ndarray  # P: raw conv output (what the handout ranks on)
    act_mean: np.ndarray  # P: after BN and ReLU (the default ranking signal)
    feature_maps: np.ndarray  # P×M×N: mean map after BN and ReLU
    apoz: np.ndarray  # P: share of zeros after ReLU, over samples × positions
    taylor: np.ndarray  # P: mean over samples of |mean over positions of a · dL/da|
    n_samples: int

    @property
    def channels(self) -> int:
        return len(self.act_mean)


def collect_stats(
    model: PrunableNet, images: torch.Tensor, labels: torch.Tensor, batch_size: int, device: torch.device
) -> ActivationStats:
    model = model.to(device).eval()
    sums: dict[str, torch.Tensor] = {}
    for start in progress(range(0, len(images), batch_size), desc="collect", total=-(-len(images) // batch_size)):
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


def save_stats(path: Path, stats: ActivationStats, split: str) -> None:
    arrays = {f.name: np.asarray(getattr(stats, f.name)) for f in fields(stats)}
    with atomic_path(path) as tmp:
        with tmp.open("wb") as handle:
            np.savez(handle, split=np.asarray(split), **arrays)


def load_stats(path: Path, model: PrunableNet) -> tuple[ActivationStats, str]:
    """Load statistics and check they belong to a model with this many channels."""
    if not path.exists():
        raise UserError(f"{path}: activation statistics not found; run collect_activations (dvc repro)")
    try:
        with np.load(path, allow_pickle=False) as raw:
            values = {f.name: raw[f.name] for f in fields(ActivationStats)}
            split = str(raw["split"])
    # A truncated .npz is a broken zip (BadZipFile) or ends early (EOFError).
    except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise UserError(
            f"{path}: unreadable activation statistics ({type(err).__name__}); rerun collect_activations"
        ) from None
    values["n_samples"] = int(values["n_samples"])
    stats = ActivationStats(**values)
    p = model.channels
    shapes_ok = all(np.shape(getattr(stats, k)) == (p,) for k in ("conv_mean", "act_mean", "apoz", "taylor"))
    if not shapes_ok or stats.feature_maps.ndim != 3 or stats.feature_maps.shape[0] != p:
        raise UserError(
            f"{path}: statistics for {stats.channels} channels do not match the model's P={p}; "
            "rerun collect_activations"
        )
    return stats, split
