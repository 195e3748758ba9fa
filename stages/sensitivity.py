"""Stage sensitivity (one instance per seed): how much each conv layer can lose on its own.

For every conv layer of the model, every criterion of sensitivity.criteria ranks that layer's
channels from its statistics over the ranking split (activations.split), and each share of
sensitivity.fractions is removed, the rest of the network intact, and scored like the sweep
(acc, bacc, roc_auc, and recalibrated on recalibrate's split). Writes
metrics/seeds/<seed>/sensitivity.csv (layer, criterion, fraction, k, scores; random: the mean
over sensitivity.random_orders orders) and data/seeds/<seed>/layer_rankings.npz (each
criterion's first order and scores per layer, which the budget stage allocates with).
"""

from __future__ import annotations

import pandas as pd

from prunelab.models.graph import trace
from prunelab.models.replicate import open_replicate
from prunelab.network.sensitivity import layer_sensitivity, rank_layer, save_rankings
from prunelab.params import load_params, replicate_seed
from prunelab.paths import layer_rankings_path, sensitivity_path
from prunelab.pruning.collect import collect_stats
from prunelab.pruning.sweep import block_outputs
from prunelab.pruning.views import GroupView
from prunelab.runtime import log, resolve_device, stage_main, write_table
from prunelab.scoring.evaluate import SplitOutputs


def main() -> None:
    params = load_params()
    seed = replicate_seed(params)
    replicate = open_replicate(params, seed)
    model, groups = replicate.model, replicate.groups
    sens = params.sensitivity
    device = resolve_device(params.train.device)
    batch = params.activations.batch_size
    ranking_images, ranking_labels = replicate.split(params.activations.split)
    test_images, test_labels = replicate.split("test")
    recal = params.recalibrate
    cal_images, cal_labels = replicate.split(recal.split)
    cal_images, cal_labels = cal_images[: recal.max_samples], cal_labels[: recal.max_samples]
    graph = trace(model)
    tables, rankings = [], {}
    for layer in groups:
        view = GroupView.of(model, layer, graph)
        stats = collect_stats(
            view, ranking_images, ranking_labels, batch, device, label=f"sensitivity seed {seed} {layer.name}"
        )
        ranked = rank_layer(
            model, stats, sens.criteria, headline=params.prune.criteria[0], seed=seed,
            random_orders=sens.random_orders, group=layer, fast=view.fast,
        )  # fmt: skip
        test = SplitOutputs(block_outputs(view, test_images, batch, device), test_labels.to(device))
        calibration = SplitOutputs(block_outputs(view, cal_images, batch, device), cal_labels.to(device))
        table = layer_sensitivity(view, ranked, test, calibration, sens.fractions, replicate.info.input.n_classes)
        tables.append(table)
        rankings[layer.name] = ranked
        half = table[(table["fraction"] == sens.fractions[len(sens.fractions) // 2])].set_index("criterion")
        log(
            f"seed {seed}: {layer.name} ({layer.channels} channels, {view.path} sweep) at {half['k'].iloc[0]} "
            "removed: ROC AUC " + ", ".join(f"{name} {value:.1f}" for name, value in half["roc_auc"].items())
        )
    write_table(sensitivity_path(seed), pd.concat(tables, ignore_index=True), "%.6f")
    save_rankings(layer_rankings_path(seed), rankings)


if __name__ == "__main__":
    stage_main(main)
