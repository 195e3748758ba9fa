"""Stage train: fit the model on the train split; log loss and test scores per epoch.

Writes data/model.pt (a state_dict) and metrics/train_curve.csv.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from prunelab.models import build_model
from prunelab.params import load_params
from prunelab.prepared import load_info, load_split
from prunelab.runtime import atomic_path, log, resolve_device, save_torch, seed_everything, stage_main
from prunelab.training import EpochLog, train_model

MODEL_PATH = Path("data/model.pt")
CURVE_PATH = Path("metrics/train_curve.csv")


def main() -> None:
    params = load_params()
    train_params = params["train"]
    seed_everything(params.seed)
    info = load_info()
    device = resolve_device(train_params["device"])
    model = build_model(params["model"]["arch"], info.input)

    def report(entry: EpochLog) -> None:
        log(
            f"epoch {entry.epoch}: loss {entry.train_loss:.4f}, "
            f"test acc {entry.test_acc:.2f}%, bacc {entry.test_bacc:.2f}%"
        )

    history = train_model(
        model,
        load_split("train", info=info),
        load_split("test", info=info),
        n_classes=info.input.n_classes,
        epochs=train_params["epochs"],
        batch_size=train_params["batch_size"],
        lr=train_params["lr"],
        class_weight=train_params["class_weight"],
        device=device,
        seed=params.seed,
        on_epoch=report,
    )
    save_torch(MODEL_PATH, {k: v.cpu() for k, v in model.state_dict().items()})
    curve = pd.DataFrame([vars(entry) for entry in history])
    with atomic_path(CURVE_PATH) as tmp:
        curve.to_csv(tmp, index=False, float_format="%.4f")


if __name__ == "__main__":
    stage_main(main)
