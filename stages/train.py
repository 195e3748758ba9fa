"""Stage train (one instance per seed): fit the model on the train split; log loss and test
scores per epoch.

Traces the model's channel groups first (`prunelab.models.groups`) and checks the params that
need them (prune.layer, the K values, bn_gamma) before any training. Writes
data/seeds/<seed>/model.pt (a state_dict), metrics/seeds/<seed>/train_curve.csv and
metrics/seeds/<seed>/groups.json (the groups, for the stages that read no model).
"""

from __future__ import annotations

import pandas as pd

from prunelab.data.prepared import load_info, load_split
from prunelab.models.groups import example_input, find_groups
from prunelab.models.nets import build_model
from prunelab.models.records import groups_document
from prunelab.models.training import EpochLog, train_model
from prunelab.params import load_params, replicate_seed
from prunelab.paths import groups_path, model_path, prepared_dir, train_curve_path
from prunelab.runtime import log, resolve_device, save_torch, seed_everything, stage_main, write_json, write_table


def main() -> None:
    params = load_params()
    seed = replicate_seed(params)
    train_params = params.train
    seed_everything(seed)
    folder = prepared_dir(seed)
    info = load_info(folder)
    device = resolve_device(train_params.device)
    model = build_model(params.model.arch, info.input)
    groups = find_groups(model, example_input(info.input))  # tracing draws no random numbers
    params.check_groups(groups)

    def report(entry: EpochLog) -> None:
        log(
            f"seed {seed} epoch {entry.epoch}: loss {entry.train_loss:.4f}, "
            f"test acc {entry.test_acc:.2f}%, bacc {entry.test_bacc:.2f}%"
        )

    history = train_model(
        model,
        load_split("train", folder, info),
        load_split("test", folder, info),
        n_classes=info.input.n_classes,
        epochs=train_params.epochs,
        batch_size=train_params.batch_size,
        lr=train_params.lr,
        class_weight=train_params.class_weight,
        device=device,
        seed=seed,
        on_epoch=report,
        label=f"train seed {seed}",
    )
    save_torch(model_path(seed), {k: v.cpu() for k, v in model.state_dict().items()})
    curve = pd.DataFrame([vars(entry) for entry in history])
    write_table(train_curve_path(seed), curve, "%.4f")
    write_json(groups_path(seed), groups_document(groups))


if __name__ == "__main__":
    stage_main(main)
