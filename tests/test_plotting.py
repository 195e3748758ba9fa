"""Figures: grid shapes adapt to P, and the stage functions write real PNGs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from prunelab.study.figures import (
    criterion_colours,
    criterion_palette,
    grid_shape,
    mosaic,
    plot_criteria,
    plot_feature_maps,
    plot_finetune,
    plot_headline,
    plot_threshold_free,
    plot_vs_random,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(("channels", "shape"), [(128, (8, 16)), (32, (4, 8)), (60, (6, 10)), (7, (1, 7))])
def test_grid_shape(channels: int, shape: tuple[int, int]) -> None:
    assert grid_shape(channels) == shape


def test_mosaic_puts_map_c_at_row_c_div_cols_and_masks_only_the_gaps() -> None:
    maps = np.random.default_rng(0).random((6, 3, 4))
    canvas = mosaic(maps, rows=2, cols=3, gap=(2, 1))
    assert canvas.shape == (2 * 3 + 2, 3 * 4 + 2 * 1)
    for channel in range(6):
        r, k = divmod(channel, 3)
        tile = canvas[r * 5 : r * 5 + 3, k * 5 : k * 5 + 4]
        assert not tile.mask.any()
        np.testing.assert_array_equal(tile.data, maps[channel])
    assert canvas.mask.sum() == canvas.size - maps.size


@pytest.mark.parametrize("n", [1, 9, 10, 18])
def test_criterion_colours_are_distinct_and_never_grey(n: int) -> None:
    colours = criterion_colours(n)
    assert len(colours) == n and len(set(colours)) == n
    assert all(max(c) - min(c) > 0.05 for c in colours)  # grey: equal red, green and blue


def test_random_is_grey_and_no_criterion_shares_its_colour() -> None:
    palette = criterion_palette(["mean_activation", "random", "reverse", "l1_norm"])
    grey = palette["random"]
    assert grey[0] == grey[1] == grey[2]
    assert len(set(palette.values())) == 4


def replicate_sweeps(n_seeds: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    parts = []
    for seed in range(n_seeds):
        for name in ("mean_activation", "random", "mean_activation_zero_weights"):
            acc = np.linspace(92, 10, 16) + rng.normal(0, 1, 16)
            scores = {"acc": acc, "bacc": acc - 30, "roc_auc": acc - 5, "recal_bacc": acc - 20}
            parts.append(pd.DataFrame({"k": range(16), "criterion": name, **scores, "seed": seed}))
    return pd.concat(parts, ignore_index=True)


@pytest.mark.parametrize("n_seeds", [1, 3])
def test_plots_are_written_as_png(tmp_path, n_seeds: int) -> None:
    sweeps = replicate_sweeps(n_seeds)
    band = {"mean": 80.0, "ci_low": 78.0, "ci_high": 82.0}
    metrics = {"n_seeds": n_seeds, "channels": 16, "majority_floor": 90.0, "balanced_floor": 50.0,
               "baseline_accuracy": band, "baseline_balanced_accuracy": band}  # fmt: skip
    differences = pd.DataFrame(
        {"criterion": ["mean_activation"] * n_seeds, "seed": range(n_seeds), "difference": np.arange(n_seeds) - 1.0}
    )
    maps = np.random.default_rng(0).random((16, 7, 7))
    plot_feature_maps(maps, np.arange(16), tmp_path / "maps.png", title="t", cmap="viridis", dpi=40)
    plot_headline(sweeps, "mean_activation", metrics, tmp_path / "acc.png", dpi=40)
    plot_criteria(sweeps, metrics, tmp_path / "criteria.png", dpi=40)
    verdicts = {"mean_activation": "worse", "l1_norm": "inconclusive"}
    plot_vs_random(
        differences, n_seeds, tmp_path / "vs.png", dpi=40, what="mean balanced accuracy over K", margin=2.0,
        verdicts=verdicts,
    )  # fmt: skip
    plot_vs_random(
        differences.iloc[:0], n_seeds, tmp_path / "none.png", dpi=40, what="nothing to compare", margin=2.0,
        verdicts={},
    )  # fmt: skip
    plot_threshold_free(sweeps, metrics, tmp_path / "threshold.png", dpi=40)
    tuned = pd.DataFrame(
        [
            {
                "seed": s,
                "criterion": c,
                "k": k,
                "plain_bacc": 60.0 + s,
                "recal_bacc": 70.0 + s,
                "finetuned_bacc": 75.0 - s,
            }
            for s in range(n_seeds)
            for c in ("mean_activation", "random")
            for k in (8, 12)
        ]
    )
    plot_finetune(tuned, n_seeds, tmp_path / "finetune.png", dpi=40)
    plot_finetune(tuned.iloc[:0], n_seeds, tmp_path / "finetune_off.png", dpi=40)
    for name in (
        "maps.png",
        "acc.png",
        "criteria.png",
        "vs.png",
        "none.png",
        "threshold.png",
        "finetune.png",
        "finetune_off.png",
    ):
        assert (tmp_path / name).read_bytes()[:8] == PNG_MAGIC
    assert not list(tmp_path.glob(".*.tmp"))


def test_bands_are_the_reports_t_intervals() -> None:
    """The criteria figure's band at each K is the t interval of the report, not a bootstrap."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    from prunelab.study.figures import _errorbar
    from prunelab.study.intervals import t_interval

    sweeps = replicate_sweeps(4)
    chosen = sweeps[sweeps["criterion"] == "random"]
    fig, ax = plt.subplots()
    sns.lineplot(data=chosen, x="k", y="bacc", errorbar=_errorbar(4), ax=ax)
    band = ax.collections[0].get_paths()[0].vertices
    plt.close(fig)
    at_k3 = chosen[chosen["k"] == 3]["bacc"]
    _, low, high = t_interval(at_k3)
    ys = band[np.isclose(band[:, 0], 3), 1]
    assert np.allclose(sorted(ys)[:1], [low]) and np.allclose(sorted(ys)[-1:], [high])
