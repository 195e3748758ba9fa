"""Stage prepare_data: source → image pool → train / val / test splits.

Writes data/prepared/{train,val,test}.pt, data/prepared/info.json and metrics/data.json.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stages.data import PREPARED_DIR, RAW_DIR, SOURCES, TASKS, dataset_info, ignored_params, save_prepared
from stages.params import load_params
from stages.runtime import log, seed_everything, stage_main, write_json


def split_summary(labels: np.ndarray, task: str) -> dict:
    summary: dict = {"count": len(labels)}
    if task == "pairs":
        summary["same_fraction"] = float(labels.mean()) if len(labels) else 0.0
    else:
        summary["classes"] = len(np.unique(labels))
    return summary


def main() -> None:
    params = load_params()
    data = params["data"]
    seed_everything(params.seed)
    for key in ignored_params(params):
        log(f"note: data.task={data['task']} ignores {key}")
    pool = SOURCES[data["source"]].load(RAW_DIR)
    rng = np.random.default_rng(params.seed)
    splits = TASKS[data["task"]](pool, params, rng)
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
