"""Stage plot: the study's figures, from the replicates' tables. No torch.

Writes metrics/plots/criteria.png (every criterion against K, bands over seeds),
threshold.png (ROC AUC and recalibrated balanced accuracy against K), vs_random.png (paired
differences from random), finetune.png (as pruned, re-fitted, fine-tuned), accuracy_vs_k.png
(the headline criterion), efficiency.png (score against FLOPs kept, the exported model marked)
and feature_maps.png (the mean feature maps of the first seed's model).
"""

from __future__ import annotations

import json

import pandas as pd

from prunelab.params import load_params
from prunelab.paths import EFFICIENCY, PLOTS, STUDY, STUDY_METRICS, ranking_path, stats_path
from prunelab.pruning.activations import load_stats
from prunelab.pruning.ranking import ranked_order
from prunelab.runtime import stage_main
from prunelab.study.aggregate import PAIRED, SCORE_OF, paired_differences
from prunelab.study.figures import (
    plot_criteria,
    plot_efficiency,
    plot_feature_maps,
    plot_finetune,
    plot_headline,
    plot_threshold_free,
    plot_vs_random,
)
from prunelab.study.replicates import load_summaries, load_sweeps


def main() -> None:
    params = load_params()
    seeds, prune, style = params.seeds, params.prune, params.plot
    headline = prune.criteria[0]
    # Every input is read (and checked) before the first figure is written: a bad input must
    # not leave some figures new and others old.
    metrics = json.loads(STUDY_METRICS.read_text())
    sweeps = load_sweeps(seeds)
    key = "bacc_over_k"
    differences = pd.DataFrame(
        [
            {"criterion": name, "seed": seed, "difference": value}
            for name, values in paired_differences(load_summaries(seeds), key).items()
            for seed, value in zip(seeds, values, strict=True)
        ],
        columns=["criterion", "seed", "difference"],
    )
    tuned = pd.read_csv(STUDY / "finetune.csv")
    recal_band = pd.read_csv(STUDY / "recal_bacc.csv")
    efficiency = json.loads(EFFICIENCY.read_text())
    seed = seeds[0]
    stats, split = load_stats(stats_path(seed), metrics["channels"])
    order = ranked_order(ranking_path(seed), headline, metrics["channels"])

    plot_criteria(sweeps, metrics, PLOTS / "criteria.png", dpi=style.dpi)
    plot_headline(sweeps, headline, metrics, PLOTS / "accuracy_vs_k.png", dpi=style.dpi)
    verdicts = {
        name: entry[f"{key}_vs_random"]["verdict"]
        for name, entry in metrics["criteria"].items()
        if f"{key}_vs_random" in entry
    }
    plot_vs_random(
        differences, len(seeds), PLOTS / "vs_random.png", dpi=style.dpi, what=PAIRED[key],
        margin=metrics["margins"][SCORE_OF[key]], verdicts=verdicts,
    )  # fmt: skip
    plot_threshold_free(sweeps, metrics, PLOTS / "threshold.png", dpi=style.dpi)
    plot_finetune(tuned, len(seeds), PLOTS / "finetune.png", dpi=style.dpi)
    plot_efficiency(recal_band, efficiency, "recalibrated balanced accuracy", PLOTS / "efficiency.png", dpi=style.dpi)
    p, m, n = stats.feature_maps.shape
    plot_feature_maps(
        stats.feature_maps,
        order,
        PLOTS / "feature_maps.png",
        title=f"Mean output feature maps of the last conv layer before pruning, seed {seed} "
        f"({p} maps of {m}×{n}, {split} split; r = rank under {headline})",
        cmap=style.cmap,
        dpi=style.dpi,
    )


if __name__ == "__main__":
    stage_main(main)
