"""Stage train (one instance per seed): fit the model on the train split; log loss and test
scores per epoch. With `model.weights`, load the user's trained state_dict instead (checked to
fit the model) and log its train loss and test scores as epoch 0.

Traces the model's channel groups first (`prunelab.models.groups`) and checks the params that
need them (prune.layer, the K values, bn_gamma) before any training. Writes
data/seeds/<seed>/model.pt (a state_dict), metrics/seeds/<seed>/train_curve.csv and
metrics/seeds/<seed>/groups.json (the groups, for the stages that read no model).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from torch import nn

from prunelab.data.prepared import load_info, load_split
from prunelab.data.records import DatasetInfo
from prunelab.models.groups import example_input, find_groups
from prunelab.models.nets import build_model
from prunelab.models.records import ChannelGroup, groups_document
from prunelab.models.training import EpochLog, predict, train_model
from prunelab.models.user import load_weights
from prunelab.params import load_params, replicate_seed
from prunelab.paths import groups_path, model_path, prepared_dir, train_curve_path
from prunelab.runtime import log, resolve_device, save_torch, seed_everything, stage_main, write_json, write_table
from prunelab.scoring.scores import scores_from_predictions


def main() -> None:
    params = load_params()
    seed = replicate_seed(params)
    train_params = params.train
    seed_everything(seed)
    params.model.check_files()
    folder = prepared_dir(seed)
    info = load_info(folder)
    device = resolve_device(train_params.device)
    model = build_model(params.model.arch, info.input)
    if params.model.weights != "none":
        load_weights(model, Path(params.model.weights), info.input.n_classes)
    groups = find_groups(model, example_input(info.input))  # tracing draws no random numbers
    params.check_groups(groups)
    if params.model.weights != "none":
        history = [loaded_scores(model, folder, info, device)]
        log(
            f"seed {seed}: loaded {params.model.weights}: train loss {history[0].train_loss:.4f}, "
            f"test acc {history[0].test_acc:.2f}%, bacc {history[0].test_bacc:.2f}% (not trained)"
        )
        finish(seed, model, history, groups)
        return

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
    finish(seed, model, history, groups)


def loaded_scores(model: nn.Module, folder: Path, info: DatasetInfo, device: torch.device) -> EpochLog:
    """The loaded weights as epoch 0: mean cross-entropy on the train split, scores on the test split."""
    model.to(device).eval()
    images, labels = load_split("train", folder, info)
    with torch.no_grad():
        losses = [
            nn.functional.cross_entropy(
                model(images[i : i + 500].to(device)), labels[i : i + 500].to(device), reduction="sum"
            )
            for i in range(0, len(labels), 500)
        ]
    test_images, test_labels = load_split("test", folder, info)
    acc, bacc = scores_from_predictions(test_labels, predict(model, test_images), info.input.n_classes)
    return EpochLog(0, float(sum(losses)) / max(1, len(labels)), acc, bacc)


def finish(seed: int, model: nn.Module, history: list[EpochLog], groups: list[ChannelGroup]) -> None:
    save_torch(model_path(seed), {k: v.cpu() for k, v in model.state_dict().items()})
    curve = pd.DataFrame([vars(entry) for entry in history])
    write_table(train_curve_path(seed), curve, "%.4f")
    write_json(groups_path(seed), groups_document(groups))


if __name__ == "__main__":
    stage_main(main)
