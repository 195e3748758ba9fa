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
from prunelab.paths import finetune_path, model_path, prepared_dir, ranking_path
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
        from prunelab.data.prepared import load_info, load_split
        from prunelab.models.groups import example_input, find_groups, group_named
        from prunelab.models.nets import load_model
        from prunelab.pruning.finetune import finetune_pruned
        from prunelab.runtime import resolve_device, seed_everything

        seed_everything(seed)
        info = load_info(prepared_dir(seed))
        model = load_model(model_path(seed), params.model.arch, info.input)
        chosen = finetune_criteria(finetune.criteria, params.prune.criteria)
        for name in finetune.criteria:
            if name != "headline" and name not in chosen:
                log(f"note: finetune.criteria names {name}, which prune.criteria does not rank: not fine-tuned")
        groups = find_groups(model, example_input(info.input))
        params.check_groups(groups)
        expected = implied(params, groups)
        layer = group_named(groups, params.prune.layer)
        orders = {c: ranked_order(ranking_path(seed), c, layer.channels, expected) for c in chosen}
        splits = {name: load_split(name, prepared_dir(seed), info) for name in ("train", "test")}
        device = resolve_device(train.device)
        for criterion, order in orders.items():
            for spec in finetune.ks:
                k = named_k(spec, layer.channels)
                _, scores = finetune_pruned(
                    model, groups, {layer.name: order[:k]}, splits["train"], splits["test"],
                    n_classes=info.input.n_classes,
                    epochs=finetune.epochs, lr=finetune.lr, batch_size=train.batch_size,
                    class_weight=train.class_weight, device=device, seed=seed,
                    label=f"finetune seed {seed} {criterion} K={k}",
                )  # fmt: skip
                point = spec if isinstance(spec, str) else f"k{spec}"
                rows.append({"criterion": criterion, "point": point, "k": k, **scores})
                log(f"seed {seed}: {criterion} K={k} fine-tuned: bacc {scores['bacc']:.2f}%, "
                    f"ROC AUC {scores['roc_auc']:.2f}%")  # fmt: skip
    write_table(finetune_path(seed), pd.DataFrame(rows, columns=COLUMNS), "%.4f")


if __name__ == "__main__":
    stage_main(main)
