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
    plot_sensitivity,
    plot_threshold_free,
    plot_vs_random,
    score_change,
    sensitivity_grids,
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


SHARES = (0.125, 0.25, 0.5, 0.75, 0.875)


def sensitivity_table(n_groups: int, n_seeds: int = 2, criteria=("l1_norm", "taylor", "random")) -> pd.DataFrame:
    """layer_sensitivity's rows for `n_groups` channel groups named as a ResNet's (conv1 then
    layerS.B.conv1; the lab's conv1, conv2, … up to 4), every seed: a group's loss grows with
    the share removed, by a group's own fragility, and random loses more than the rest."""
    if n_groups <= 4:
        groups = [(f"conv{i + 1}", 16 * 2**i) for i in range(n_groups)]
    else:
        per_stage = -(-(n_groups - 1) // 3)
        stages = [(f"layer{s}.{b}.conv1", 16 * 2 ** (s - 1)) for s in (1, 2, 3) for b in range(per_stage)]
        groups = [("conv1", 16), *stages[: n_groups - 1]]
    rng = np.random.default_rng(0)
    fragility = 25 * rng.random(len(groups)) ** 2
    rows = []
    for seed in range(n_seeds):
        for (layer, channels), fragile in zip(groups, fragility, strict=True):
            for c, name in enumerate(criteria):
                for share in (0.0, *SHARES):
                    k = 0 if share == 0 else min(channels - 1, max(1, round(share * channels)))
                    noise = rng.normal(0, 0.5) if share > 0 else 0.0
                    lost = fragile * share**2 * (1.3 if name == "random" else 1 - 0.1 * c) + noise
                    score = 90.0 + seed - lost
                    rows.append({"seed": seed, "layer": layer, "criterion": name, "fraction": share, "k": k,
                                 "acc": score, "bacc": score - 10, "roc_auc": score + 3,
                                 "recal_acc": score - 1, "recal_bacc": score - 8})  # fmt: skip
    return pd.DataFrame(rows)


@pytest.fixture
def drawn(monkeypatch) -> list:
    """The figures the plot functions would save, kept open instead (closed at the end)."""
    import matplotlib.pyplot as plt

    from prunelab.study import figures

    kept: list = []
    monkeypatch.setattr(figures, "_save", lambda fig, path, dpi: kept.append(fig))
    yield kept
    for fig in kept:
        plt.close(fig)


def test_few_groups_keep_one_panel_per_layer_in_a_row(drawn) -> None:
    """The lab's 3-layer figure is unchanged: a row of 3 panels, 4.6 × 4.2 inches each, one
    line per criterion, titled by layer and channels."""
    plot_sensitivity(sensitivity_table(3), 2, None, dpi=40)
    (fig,) = drawn
    axes = fig.get_axes()
    assert [ax.get_title() for ax in axes] == [f"conv{i + 1} ({16 * 2**i} channels), pruned alone" for i in range(3)]
    assert tuple(fig.get_size_inches()) == pytest.approx((4.6 * 3, 4.2))
    assert fig._suptitle.get_text() == "Per-layer sensitivity; mean of 2 seeds, 95 % t interval"
    assert [t.get_text() for t in axes[-1].get_legend().get_texts()] == ["l1_norm", "taylor", "random", "unpruned"]


def test_sensitivity_grids_are_seed_paired_means_in_forward_order() -> None:
    table = sensitivity_table(12)
    chosen, loss, versus = sensitivity_grids(score_change(table, "roc_auc"))
    layers = list(dict.fromkeys(table["layer"]))
    assert chosen == "l1_norm" and list(loss.index) == layers and list(loss.columns) == list(SHARES)
    at = table[table["layer"] == "layer2.1.conv1"]
    unpruned = at[at["fraction"] == 0].groupby("seed")["roc_auc"].first()

    def score(name: str) -> pd.Series:
        return at[(at["criterion"] == name) & (at["fraction"] == 0.5)].set_index("seed")["roc_auc"]

    assert loss.loc["layer2.1.conv1", 0.5] == pytest.approx((unpruned - score("l1_norm")).mean())
    assert versus.loc["layer2.1.conv1", 0.5] == pytest.approx((score("l1_norm") - score("random")).mean())
    assert sensitivity_grids(score_change(table[table["criterion"] != "random"], "roc_auc"))[2] is None
    only_random = sensitivity_grids(score_change(table[table["criterion"] == "random"], "roc_auc"))
    assert only_random[0] == "random" and only_random[2] is None


@pytest.mark.parametrize("n_groups", [12, 30])
def test_many_groups_draw_bounded_heat_maps(tmp_path, n_groups: int) -> None:
    """ResNet-20's 12 and ResNet-56's 30 groups: one PNG of bounded size at the pipeline's dpi."""
    from PIL import Image

    path = tmp_path / "sensitivity.png"
    plot_sensitivity(sensitivity_table(n_groups), 2, path, dpi=110)
    assert path.read_bytes()[:8] == PNG_MAGIC
    width, height = Image.open(path).size
    assert width <= 3000 and height <= 2500
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize(("n_groups", "annotated"), [(5, True), (40, True), (41, False), (60, False)])
def test_heat_maps_label_groups_and_annotate_up_to_40(drawn, n_groups: int, annotated: bool) -> None:
    table = sensitivity_table(n_groups)
    plot_sensitivity(table, 2, None, dpi=40)
    (fig,) = drawn
    titled = [ax for ax in fig.get_axes() if ax.get_title()]  # not the colour bars
    loss_map, versus_map, *small = titled
    channels = table[table["fraction"] == 0.5].drop_duplicates("layer").set_index("layer")["k"] * 2
    assert [t.get_text() for t in loss_map.get_yticklabels()] == [f"{g} ({c})" for g, c in channels.items()]
    assert [t.get_text() for t in loss_map.get_xticklabels()] == ["12.5%", "25%", "50%", "75%", "87.5%"]
    assert "l1_norm" in loss_map.get_title() and "minus random" in versus_map.get_title()
    assert (len(loss_map.texts) == n_groups * len(SHARES)) is annotated and (len(loss_map.texts) == 0) is not annotated
    assert fig._suptitle.get_text().startswith(f"Per-group sensitivity: {n_groups} channel groups")
    assert "mean of 2 seeds" in fig._suptitle.get_text()
    assert fig.get_size_inches()[1] <= 16
    assert len(small) == 4  # the 4 groups l1_norm hurts most, largest mean loss first
    _, loss, _ = sensitivity_grids(score_change(table, "roc_auc"))
    worst = loss.mean(axis=1).sort_values(ascending=False).index[:4]
    assert [ax.get_title().split(" (")[0] for ax in small] == list(worst)


def test_one_seed_and_no_random_still_draw(drawn) -> None:
    plot_sensitivity(sensitivity_table(8, n_seeds=1, criteria=("l1_norm", "taylor")), 1, None, dpi=40)
    (fig,) = drawn
    assert "one seed" in fig._suptitle.get_text()
    assert sum(ax.get_title().startswith("ROC AUC lost") for ax in fig.get_axes()) == 1
    assert not any("minus random" in ax.get_title() for ax in fig.get_axes())
