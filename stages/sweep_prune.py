"""Stage sweep_prune (one instance per seed): prune the K lowest-ranked channels of the
study's layer (prune.layer) for every K, for every criterion.

Scores every K at the default decision (acc, bacc), threshold-free (roc_auc) and with the
decision re-fitted on the calibration split (recal_acc, recal_bacc). Writes
metrics/seeds/<seed>/sweep.csv (k, criterion, those scores, and the shares of parameters and
FLOPs per sample the pruned model keeps), summary.json (the
replicate's scalars) and ranking.csv (each criterion's removal order).
"""

from __future__ import annotations

import numpy as np

from prunelab.data.prepared import load_split
from prunelab.models.cost import cost_models, kept_fractions
from prunelab.models.groups import group_named
from prunelab.models.replicate import open_replicate
from prunelab.params import load_params, replicate_seed
from prunelab.paths import ranking_path, seed_summary_path, stats_path, sweep_path
from prunelab.pruning.activations import load_stats
from prunelab.pruning.criteria import RankingContext, removal_orders
from prunelab.pruning.ranking import ranking_table
from prunelab.pruning.sweep import block_outputs
from prunelab.pruning.views import GroupView
from prunelab.runtime import log, resolve_device, stage_main, write_json, write_table
from prunelab.scoring.curves import Curve, curve_from_scores, long_table, summary_metrics
from prunelab.scoring.evaluate import SplitOutputs, evaluate_orders
from prunelab.scoring.milestones import resolve_ks
from prunelab.scoring.scores import majority_floor


def main() -> None:
    params = load_params()
    seed = replicate_seed(params)
    prune = params.prune
    replicate = open_replicate(params, seed)
    folder, info, model, example, groups = (
        replicate.folder,
        replicate.info,
        replicate.model,
        replicate.example,
        replicate.groups,
    )
    layer = group_named(groups, prune.layer)
    flops, params_cost = cost_models(model, groups, example)  # on the CPU, before the model moves to its device
    view = GroupView.of(model, layer)
    stats, split = load_stats(stats_path(seed), layer.channels)
    device = resolve_device(params.train.device)
    batch = params.activations.batch_size

    def split_outputs(name: str, limit: int | None = None) -> SplitOutputs:
        """A split's layer outputs, computed once for every order and K."""
        images, labels = load_split(name, folder, info)
        outputs = block_outputs(view, images[:limit], batch, device)
        return SplitOutputs(outputs, labels[:limit].to(device))

    test = split_outputs("test")
    recal = params.recalibrate
    calibration = split_outputs(recal.split, recal.max_samples)
    model = model.to(device)
    ks = resolve_ks(prune.ks, prune.k_step, layer.channels)
    headline = prune.criteria[0]
    ctx = RankingContext(stats, model, headline, seed, prune.random_orders, layer, view.fast)
    orders = {name: removal_orders(name, ctx) for name in prune.criteria}
    n_classes = info.input.n_classes

    def run(chosen: dict[str, np.ndarray], mode: str) -> dict[str, Curve]:
        """Score every criterion's orders in one call, so block contributions are shared."""
        stacked = np.concatenate(list(chosen.values()))
        scores = evaluate_orders(view, test, calibration, stacked, ks, n_classes, mode)
        bounds = np.cumsum([0, *(len(o) for o in chosen.values())])
        return {
            name: curve_from_scores({score: values[a:b] for score, values in scores.items()})
            for name, a, b in zip(chosen, bounds[:-1], bounds[1:], strict=True)
        }

    curves = run(orders, prune.mode)
    if prune.compare_zero_weights and prune.mode == "remove":
        # The lab's own method on the headline ranking, to show what weight zeroing does.
        curves[f"{headline}_zero_weights"] = run({headline: orders[headline]}, "zero_weights")[headline]
    labels = test.labels.cpu()
    summary = summary_metrics(ks, curves, layer.channels, majority_floor(labels), n_classes, len(labels))
    summary["ranking_split_is_test"] = int(split == "test")
    summary["n_calibration"] = len(calibration.labels)
    table = long_table(ks, curves)
    # The same for every criterion: cost is per channel.
    for column, values in kept_fractions(flops, params_cost, layer.name, ks).items():
        table[column] = table["k"].map(dict(zip(ks, values, strict=True)))
    write_table(sweep_path(seed), table, "%.6f")
    write_table(ranking_path(seed), ranking_table(orders))
    write_json(seed_summary_path(seed), summary)
    first = curves[headline]
    log(
        f"seed {seed}: {headline}: baseline acc {first.acc[0]:.2f}% (bacc {first.bacc[0]:.2f}%, "
        f"ROC AUC {first.extra['roc_auc'][0]:.2f}%), K={ks[-1]}: acc {first.acc[-1]:.2f}% "
        f"(bacc {first.bacc[-1]:.2f}%); ranked on {split}"
    )


if __name__ == "__main__":
    stage_main(main)
