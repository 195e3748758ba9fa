"""Stage finetune (one instance per seed): does fine-tuning erase the differences between criteria?

For every K of finetune.ks and every criterion of finetune.criteria that prune.criteria ranks
(`headline` is its first; random: its first order),
removes the channels, fine-tunes the smaller model on the train split for finetune.epochs
passes and scores it on the test split. Writes metrics/seeds/<seed>/finetune.csv (criterion,
point, k, acc, bacc, roc_auc). With finetune.ks: [] it writes the header only and imports no torch.
"""

from __future__ import annotations

import pandas as pd

from prunelab.checks.implied import implied
from prunelab.params import load_params, replicate_seed
from prunelab.paths import finetune_path, ranking_path
from prunelab.pruning.names import finetune_criteria, named_k
from prunelab.pruning.ranking import ranked_order
from prunelab.runtime import log, stage_main, write_table

COLUMNS = ["criterion", "point", "k", "acc", "bacc", "roc_auc"]


def main() -> None:
    params = load_params()
    seed = replicate_seed(params)
    finetune, train = params.finetune, params.train
    rows = []
    if finetune.ks and finetune.criteria:
        # Imported here: with fine-tuning off the stage is a no-op and needs no torch.
        from prunelab.models.groups import group_named
        from prunelab.models.replicate import open_replicate
        from prunelab.pruning.finetune import finetune_pruned
        from prunelab.runtime import resolve_device
        from prunelab.workers import map_jobs

        replicate = open_replicate(params, seed)
        model, groups, info = replicate.model, replicate.groups, replicate.info
        chosen = finetune_criteria(finetune.criteria, params.prune.criteria)
        for name in finetune.criteria:
            if name != "headline" and name not in chosen:
                log(f"note: finetune.criteria names {name}, which prune.criteria does not rank: not fine-tuned")
        expected = implied(params, groups)
        layer = group_named(groups, params.prune.layer)
        orders = {c: ranked_order(ranking_path(seed), c, layer.channels, expected) for c in chosen}
        splits = {name: replicate.split(name) for name in ("train", "test")}
        device = resolve_device(train.device)
        jobs = [(criterion, spec, named_k(spec, layer.channels)) for criterion in orders for spec in finetune.ks]

        def scored(job: tuple[str, int | str, int]) -> dict[str, float]:
            criterion, _, k = job
            _, scores = finetune_pruned(
                model, groups, {layer.name: orders[criterion][:k]}, splits["train"], splits["test"],
                n_classes=info.input.n_classes,
                epochs=finetune.epochs, lr=finetune.lr, batch_size=train.batch_size,
                class_weight=train.class_weight, device=device, seed=seed,
                label=f"finetune seed {seed} {criterion} K={k}",
            )  # fmt: skip
            return scores

        # The fine-tunes are independent: one per core, each at one torch thread (prunelab.workers).
        results = map_jobs(scored, jobs, device, desc=f"finetune seed {seed}")
        for (criterion, spec, k), scores in zip(jobs, results, strict=True):
            point = spec if isinstance(spec, str) else f"k{spec}"
            rows.append({"criterion": criterion, "point": point, "k": k, **scores})
            log(f"seed {seed}: {criterion} K={k} fine-tuned: bacc {scores['bacc']:.2f}%, "
                f"ROC AUC {scores['roc_auc']:.2f}%")  # fmt: skip
    write_table(finetune_path(seed), pd.DataFrame(rows, columns=COLUMNS), "%.4f")


if __name__ == "__main__":
    stage_main(main)
