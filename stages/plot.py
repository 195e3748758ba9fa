"""Stage plot: the study's figures, from the replicates' tables. No torch.

Writes metrics/plots/criteria.png (every criterion against K, bands over seeds),
threshold.png (ROC AUC and recalibrated balanced accuracy against K), vs_random.png (paired
differences from random), finetune.png (as pruned, re-fitted, fine-tuned), accuracy_vs_k.png
(the headline criterion), efficiency.png (score against FLOPs kept, the exported model marked)
feature_maps.png (the mean feature maps of the first seed's model), sensitivity.png (each conv
layer pruned alone, a panel per layer) and budget.png (the whole network to FLOPs budgets,
against FLOPs speed-up and parameter compression).
"""

from __future__ import annotations

import pandas as pd

from prunelab.checks.efficiency import check_efficiency
from prunelab.checks.implied import implied
from prunelab.checks.study_metrics import check_study_metrics
from prunelab.checks.tables import check_band, check_study_finetune
from prunelab.params import load_params
from prunelab.paths import EFFICIENCY, PLOTS, STUDY, STUDY_METRICS, ranking_path, stats_path
from prunelab.pruning.activations import load_stats
from prunelab.pruning.ranking import ranked_order
from prunelab.runtime import read_json, read_table, stage_main
from prunelab.study.aggregate import PAIRED, SCORE_OF, paired_differences
from prunelab.study.figures import (
    plot_budget,
    plot_criteria,
    plot_efficiency,
    plot_feature_maps,
    plot_finetune,
    plot_headline,
    plot_sensitivity,
    plot_threshold_free,
    plot_vs_random,
)
from prunelab.study.network import speedups
from prunelab.study.replicates import load_budgets, load_sensitivity, load_summaries, load_sweeps


def main() -> None:
    params = load_params()
    seeds, prune, style = params.seeds, params.prune, params.plot
    headline = prune.criteria[0]
    # Every input is read (and checked) before the first figure is written: a bad input must
    # not leave some figures new and others old.
    expected = implied(params)
    metrics = read_json(STUDY_METRICS, "study metrics", "aggregate")
    check_study_metrics(STUDY_METRICS, metrics, expected)
    sweeps = load_sweeps(seeds, params)
    sensitivity = load_sensitivity(seeds, params)
    budgets = load_budgets(seeds, params)
    key = "bacc_over_k"
    differences = pd.DataFrame(
        [
            {"criterion": name, "seed": seed, "difference": value}
            for name, values in paired_differences(load_summaries(seeds, params, sweeps), key).items()
            for seed, value in zip(seeds, values, strict=True)
        ],
        columns=["criterion", "seed", "difference"],
    )
    tuned = read_table(
        STUDY / "finetune.csv",
        "study fine-tuning table",
        "aggregate",
        lambda p, t: check_study_finetune(p, t, expected),
    )
    recal_band = read_table(
        STUDY / "recal_bacc.csv", "study band table", "aggregate", lambda p, t: check_band(p, t, expected)
    )
    efficiency = read_json(EFFICIENCY, "efficiency measurements", "export")
    check_efficiency(EFFICIENCY, efficiency, expected, band=recal_band, metrics=metrics)
    seed = seeds[0]
    stats, split = load_stats(stats_path(seed), metrics["channels"])
    order = ranked_order(ranking_path(seed), headline, metrics["channels"], expected)

    plot_criteria(sweeps, metrics, PLOTS / "criteria.png", dpi=style.dpi)
    plot_headline(sweeps, headline, metrics, PLOTS / "accuracy_vs_k.png", dpi=style.dpi, layer=expected.layer_title)
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
    plot_sensitivity(sensitivity, len(seeds), PLOTS / "sensitivity.png", dpi=style.dpi)
    plot_budget(speedups(budgets), len(seeds), PLOTS / "budget.png", dpi=style.dpi)
    plot_finetune(tuned, len(seeds), PLOTS / "finetune.png", dpi=style.dpi)
    plot_efficiency(
        recal_band, efficiency, "recalibrated balanced accuracy", PLOTS / "efficiency.png", dpi=style.dpi,
        budgets=budgets,
    )  # fmt: skip
    p, m, n = stats.feature_maps.shape
    plot_feature_maps(
        stats.feature_maps,
        order,
        PLOTS / "feature_maps.png",
        title=f"Mean output feature maps of {expected.layer_title} before pruning, seed {seed} "
        f"({p} maps of {m}×{n}, {split} split; r = rank under {headline})",
        cmap=style.cmap,
        dpi=style.dpi,
    )


if __name__ == "__main__":
    stage_main(main)
