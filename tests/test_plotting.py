"""Figures: grid shapes adapt to P, and the stage functions write real PNGs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from prunelab.comparison import Curve, summary_metrics, sweep_table
from prunelab.plotting import (
    criterion_colours,
    grid_shape,
    mosaic,
    plot_accuracy_vs_k,
    plot_criteria,
    plot_feature_maps,
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


def test_plots_are_written_as_png(tmp_path) -> None:
    ks = list(range(16))
    acc = np.linspace(92, 10, 16)
    curves = {
        "mean_activation": Curve(acc, acc - 30),
        "random": Curve(acc - 1, acc - 31, np.ones(16), np.ones(16)),
        "mean_activation_zero_weights": Curve(acc - 5, acc - 35),
    }
    table = sweep_table(ks, curves)
    metrics = summary_metrics(ks, curves, 16, 90.0, 2, 600)
    maps = np.random.default_rng(0).random((16, 7, 7))
    plot_feature_maps(maps, np.arange(16), tmp_path / "maps.png", title="t", cmap="viridis", dpi=40)
    plot_accuracy_vs_k(table, "mean_activation", metrics, tmp_path / "acc.png", dpi=40)
    plot_criteria(pd.DataFrame(table), ["mean_activation", "random"], metrics, tmp_path / "criteria.png", dpi=40)
    for name in ("maps.png", "acc.png", "criteria.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG_MAGIC
    assert not list(tmp_path.glob(".*.tmp"))
