"""Figures of the study. Pure functions: data in, a saved PNG out.

Curves over replicates are drawn with seaborn, whose bands here are the report's own 95 %
t intervals across seeds (`prunelab.study.t_interval`), not seaborn's bootstrap. seaborn is
imported by the functions that use it (it brings scipy, about a second).
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display needed; must precede pyplot
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from prunelab.runtime import atomic_path
from prunelab.study.intervals import bounded_interval, t_interval


def grid_shape(channels: int) -> tuple[int, int]:
    """Rows × columns, as square as P's divisors allow: 8×16 for 128, 4×8 for 32, 6×10 for 60."""
    rows = max(d for d in range(1, math.isqrt(channels) + 1) if channels % d == 0)
    return rows, channels // rows


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


def criterion_colours(n: int) -> list[tuple[float, ...]]:
    """n distinct colours, none of them grey (grey is random): tab10 without its grey, or
    tab20 without its two greys for more than 9 lines (cycled past 18)."""
    tab10 = [c for i, c in enumerate(plt.get_cmap("tab10").colors) if i != 7]
    tab20 = [c for i, c in enumerate(plt.get_cmap("tab20").colors) if i not in (14, 15)]
    colours = tab10 if n <= len(tab10) else tab20
    return [colours[i % len(colours)] for i in range(n)]


def criterion_palette(names: list[str]) -> dict[str, tuple[float, ...]]:
    """Random is grey; every other criterion gets its own non-grey colour."""
    others = [n for n in names if n != "random"]
    palette = dict(zip(others, criterion_colours(len(others)), strict=True))
    if "random" in names:
        palette["random"] = (0.45, 0.45, 0.45)
    return palette


def _errorbar(n_seeds: int, bounded: bool = True) -> object:
    """seaborn's errorbar: the same 95 % t interval across seeds as the report (none for one
    seed), kept in [0, 100] for scores (`bounded`), as the report keeps it."""
    if n_seeds < 2:
        return None
    if bounded:
        return lambda values: bounded_interval(values)[1:]
    return lambda values: t_interval(values)[1:]


def _title_seeds(n_seeds: int) -> str:
    return f"mean of {n_seeds} seeds, 95 % t interval" if n_seeds > 1 else "one seed, no interval"


# A panel: (score column, y label, baseline key in metrics.json or None, floor, floor label, title).
Panel = tuple[str, str, str | None, float, str, str]


def _criteria_panels(sweeps: pd.DataFrame, metrics: dict, panels: list[Panel], path: Path, *, dpi: int) -> None:
    """One panel per score: every criterion against K, each a line (mean over seeds) with its
    95 % band; zero-weights variants dashed; the unpruned mean and a floor as lines."""
    import seaborn as sns

    names = list(dict.fromkeys(sweeps["criterion"]))
    palette = criterion_palette(names)
    dashes = {n: (4, 2) if n.endswith("_zero_weights") else "" for n in names}
    n_seeds = metrics["n_seeds"]
    with plt.style.context(STYLE):
        fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.8), sharex=True, squeeze=False)
        for ax, (score, label, baseline, floor, floor_label, title) in zip(axes[0], panels, strict=True):
            sns.lineplot(
                data=sweeps, x="k", y=score, hue="criterion", style="criterion", hue_order=names,
                palette=palette, dashes=dashes, errorbar=_errorbar(n_seeds), linewidth=1.2, ax=ax,
                legend=ax is axes[0][-1],
            )  # fmt: skip
            if baseline in metrics:
                ax.axhline(metrics[baseline]["mean"], color="black", linestyle="--", linewidth=1,
                           label=f"unpruned (K=0, mean) {metrics[baseline]['mean']:.1f}%")  # fmt: skip
            ax.axhline(floor, color="grey", linestyle=":", linewidth=1.2, label=f"{floor_label} {floor:.1f}%")
            ax.set_xlabel("K (channels pruned)")
            ax.set_ylabel(label)
            ax.set_title(title, fontsize=10)
        axes[0][-1].legend(fontsize=7, loc="lower left", ncol=2)
        fig.suptitle(_title_seeds(n_seeds), fontsize=9)
        _save(fig, path, dpi)


def plot_criteria(sweeps: pd.DataFrame, metrics: dict, path: Path, *, dpi: int) -> None:
    """Balanced accuracy (left) and accuracy (right) against K, at the model's own decision."""
    chance, floor = metrics["balanced_floor"], metrics["majority_floor"]
    panels: list[Panel] = [
        ("bacc", "balanced accuracy (%)", "baseline_balanced_accuracy", chance, "chance",
         "Balanced accuracy: the honest score on imbalanced data"),
        ("acc", "accuracy (%)", "baseline_accuracy", floor, "majority-class floor", "Plain accuracy"),
    ]  # fmt: skip
    _criteria_panels(sweeps, metrics, panels, path, dpi=dpi)


def plot_threshold_free(sweeps: pd.DataFrame, metrics: dict, path: Path, *, dpi: int) -> None:
    """ROC AUC (left: no threshold) and balanced accuracy with the decision re-fitted off the
    test split (right) against K: what pruning loses once the drifting threshold is taken out."""
    chance = metrics["balanced_floor"]
    panels: list[Panel] = [
        ("roc_auc", "ROC AUC (%)", "baseline_roc_auc", 50.0, "chance", "ROC AUC: threshold-free"),
        ("recal_bacc", "recalibrated balanced accuracy (%)", "baseline_recal_bacc", chance, "chance",
         "Balanced accuracy, decision re-fitted on calibration data"),
    ]  # fmt: skip
    _criteria_panels(sweeps, metrics, panels, path, dpi=dpi)


def plot_finetune(table: pd.DataFrame, n_seeds: int, path: Path, *, dpi: int) -> None:
    """At each fine-tuned K: balanced accuracy as pruned, with the decision re-fitted, and after
    fine-tuning, per criterion (mean over seeds with its 95 % t interval)."""
    import seaborn as sns

    with plt.style.context(STYLE):
        if table.empty:  # finetune.ks: [] switches fine-tuning off
            fig, ax = plt.subplots(figsize=(6, 2))
            ax.text(0.5, 0.5, "fine-tuning is off (finetune.ks: [])", ha="center", transform=ax.transAxes)
            ax.set_axis_off()
            _save(fig, path, dpi)
            return
        stages = {"plain_bacc": "as pruned", "recal_bacc": "decision re-fitted", "finetuned_bacc": "fine-tuned"}
        long = table.melt(
            id_vars=["seed", "criterion", "k"], value_vars=list(stages), var_name="stage", value_name="bacc"
        )
        long["stage"] = long["stage"].map(stages)
        ks = sorted(long["k"].unique())
        fig, axes = plt.subplots(1, len(ks), figsize=(5.5 * len(ks), 4.2), sharey=True, squeeze=False)
        for ax, k in zip(axes[0], ks, strict=True):
            sns.pointplot(
                data=long[long["k"] == k], x="criterion", y="bacc", hue="stage", hue_order=list(stages.values()),
                errorbar=_errorbar(n_seeds), dodge=0.4, linestyle="none", capsize=0.15, ax=ax,
                legend=ax is axes[0][0],
            )  # fmt: skip
            ax.set_title(f"K = {k}")
            ax.set_xlabel("")
            ax.set_ylabel("balanced accuracy (%)")
        fig.suptitle(f"As pruned, decision re-fitted, fine-tuned ({_title_seeds(n_seeds)})", fontsize=10)
        _save(fig, path, dpi)


def plot_headline(
    sweeps: pd.DataFrame, headline: str, metrics: dict, path: Path, *, dpi: int, layer: str = "the last conv layer"
) -> None:
    """The lab's figure: accuracy and balanced accuracy against K for the headline criterion,
    with bands over seeds, random's balanced accuracy for reference, and the floors."""
    import seaborn as sns

    n_seeds = metrics["n_seeds"]
    chosen = sweeps[sweeps["criterion"] == headline]
    with plt.style.context(STYLE):
        fig, ax = plt.subplots(figsize=(7.5, 4.4))
        sns.lineplot(data=chosen, x="k", y="acc", errorbar=_errorbar(n_seeds), ax=ax, label="accuracy")
        sns.lineplot(data=chosen, x="k", y="bacc", errorbar=_errorbar(n_seeds), ax=ax, label="balanced accuracy")
        if "random" in set(sweeps["criterion"]) and headline != "random":
            sns.lineplot(
                data=sweeps[sweeps["criterion"] == "random"], x="k", y="bacc", errorbar=_errorbar(n_seeds),
                ax=ax, color="grey", linewidth=1, label="balanced accuracy, random order",
            )  # fmt: skip
        ax.axhline(metrics["majority_floor"], color="grey", linestyle=":", label="majority-class floor")
        ax.axhline(metrics["balanced_floor"], color="grey", linestyle="-.", linewidth=0.8, label="chance (balanced)")
        ax.set_xlabel("K (channels pruned, lowest-ranked first)")
        ax.set_ylabel("test score (%)")
        ax.set_title(f"Pruning {layer} by {headline} (P={metrics['channels']}; {_title_seeds(n_seeds)})")
        ax.legend(fontsize=8, loc="lower left")
        _save(fig, path, dpi)


def plot_vs_random(
    differences: pd.DataFrame, n_seeds: int, path: Path, *, dpi: int, what: str, margin: float, verdicts: dict[str, str]
) -> None:
    """Forest plot: per criterion, the paired difference from random (one dot per seed), its
    mean and 95 % t interval, labelled with its verdict; a vertical line at 0 (no difference)
    and the equivalence margin ±`margin` shaded."""
    import seaborn as sns

    names = list(dict.fromkeys(differences["criterion"]))
    palette = criterion_palette(names)
    with plt.style.context(STYLE):
        fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(names) + 1.4))
        ax.axvspan(-margin, margin, color="0.85", zorder=0, label=f"equivalence margin ±{margin:g}")
        ax.axvline(0, color="black", linewidth=1)
        if differences.empty:  # prune.criteria without random: nothing to compare with
            ax.text(0, 0.5, "no random criterion in prune.criteria", ha="center", transform=ax.get_xaxis_transform())
            _save(fig, path, dpi)
            return
        # A swarm, not a jittered strip: stripplot's jitter is random, and the figure must be the
        # same bytes on every run (tests/test_reproducibility.py).
        sns.swarmplot(
            data=differences, x="difference", y="criterion", hue="criterion", palette=palette, order=names,
            alpha=0.5, size=4, legend=False, ax=ax,
        )  # fmt: skip
        sns.pointplot(
            data=differences, x="difference", y="criterion", hue="criterion", palette=palette, order=names,
            errorbar=_errorbar(n_seeds, bounded=False), linestyle="none", markers="D", capsize=0.25, legend=False,
            ax=ax,
        )  # fmt: skip
        ax.set_yticks(range(len(names)), [f"{name}\n({verdicts.get(name, '—')})" for name in names])
        ax.legend(loc="upper left", fontsize="small")  # the margin band; the lower rows often reach right
        ax.set_xlabel(f"{what}: criterion minus random, same seed (points)")
        ax.set_ylabel("")
        ax.set_title(f"Difference from random ({_title_seeds(n_seeds)}; dots are seeds)")
        _save(fig, path, dpi)


def plot_efficiency(
    band: pd.DataFrame, efficiency: dict, score: str, path: Path, *, dpi: int, budgets: pd.DataFrame | None = None
) -> None:
    """The study's mean `score` against the share of FLOPs per sample the pruned model keeps, and
    the exported model marked with its measured speed-up: for a whole-network export, the budget
    study's fine-tuned recalibrated balanced accuracy per strategy and criterion (`budgets`: every
    seed's budget rows); for a single-layer export, the single-layer study's curves (`band`)."""
    import seaborn as sns

    if "budget" in efficiency and budgets is not None:
        _plot_network_efficiency(budgets, efficiency, path, dpi=dpi)
        return

    band = band[~band["criterion"].str.endswith("_zero_weights")]
    names = list(dict.fromkeys(band["criterion"]))
    exported = next(key.removeprefix("criterion_") for key in efficiency if key.startswith("criterion_"))
    at = band[(band["criterion"] == exported) & (band["k"] == efficiency["k"])].iloc[0]
    with plt.style.context(STYLE):
        fig, ax = plt.subplots(figsize=(7.5, 4.6))
        sns.lineplot(
            data=band, x="flops_kept", y="mean", hue="criterion", hue_order=names,
            palette=criterion_palette(names), linewidth=1.2, ax=ax,
        )  # fmt: skip
        ax.scatter([at["flops_kept"]], [at["mean"]], s=140, marker="*", color="black", zorder=5,
                   label=f"exported: {exported}, K={efficiency['k']}")  # fmt: skip
        ax.invert_xaxis()  # left to right: more pruning
        ax.set_xlabel("share of FLOPs per sample kept")
        ax.set_ylabel(f"{score} (%, mean over seeds)")
        ax.set_title(f"What a K costs: {score} against the FLOPs the pruned model keeps")
        ax.legend(fontsize=7, loc="lower left", ncol=2)
        _save(fig, path, dpi)


# Up to this many channel groups, one panel per group in a row (the lab's CNNs: 3); more get
# heat maps, which stay readable for ResNet-56's 30 or MobileNetV2's 25 groups and beyond.
SENSITIVITY_PANELS_MAX = 4
# Cells carry their number up to this many groups; past it the rows are too thin to read.
SENSITIVITY_ANNOTATE_MAX = 40


def score_change(table: pd.DataFrame, score: str) -> pd.DataFrame:
    """`table` with `change`: `score` minus the same seed's unpruned model's for that layer."""
    unpruned = table[table["fraction"] == 0].groupby(["seed", "layer"])[score].first()
    return table.assign(
        change=table[score].to_numpy() - unpruned.loc[list(zip(table["seed"], table["layer"], strict=True))].to_numpy()
    )


def _group_channels(rows: pd.DataFrame) -> int:
    """A group's channel count from its rows: k / fraction at the largest share (0 without one)."""
    return int(rows["k"].max() / rows["fraction"].max() + 0.5) if rows["fraction"].max() > 0 else 0


def plot_sensitivity(table: pd.DataFrame, n_seeds: int, path: Path, *, dpi: int, score: str = "roc_auc") -> None:
    """Li et al.'s per-layer sensitivity: `score` lost when a share of one channel group's
    channels is removed (the rest intact), paired within each seed (the score minus that
    seed's unpruned model's), so the spread shown is pruning's, not the models'.

    Up to SENSITIVITY_PANELS_MAX groups, one panel per group (`_sensitivity_panels`); more
    groups, heat maps of group × share with the most sensitive groups' curves beside them
    (`_sensitivity_heatmaps`)."""
    table = score_change(table, score)
    if table["layer"].nunique() <= SENSITIVITY_PANELS_MAX:
        _sensitivity_panels(table, n_seeds, path, dpi=dpi, score=score)
    else:
        _sensitivity_heatmaps(table, n_seeds, path, dpi=dpi, score=score)


def _sensitivity_panels(table: pd.DataFrame, n_seeds: int, path: Path, *, dpi: int, score: str) -> None:
    """One panel per conv layer, `score` lost against the share of that layer's channels
    removed, a line per criterion (mean over seeds) with its 95 % interval."""
    import seaborn as sns

    layers = list(dict.fromkeys(table["layer"]))
    names = list(dict.fromkeys(table["criterion"]))
    palette = criterion_palette(names)
    with plt.style.context(STYLE):
        fig, axes = plt.subplots(1, len(layers), figsize=(4.6 * len(layers), 4.2), sharey=True, squeeze=False)
        for ax, layer in zip(axes[0], layers, strict=True):
            rows = table[table["layer"] == layer]
            sns.lineplot(
                data=rows, x="fraction", y="change", hue="criterion", hue_order=names, palette=palette,
                errorbar=_errorbar(n_seeds, bounded=False), marker="o", markersize=4, linewidth=1.2, ax=ax,
                legend=ax is axes[0][-1],
            )  # fmt: skip
            ax.axhline(0, color="black", linestyle="--", linewidth=1, label="unpruned")
            channels = _group_channels(rows)
            ax.set_title(f"{layer} ({channels} channels), pruned alone", fontsize=10)
            ax.set_xlabel("share of the layer's channels removed")
            ax.set_ylabel(f"{SCORE_LABELS.get(score, score)} minus unpruned (points)")
        axes[0][-1].legend(fontsize=7, loc="lower left")
        fig.suptitle(f"Per-layer sensitivity; {_title_seeds(n_seeds)}", fontsize=9)
        _save(fig, path, dpi)


def sensitivity_grids(table: pd.DataFrame) -> tuple[str, pd.DataFrame, pd.DataFrame | None]:
    """The heat maps' numbers from a table with `change` (`score_change`): the first
    non-random criterion (random if it is the only one); its loss (unpruned minus pruned,
    points), group (rows, forward order) × share removed (columns, 0 left out), mean over
    seeds; and its score minus random's, paired within seed, mean over seeds (None without
    random, or when random is the criterion)."""
    layers = list(dict.fromkeys(table["layer"]))
    names = list(dict.fromkeys(table["criterion"]))
    chosen = next((name for name in names if name != "random"), names[0])
    pruned = table[table["fraction"] > 0]
    own = pruned[pruned["criterion"] == chosen]
    loss = (-own.groupby(["layer", "fraction"])["change"].mean()).unstack("fraction").reindex(layers)
    if chosen == "random" or "random" not in names:
        return chosen, loss, None
    keys = ["seed", "layer", "fraction"]
    paired = own[[*keys, "change"]].merge(
        pruned[pruned["criterion"] == "random"][[*keys, "change"]], on=keys, suffixes=("", "_random")
    )
    paired["difference"] = paired["change"] - paired["change_random"]
    versus = paired.groupby(["layer", "fraction"])["difference"].mean().unstack("fraction").reindex(layers)
    return chosen, loss, versus


def _sensitivity_heatmaps(table: pd.DataFrame, n_seeds: int, path: Path, *, dpi: int, score: str) -> None:
    """Many channel groups: a heat map of the first non-random criterion's mean loss per group
    (rows, forward order) and share removed (columns), one of that criterion minus random
    beside it, and to the right the curves of the 4 groups it hurts most (largest mean loss
    over the shares), every criterion with its 95 % interval, as the few-group figure draws
    each group. Red is bad on both maps; cells carry their numbers up to
    SENSITIVITY_ANNOTATE_MAX groups. The height grows with the groups up to 16 inches."""
    import seaborn as sns

    label = SCORE_LABELS.get(score, score)
    chosen, loss, versus = sensitivity_grids(table)
    layers = list(loss.index)
    channels = {layer: _group_channels(table[table["layer"] == layer]) for layer in layers}
    rows = [f"{layer} ({channels[layer]})" for layer in layers]
    shares = [f"{100 * f:g}%" for f in loss.columns]
    annotate = len(layers) <= SENSITIVITY_ANNOTATE_MAX
    height = min(16.0, max(5.5, 0.3 * len(layers) + 1.8))
    maps = [(loss, "RdBu_r", f"{label} lost by {chosen}\n(unpruned minus pruned, points)")]
    if versus is not None:
        maps.append((versus, "RdBu", f"{chosen} minus random\n({label}, same seed, points; red: worse)"))
    worst = list(loss.mean(axis=1).sort_values(ascending=False, kind="stable").index[:4])
    names = list(dict.fromkeys(table["criterion"]))
    palette = criterion_palette(names)
    with plt.style.context(STYLE):
        fig = plt.figure(figsize=(4.6 * len(maps) + 1.6 + 7.2, height), layout="constrained")
        left, right = fig.subfigures(1, 2, width_ratios=[4.6 * len(maps) + 1.6, 7.2])
        axes = left.subplots(1, len(maps), squeeze=False)[0]  # same rows; sharey would drop the labels
        for i, (ax, (grid, cmap, title)) in enumerate(zip(axes, maps, strict=True)):
            sns.heatmap(
                grid, ax=ax, cmap=cmap, center=0, annot=annotate, fmt=".1f", annot_kws={"fontsize": 7},
                linewidths=0.4, linecolor="white", xticklabels=shares, yticklabels=rows if i == 0 else False,
                cbar_kws={"shrink": min(1.0, 6 / height), "pad": 0.02, "label": "points"},
            )  # fmt: skip
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("share of the group's channels removed")
            ax.set_ylabel("channel group (channels), forward order" if i == 0 else "")
            ax.tick_params(axis="both", labelsize=7 if len(layers) <= SENSITIVITY_ANNOTATE_MAX else 6, length=0)
            ax.tick_params(axis="x", labelrotation=0)
        # The panels keep the few-group figure's size; the rest of a tall column stays empty.
        panel = min(height, 7.0) / 2
        spec = right.add_gridspec(3, 2, height_ratios=[panel, panel, max(height - 2 * panel, 1e-3)])
        small = [right.add_subplot(spec[r, c]) for r in range(2) for c in range(2)][: len(worst)]
        for ax in small[1:]:
            ax.sharey(small[0])
        for ax, layer in zip(small, worst, strict=True):
            sns.lineplot(
                data=table[table["layer"] == layer], x="fraction", y="change", hue="criterion", hue_order=names,
                palette=palette, errorbar=_errorbar(n_seeds, bounded=False), marker="o", markersize=3,
                linewidth=1.1, ax=ax, legend=ax is small[0],
            )  # fmt: skip
            ax.axhline(0, color="black", linestyle="--", linewidth=1)
            ax.set_title(f"{layer} ({channels[layer]} channels)", fontsize=8)
            ax.set_xlabel("share removed", fontsize=7)
            ax.set_ylabel(f"{label} minus unpruned" if ax in small[::2] else "", fontsize=7)
            ax.tick_params(labelsize=7)
        small[0].legend(fontsize=6, loc="lower left")
        right.suptitle(f"The {len(worst)} groups {chosen} hurts most, every criterion", fontsize=9)
        fig.suptitle(
            f"Per-group sensitivity: {len(layers)} channel groups, each pruned alone; {_title_seeds(n_seeds)}",
            fontsize=10,
        )
        _save(fig, path, dpi)


SCORE_LABELS = {"roc_auc": "ROC AUC", "recal_bacc": "recalibrated balanced accuracy", "bacc": "balanced accuracy"}


def plot_budget(points: pd.DataFrame, n_seeds: int, path: Path, *, dpi: int) -> None:
    """Whole-network pruning: the fine-tuned recalibrated balanced accuracy minus the unpruned
    model's (fine-tuned alike) against FLOPs speed-up (left) and parameter compression (right),
    mean over seeds with 95 % intervals, colour by strategy and marker by criterion. `points` is
    `prunelab.study.network.speedups`. (The shipped model's measured speed-up is on efficiency.png.)"""
    strategies = list(dict.fromkeys(points["strategy"]))
    criteria = list(dict.fromkeys(points["criterion"]))
    colours = dict(zip(strategies, criterion_colours(len(strategies)), strict=True))
    markers = dict(zip(criteria, "osD^v<>p*", strict=False))
    interval = _errorbar(n_seeds)
    with plt.style.context(STYLE):
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
        for ax, x, label in ((axes[0], "flops_speedup", "FLOPs speed-up (×, unpruned / pruned)"),
                             (axes[1], "compression", "parameter compression (×)")):  # fmt: skip
            for (strategy, criterion), rows in points.groupby(["strategy", "criterion"], sort=False):
                means = rows.groupby("budget", sort=True).agg(x=(x, "mean"), y=("vs_unpruned", "mean"))
                low, high = [], []
                for _, group in rows.groupby("budget", sort=True):
                    bounds = interval(group["vs_unpruned"]) if interval else (np.nan, np.nan)
                    low.append(bounds[0])
                    high.append(bounds[1])
                errors = np.abs(np.vstack([means["y"] - np.array(low), np.array(high) - means["y"]]))
                ax.errorbar(
                    means["x"], means["y"], yerr=None if interval is None else errors, color=colours[strategy],
                    marker=markers[criterion], linestyle="-" if criterion != "random" else ":", linewidth=1,
                    markersize=5, capsize=2, label=f"{strategy}, {criterion}",
                )  # fmt: skip
            ax.axhline(0, color="black", linestyle="--", linewidth=1, label="unpruned, fine-tuned alike")
            ax.axhline(-1, color="grey", linestyle=":", linewidth=1, label="1 point below")
            ax.set_xlabel(label)
            ax.set_xscale("log", base=2)
        axes[0].set_ylabel("fine-tuned recal. bacc minus unpruned (points)")
        axes[1].legend(fontsize=7, loc="lower left", ncol=2)
        fig.suptitle(f"Every conv layer pruned to a FLOPs budget, then fine-tuned; {_title_seeds(n_seeds)}", fontsize=9)
        _save(fig, path, dpi)


def _plot_network_efficiency(budgets: pd.DataFrame, efficiency: dict, path: Path, *, dpi: int) -> None:
    pruned = budgets[budgets["strategy"] != "unpruned"]
    means = pruned.groupby(["strategy", "criterion", "budget"], sort=False)[["flops_kept", "finetuned_recal_bacc"]]
    means = means.mean().reset_index()
    unpruned = budgets[budgets["strategy"] == "unpruned"]["finetuned_recal_bacc"].mean()
    strategy = next(key.removeprefix("strategy_") for key in efficiency if key.startswith("strategy_"))
    criterion = next(key.removeprefix("criterion_") for key in efficiency if key.startswith("criterion_"))
    ratio = efficiency["ratio"]
    strategies = list(dict.fromkeys(means["strategy"]))
    colours = dict(zip(strategies, criterion_colours(len(strategies)), strict=True))
    with plt.style.context(STYLE):
        fig, ax = plt.subplots(figsize=(7.5, 4.6))
        for (name, crit), rows in means.groupby(["strategy", "criterion"], sort=False):
            style = ":" if crit == "random" else "-"
            ax.plot(
                rows["flops_kept"], rows["finetuned_recal_bacc"], marker="o", markersize=4, linewidth=1.1,
                color=colours[name], linestyle=style, label=f"{name}, {crit}",
            )  # fmt: skip
        ax.axhline(
            unpruned, color="black", linestyle="--", linewidth=1, label=f"unpruned, fine-tuned alike {unpruned:.1f}%"
        )
        ax.scatter([1 / ratio["flops"]], [efficiency["study_finetuned_recal_bacc"]], s=160, marker="*", color="black",
                   zorder=5, label=f"exported: {strategy}, {criterion} at {efficiency['budget']:g} of the FLOPs; "
                   f"measured {ratio['speedup_batch256']:.2f}× faster at batch 256")  # fmt: skip
        ax.invert_xaxis()  # left to right: more pruning
        ax.set_xlabel("share of FLOPs per sample kept (every conv layer pruned)")
        ax.set_ylabel("fine-tuned recalibrated balanced accuracy (%, mean over seeds)")
        ax.set_title("What the whole-network budget costs, and the model shipped")
        ax.legend(fontsize=7, loc="lower left", ncol=2)
        _save(fig, path, dpi)
