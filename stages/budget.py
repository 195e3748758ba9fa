"""Stage budget (one instance per seed): every conv layer pruned at once to a FLOPs (or latency) budget.

For every budget of budget.flops (share of FLOPs per sample kept; with budget.target: latency, share of
the unpruned model's latency as metrics/cost/latency/table.csv predicts it), strategy of budget.strategies
and criterion of budget.criteria, the strategy allocates removals across the layers
(`prunelab.network.budget`) from this seed's layer rankings and sensitivity curves (the
sensitivity stage), every group keeping a multiple of budget.round_to channels or all of them
(the `channels` column: kept counts per group, forward order); the channels are removed for real,
and the smaller model is scored as pruned, with its decision re-fitted, and after fine-tuning
(budget.finetune_epochs at finetune.lr). The unpruned model is fine-tuned by the same recipe (row
`unpruned`), so that the extra training is never counted as pruning's gain or loss. Writes
metrics/seeds/<seed>/budget.csv.
"""

from __future__ import annotations

import pandas as pd

from prunelab.checks.implied import implied
from prunelab.errors import UserError
from prunelab.models.cost import parameter_count
from prunelab.models.groups import remove_channels
from prunelab.models.replicate import open_replicate
from prunelab.network.budget import allocate, flops_model, recipe, sensitivity_plans
from prunelab.network.latency import TARGET_WORDS, budget_cost, read_latency_model
from prunelab.network.sensitivity import load_curves, load_rankings
from prunelab.params import load_params, replicate_seed
from prunelab.paths import budget_path, layer_rankings_path, sensitivity_path
from prunelab.pruning.finetune import finetune_pruned
from prunelab.runtime import log, resolve_device, stage_main, write_table
from prunelab.scoring.evaluate import every_score
from prunelab.workers import map_jobs


def main() -> None:
    params = load_params()
    seed = replicate_seed(params)
    replicate = open_replicate(params, seed)
    model, example, groups = replicate.model, replicate.example, replicate.groups
    budget = params.budget
    n_classes = replicate.info.input.n_classes
    device = resolve_device(params.train.device)
    channels = {layer.name: layer.channels for layer in groups}
    rankings = load_rankings(layer_rankings_path(seed), channels, params.sensitivity.criteria)
    curves = load_curves(sensitivity_path(seed), implied(params, groups))
    flops = flops_model(model, groups, example)
    latency = read_latency_model(flops, budget.round_to) if budget.target == "latency" else None
    cost = budget_cost(budget.target, flops, latency)
    total_params = parameter_count(model)
    train, test = replicate.split("train"), replicate.split("test")
    recal = params.recalibrate
    images, labels = replicate.split(recal.split)
    calibration = images[: recal.max_samples], labels[: recal.max_samples]

    def kept_channels(removed: dict[str, list[int]]) -> dict[str, int]:
        return {name: p - len(removed.get(name, [])) for name, p in channels.items()}

    def scored(removed: dict[str, list[int]], label: str) -> dict[str, object]:
        """The model with `removed` taken out: its costs and scores, as pruned and fine-tuned."""
        kept = kept_channels(removed)
        tuned, _ = finetune_pruned(
            model, groups, removed, train, test, n_classes=n_classes, device=device, seed=seed, label=label,
            score=False, **recipe(params),
        )  # fmt: skip
        pruned = remove_channels(model.cpu(), groups, removed, example).to(device)
        row: dict[str, object] = {
            "channels": "/".join(str(kept[name]) for name in channels),
            "flops_kept": flops.kept(kept),
            "params_kept": parameter_count(pruned) / total_params,
        }
        row |= every_score(pruned, test, calibration, n_classes)
        row |= {f"finetuned_{k}": v for k, v in every_score(tuned, test, calibration, n_classes).items()}
        return row

    # Every allocation first (cheap), so that a budget a strategy cannot reach is refused before any training.
    plans = {criterion: sensitivity_plans(rankings, curves, criterion) for criterion in budget.criteria}
    jobs = []
    for share in budget.flops:
        for strategy in budget.strategies:
            for criterion in budget.criteria:
                removed = allocate(strategy, plans[criterion], cost, share, budget.round_to)
                reached = cost.kept(kept_channels(removed))
                if reached > share + 1e-9:
                    # The rounding is named when it is what stops the strategy (unrounded, it reaches the budget).
                    rounded = budget.round_to > 1 and (
                        cost.kept(kept_channels(allocate(strategy, plans[criterion], cost, share))) <= share + 1e-9
                    )
                    sensitivity = strategy == "sensitivity" and not rounded
                    raise UserError(
                        f"params.yaml: budget.flops has {share:g}, which the {strategy} strategy cannot reach"
                        + f" (budget.target={budget.target})" * (budget.target != "flops")
                        + " (it removes at most the largest share of sensitivity.fractions)" * sensitivity
                        + f" (every group keeps at least budget.round_to={budget.round_to} channels)" * rounded
                        + f": at most it keeps {reached:.3f} of the {TARGET_WORDS[budget.target]}"
                        + "; allowed: a larger budget"
                        + ", or larger shares in sensitivity.fractions" * sensitivity
                        + ", or a smaller budget.round_to" * rounded
                    )
                jobs.append((share, strategy, criterion, removed))
    jobs.insert(0, (1.0, "unpruned", "none", {}))  # the dearest fine-tune first: jobs are handed out in order

    def row(job: tuple[float, str, str, dict[str, list[int]]]) -> dict[str, object]:
        share, strategy, criterion, removed = job
        return {"budget": share, "strategy": strategy, "criterion": criterion} | scored(
            removed, f"budget seed {seed} {strategy} {criterion}"
        )

    # The fine-tunes are independent: one per core, each at one torch thread (prunelab.workers).
    table = pd.DataFrame(map_jobs(row, jobs, device, desc=f"budget seed {seed}"))
    write_table(budget_path(seed), table, "%.6f")
    base = table.iloc[0]
    for share in budget.flops:
        best = table[table["budget"] == share].sort_values("finetuned_recal_bacc").iloc[-1]
        log(
            f"seed {seed}: budget {share:g} of FLOPs: best fine-tuned recal. bacc {best['finetuned_recal_bacc']:.1f} "
            f"({best['strategy']}, {best['criterion']}; unpruned fine-tuned {base['finetuned_recal_bacc']:.1f})"
        )


if __name__ == "__main__":
    stage_main(main)
