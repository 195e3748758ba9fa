"""Stage prepare_data (one instance per seed): source → image pool → train / val / test splits.

Writes data/seeds/<seed>/prepared/{train,val,test}.npz and info.json, and
metrics/seeds/<seed>/data.json. No torch: the splits are NumPy arrays.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from prunelab.data.prepared import save_prepared
from prunelab.params import load_params, replicate_seed
from prunelab.paths import data_summary_path, prepared_dir
from prunelab.prepare.sources import load_pool
from prunelab.prepare.tasks import TASKS, check_not_empty, dataset_info, split_summary
from prunelab.runtime import log, stage_main, write_json


def main() -> None:
    params = load_params()
    seed = replicate_seed(params)
    data = params.data
    data.check_files()
    pool = load_pool(data.source, Path(data.path), None if data.image_size == "none" else data.image_size)
    splits = TASKS[data.task](pool, data, np.random.default_rng(seed))
    check_not_empty(splits, data)
    for key in params.ignored_params():  # after the checks: a refusal stays the one line on stderr
        log(f"note: this study ignores {key}")
    if params.model.weights != "none" and pool.official_test is None:
        log(
            "note: model.weights with a pool split by data.test_fraction: the test split may hold images the "
            "weights were trained on; give data.path train/ and test/ folders to score on held-out images"
        )
    save_prepared(prepared_dir(seed), dataset_info(data, pool, splits["train"]), splits)
    summary = {
        "pool_images": len(pool.labels),
        **{name: split_summary(split.labels, data.task) for name, split in splits.items()},
    }
    write_json(data_summary_path(seed), summary)
    sizes = ", ".join(f"{n}={len(s.labels)}" for n, s in splits.items())
    log(f"seed {seed}: prepared {data.task} from {data.source}: {sizes}")


if __name__ == "__main__":
    stage_main(main)
