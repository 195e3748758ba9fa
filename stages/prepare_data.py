"""Stage prepare_data: source → image pool → train / val / test splits.

Writes data/prepared/{train,val,test}.pt, data/prepared/info.json and metrics/data.json.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from prunelab.pairing import TASKS, check_not_empty, split_summary
from prunelab.params import load_params
from prunelab.prepared import PREPARED_DIR, dataset_info, save_prepared
from prunelab.runtime import log, stage_main, write_json
from prunelab.sources import RAW_DIR, load_pool


def main() -> None:
    params = load_params()
    data = params["data"]
    for key in params.ignored_params():
        log(f"note: data.task={data['task']} ignores {key}")
    pool = load_pool(data["source"], RAW_DIR)
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
