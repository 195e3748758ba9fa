"""Per-channel statistics of the pruned block (what every ranking criterion reads), and
their file format (.npz). NumPy only: the criteria and the plots read them without torch."""

from __future__ import annotations

import zipfile
from dataclasses import fields
from pathlib import Path

import numpy as np

from prunelab.checks.arrays import check_stats
from prunelab.errors import UserError
from prunelab.pruning.records import ActivationStats
from prunelab.runtime import atomic_path


def save_stats(path: Path, stats: ActivationStats, split: str) -> None:
    arrays = {f.name: np.asarray(getattr(stats, f.name)) for f in fields(stats)}
    with atomic_path(path) as tmp:
        with tmp.open("wb") as handle:
            np.savez(handle, split=np.asarray(split), **arrays)


def load_stats(path: Path, channels: int) -> tuple[ActivationStats, str]:
    """Load statistics and check they belong to a model with `channels` (P) channels, and are
    finite and in range (`prunelab.checks.arrays.check_stats`)."""
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
    if np.size(values["n_samples"]) != 1 or not np.issubdtype(values["n_samples"].dtype, np.integer):
        raise UserError(f"{path}: n_samples is not one integer; rerun collect_activations")
    values["n_samples"] = int(values["n_samples"])
    stats = ActivationStats(**values)
    p = channels
    shapes_ok = all(np.shape(getattr(stats, k)) == (p,) for k in ("conv_mean", "act_mean", "apoz", "taylor"))
    shapes_ok = shapes_ok and np.shape(stats.contribution_gram) == (p, p)
    if not shapes_ok or stats.feature_maps.ndim != 3 or stats.feature_maps.shape[0] != p:
        found = np.shape(stats.act_mean)[0] if np.ndim(stats.act_mean) else 0
        raise UserError(
            f"{path}: statistics for {found} channels do not match the model's P={p}; rerun collect_activations"
        )
    check_stats(path, stats, split)
    return stats, split
