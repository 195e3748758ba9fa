"""Stage prepare_data: source → image pool → train / val / test splits.

Writes data/prepared/{train,val,test}.pt, data/prepared/info.json and metrics/data.json.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stages.data import PREPARED_DIR, RAW_DIR, SOURCES, TASKS, dataset_info, ignored_params, save_prepared
from stages.errors import UserError
from stages.params import load_params
from stages.runtime import log, seed_everything, stage_main, write_json


def split_summary(labels: np.ndarray, task: str) -> dict:
    summary: dict = {"count": len(labels)}
    if task == "pairs":
        summary["same_fraction"] = float(labels.mean()) if len(labels) else 0.0
    else:
        summary["classes"] = len(np.unique(labels))
    return summary


def check_not_empty(splits: dict, data: dict) -> None:
    """Every split a later stage reads must hold samples (train crashed on an empty test split).
    Checked before anything is written; val may be empty only when data.val_fraction is 0."""
    for name, split in splits.items():
        if len(split.labels) == 0 and (name != "val" or data["val_fraction"] > 0):
            size = f"data.n_pairs={data['n_pairs']}" if data["task"] == "pairs" else f"data.source={data['source']}"
            raise UserError(
                f"params.yaml: {size} with data.test_fraction={data['test_fraction']} and "
                f"data.val_fraction={data['val_fraction']} leaves the {name} split empty; "
                "allowed: values that give every split at least one sample"
            )


def main() -> None:
    params = load_params()
    data = params["data"]
    seed_everything(params.seed)
    for key in ignored_params(params):
        log(f"note: data.task={data['task']} ignores {key}")
    pool = SOURCES[data["source"]].load(RAW_DIR)
    rng = np.random.default_rng(params.seed)
    splits = TASKS[data["task"]](pool, params, rng)
    check_not_empty(splits, data)
    info = dataset_info(params, pool)
    save_prepared(PREPARED_DIR, info, splits)
    summary = {
        "pool_images": len(pool.labels),
        **{name: split_summary(split.labels, data["task"]) for name, split in splits.items()},
    }
    write_json(Path("metrics/data.json"), summary)
    log(
        f"prepared {data['task']} from {data['source']}: "
        + ", ".join(f"{n}={len(s.labels)}" for n, s in splits.items())
    )


if __name__ == "__main__":
    stage_main(main)
