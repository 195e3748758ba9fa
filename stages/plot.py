"""Stage plot: the mean feature maps, accuracy against K, and the criteria comparison.

Writes metrics/plots/feature_maps.png, accuracy_vs_k.png and criteria.png.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from prunelab.criteria import RankingContext, removal_orders
from prunelab.models import load_model
from prunelab.params import load_params
from prunelab.plotting import plot_accuracy_vs_k, plot_criteria, plot_feature_maps
from prunelab.prepared import load_info
from prunelab.runtime import stage_main
from prunelab.stats import load_stats

PLOTS = Path("metrics/plots")


def main() -> None:
    params = load_params()
    prune, style = params["prune"], params["plot"]
    info = load_info()
    model = load_model("data/model.pt", params["model"]["arch"], info.input)
    stats, split = load_stats(Path("data/activations.npz"), model.channels)
    table = pd.read_csv("metrics/sweep.csv")
    metrics = json.loads(Path("metrics/metrics.json").read_text())
    headline = prune["criteria"][0]
    order = removal_orders(headline, RankingContext(stats, model, headline, params.seed, prune["random_orders"]))[0]
    p, m, n = stats.feature_maps.shape
    plot_feature_maps(
        stats.feature_maps,
        order,
        PLOTS / "feature_maps.png",
        title=f"Mean output feature maps of the last conv layer before pruning ({p} maps of {m}×{n}, {split} split)",
        cmap=style["cmap"],
        dpi=style["dpi"],
    )
    plot_accuracy_vs_k(table, headline, metrics, PLOTS / "accuracy_vs_k.png", dpi=style["dpi"])
    plot_criteria(table, prune["criteria"], metrics, PLOTS / "criteria.png", dpi=style["dpi"])


if __name__ == "__main__":
    stage_main(main)
