"""The .npz arrays the stages read: prepared splits and activation statistics.

A byte flipped inside an array is already refused when it is read (an .npz is a zip whose
members carry a CRC-32 that `zipfile` checks); these checks catch well-formed arrays that are
wrong: a label outside the classes (it ended `sweep_prune` in a reshape traceback), lengths that
disagree, a shape or dtype other than info.json declares, NaN or infinite statistics, shares
outside [0, 1].
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from prunelab.checks.text import refusal

if TYPE_CHECKING:
    from prunelab.data.records import DatasetInfo
    from prunelab.pruning.records import ActivationStats

RANKING_SPLITS = ("train", "val", "test")


def check_split(
    path: Path | str, images: np.ndarray, labels: np.ndarray, info: DatasetInfo, image_ids: np.ndarray | None = None
) -> None:
    """A prepared split against its folder's info.json: uint8 images N×C×H×W of the declared
    shape, one int64 label each in [0, n_classes), and one image id each."""
    if images.dtype != np.uint8 or images.ndim != 4 or labels.ndim != 1 or len(images) != len(labels):
        raise refusal(path, "not a prepared split (uint8 images N×C×H×W and one label each)", "prepare_data")
    if image_ids is not None and (image_ids.ndim == 0 or len(image_ids) != len(labels)):
        raise refusal(path, f"{len(labels)} labels but {np.size(image_ids)} image ids", "prepare_data")
    expected = (info.input.channels, info.input.size, info.input.size)
    if tuple(images.shape[1:]) != expected:
        raise refusal(path, f"shape {tuple(images.shape)} does not match info.json (N×{expected})", "prepare_data")
    if labels.dtype != np.int64:
        raise refusal(path, f"labels of dtype {labels.dtype}, not int64", "prepare_data")
    n_classes = info.input.n_classes
    outside = np.flatnonzero((labels < 0) | (labels >= n_classes))
    if len(outside):
        first = int(outside[0])
        problem = (
            f"label {labels[first]} of sample {first} is outside 0..{n_classes - 1} (info.json: {n_classes} classes)"
        )
        raise refusal(path, problem, "prepare_data")


def check_stats(path: Path | str, stats: ActivationStats, split: str) -> None:
    """Activation statistics: finite, shares in [0, 1], means after ReLU and |Taylor terms|
    not negative, at least one sample, a known ranking split. (The channel count is checked
    against the model by `load_stats`.)"""
    if split not in RANKING_SPLITS:
        raise refusal(path, f"ranking split {split!r} is not one of {', '.join(RANKING_SPLITS)}", "collect_activations")
    if stats.n_samples < 1:
        raise refusal(path, f"n_samples={stats.n_samples}: statistics of no sample", "collect_activations")
    for name in ("conv_mean", "act_mean", "feature_maps", "apoz", "taylor", "contribution_gram"):
        values = np.asarray(getattr(stats, name))
        if not np.issubdtype(values.dtype, np.floating):
            raise refusal(path, f"{name} holds {values.dtype}, not floats", "collect_activations")
        if not np.isfinite(values).all():
            raise refusal(path, f"{name} holds NaN or infinite values", "collect_activations")
    for name, low, high in (("act_mean", 0, None), ("feature_maps", 0, None), ("taylor", 0, None), ("apoz", 0, 1)):
        values = np.asarray(getattr(stats, name))
        if values.size and (values.min() < low or (high is not None and values.max() > high)):
            allowed = f"[{low}, {high}]" if high is not None else f">= {low}"
            raise refusal(path, f"{name} has values outside {allowed}", "collect_activations")
