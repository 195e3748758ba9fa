"""Figures of the study. Pure functions: data in, a saved PNG out."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display needed; must precede pyplot
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from stages.runtime import atomic_path


def grid_shape(channels: int) -> tuple[int, int]:
    """Rows × columns, as square as P's divisors allow: 8×16 for 128, 4×8 for 32, 6×10 for 60."""
    rows = max(d for d in range(1, math.isqrt(channels) + 1) if channels % d == 0)
    return rows, channels // rows


def _save(fig: plt.Figure, path: Path, dpi: int) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    plt.close(fig)


def plot_feature_maps(maps: np.ndarray, order: np.ndarray, path: Path, *, title: str, cmap: str, dpi: int) -> None:
    """The P mean feature maps on one colour scale, each labelled 'c<channel> r<rank>'
    (rank 0 = pruned first under the headline criterion)."""
    rows, cols = grid_shape(len(maps))
    rank = np.empty(len(order), dtype=int)
    rank[order] = np.arange(len(order))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.9, rows * 1.0 + 0.6), squeeze=False)
    vmin, vmax = float(maps.min()), float(maps.max())
    image = None
    for channel, ax in enumerate(axes.flat):
        image = ax.imshow(maps[channel], cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.set_title(f"c{channel} r{rank[channel]}", fontsize=6, pad=2)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=10)
    fig.colorbar(image, ax=axes, fraction=0.015, pad=0.01, label="mean activation")
    _save(fig, path, dpi)


def _floor_lines(ax: plt.Axes, baseline: float, floor: float, floor_label: str) -> None:
    ax.axhline(baseline, color="black", linestyle="--", linewidth=1, label=f"baseline (K=0) {baseline:.1f}%")
    ax.axhline(floor, color="grey", linestyle=":", linewidth=1.2, label=f"{floor_label} {floor:.1f}%")


def plot_accuracy_vs_k(table: pd.DataFrame, criterion: str, metrics: dict, path: Path, *, dpi: int) -> None:
    sns.set_theme(style="whitegrid")
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(table["k"], table[f"acc_{criterion}"], marker="o", markersize=2.5, label="accuracy")
    ax.plot(table["k"], table[f"bacc_{criterion}"], marker="s", markersize=2.5, label="balanced accuracy")
    ax.axhline(
        metrics["majority_floor"],
        color="grey",
        linestyle=":",
        label=f"majority-class floor {metrics['majority_floor']:.1f}%",
    )
    ax.axhline(
        metrics["balanced_floor"],
        color="grey",
        linestyle="-.",
        linewidth=0.8,
        label=f"balanced floor {metrics['balanced_floor']:.0f}%",
    )
    ax.set_xlabel("K (channels pruned, lowest-ranked first)")
    ax.set_ylabel("test score (%)")
    ax.set_title(f"Pruning the last conv layer by {criterion} (P={metrics['channels']})")
    ax.legend(fontsize=8, loc="lower left")
    _save(fig, path, dpi)


def plot_criteria(table: pd.DataFrame, criteria: list[str], metrics: dict, path: Path, *, dpi: int) -> None:
    """Balanced accuracy (left) and accuracy (right) against K for every criterion; random
    orders as a mean ± std band."""
    sns.set_theme(style="whitegrid")
    names = [c for c in criteria if c != "random"] + [
        c.removeprefix("acc_") for c in table.columns if c.endswith("_zero_weights") and c.startswith("acc_")
    ]
    palette = dict(zip(names, sns.color_palette("tab10", len(names)), strict=True))
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8), sharex=True)
    panels = [
        (
            "bacc",
            "balanced accuracy (%)",
            metrics["baseline_balanced_accuracy"],
            metrics["balanced_floor"],
            "balanced floor",
        ),
        ("acc", "accuracy (%)", metrics["baseline_accuracy"], metrics["majority_floor"], "majority floor"),
    ]
    k = table["k"]
    for ax, (prefix, label, baseline, floor, floor_label) in zip(axes, panels, strict=True):
        if "random" in criteria:
            mean, std = table[f"{prefix}_random"], table[f"{prefix}_random_std"]
            ax.plot(k, mean, color="grey", linewidth=1.2, label="random (mean ± std)")
            ax.fill_between(k, mean - std, mean + std, color="grey", alpha=0.25, linewidth=0)
        for name in names:
            style = "--" if name.endswith("_zero_weights") else "-"
            ax.plot(k, table[f"{prefix}_{name}"], style, color=palette[name], linewidth=1.3, label=name)
        _floor_lines(ax, baseline, floor, floor_label)
        ax.set_xlabel("K (channels pruned)")
        ax.set_ylabel(label)
    axes[0].set_title("Balanced accuracy: the honest score on imbalanced data")
    axes[1].set_title("Plain accuracy")
    axes[1].legend(fontsize=7, loc="lower left", ncol=2)
    _save(fig, path, dpi)
