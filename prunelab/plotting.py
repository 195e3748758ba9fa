"""Figures of the study. Pure functions: data in, a saved PNG out."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display needed; must precede pyplot
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from prunelab.runtime import atomic_path


def grid_shape(channels: int) -> tuple[int, int]:
    """Rows × columns, as square as P's divisors allow: 8×16 for 128, 4×8 for 32, 6×10 for 60."""
    rows = max(d for d in range(1, math.isqrt(channels) + 1) if channels % d == 0)
    return rows, channels // rows


# seaborn's whitegrid look, from matplotlib's copy of it: importing seaborn itself pulls in
# scipy.stats, over a second of the plot stage on 2 cores.
STYLE = "seaborn-v0_8-whitegrid"


def _save(fig: plt.Figure, path: Path, dpi: int) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    plt.close(fig)


def mosaic(maps: np.ndarray, rows: int, cols: int, gap: tuple[int, int]) -> np.ma.MaskedArray:
    """The P maps (P×M×N) tiled row-major into one rows×cols image, `gap` = (vertical,
    horizontal) masked pixels between tiles. Tile c's top-left pixel is at
    (r·(M+gap_v), k·(N+gap_h)) with r, k = divmod(c, cols)."""
    p, m, n = maps.shape
    gap_v, gap_h = gap
    shape = (rows * (m + gap_v) - gap_v, cols * (n + gap_h) - gap_h)
    pixels, gaps = np.zeros(shape), np.ones(shape, dtype=bool)
    for channel in range(p):
        r, k = divmod(channel, cols)
        tile = np.s_[r * (m + gap_v) : r * (m + gap_v) + m, k * (n + gap_h) : k * (n + gap_h) + n]
        pixels[tile], gaps[tile] = maps[channel], False
    return np.ma.masked_array(pixels, mask=gaps)


def plot_feature_maps(maps: np.ndarray, order: np.ndarray, path: Path, *, title: str, cmap: str, dpi: int) -> None:
    """The P mean feature maps on one colour scale, each labelled 'c<channel> r<rank>'
    (rank 0 = pruned first under the headline criterion).

    One image of tiled maps rather than P subplots: P = 128 axes took about 5 s to lay out
    and draw on 2 cores, a fifth of the default pipeline's non-training time.
    """
    p, m, n = maps.shape
    rows, cols = grid_shape(p)
    rank = np.empty(len(order), dtype=int)
    rank[order] = np.arange(len(order))
    gap_v, gap_h = max(2, round(0.45 * m)), max(1, round(0.25 * n))  # vertical gaps hold the labels
    fig, ax = plt.subplots(figsize=(cols * 0.9 + 1.0, rows * 1.0 + 0.6))
    image = ax.imshow(
        mosaic(maps, rows, cols, (gap_v, gap_h)),
        cmap=plt.get_cmap(cmap).with_extremes(bad="white"),
        vmin=float(maps.min()),
        vmax=float(maps.max()),
        interpolation="nearest",
    )
    for channel in range(p):
        r, k = divmod(channel, cols)
        top, left = r * (m + gap_v), k * (n + gap_h)
        ax.add_patch(plt.Rectangle((left - 0.5, top - 0.5), n, m, fill=False, linewidth=0.6, edgecolor="black"))
        ax.text(left + (n - 1) / 2, top - 0.7, f"c{channel} r{rank[channel]}", fontsize=6, ha="center", va="bottom")
    ax.set_ylim(rows * (m + gap_v) - gap_v - 0.5, -gap_v + 0.2)  # room above the first row's labels
    ax.set_axis_off()
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.015, pad=0.01, label="mean activation")
    _save(fig, path, dpi)


def _floor_lines(ax: plt.Axes, baseline: float, floor: float, floor_label: str) -> None:
    ax.axhline(baseline, color="black", linestyle="--", linewidth=1, label=f"baseline (K=0) {baseline:.1f}%")
    ax.axhline(floor, color="grey", linestyle=":", linewidth=1.2, label=f"{floor_label} {floor:.1f}%")


@plt.style.context(STYLE)
def plot_accuracy_vs_k(table: pd.DataFrame, criterion: str, metrics: dict, path: Path, *, dpi: int) -> None:
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


def criterion_colours(n: int) -> list[tuple[float, ...]]:
    """n distinct colours, none of them grey (grey is the random band): tab10 without its
    grey, or tab20 without its two greys for more than 9 lines (cycled past 18)."""
    tab10 = [c for i, c in enumerate(plt.get_cmap("tab10").colors) if i != 7]
    tab20 = [c for i, c in enumerate(plt.get_cmap("tab20").colors) if i not in (14, 15)]
    colours = tab10 if n <= len(tab10) else tab20
    return [colours[i % len(colours)] for i in range(n)]


@plt.style.context(STYLE)
def plot_criteria(table: pd.DataFrame, criteria: list[str], metrics: dict, path: Path, *, dpi: int) -> None:
    """Balanced accuracy (left) and accuracy (right) against K for every criterion; random
    orders as a mean ± std band."""
    names = [c for c in criteria if c != "random"] + [
        c.removeprefix("acc_") for c in table.columns if c.endswith("_zero_weights") and c.startswith("acc_")
    ]
    palette = dict(zip(names, criterion_colours(len(names)), strict=True))
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
