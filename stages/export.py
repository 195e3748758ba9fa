"""Stage export: the pruned model to take home, and what it saves.

Picks the K and criterion to ship from the study (export.k / export.criterion, or auto: the
largest K whose mean recalibrated balanced accuracy over the seeds stays within 1 point of
the unpruned model's), builds the first seed's physically smaller model with its re-fitted
decision folded into the last bias, and writes data/export/model.pt2 (torch.export, with
BatchNorm folded into the convs, channels-last maps),
data/export/model.pt (state_dict + rebuild facts) and metrics/efficiency.json (parameters,
FLOPs, file sizes, CPU latency at batch 1 and 256, scores; unpruned against exported).
"""

from __future__ import annotations

import copy
import platform

import torch

from prunelab.checks.implied import implied
from prunelab.checks.tables import check_band
from prunelab.data.prepared import load_info, load_split
from prunelab.deploy.efficiency import compare_models
from prunelab.deploy.export import (
    choose_export,
    fold_recalibrated_decision,
    save_program,
    save_rebuildable,
    shipped_model,
)
from prunelab.deploy.formats import deployed
from prunelab.models.nets import load_model
from prunelab.params import load_params
from prunelab.paths import EFFICIENCY, EXPORTED_PROGRAM, EXPORTED_STATE, STUDY, model_path, prepared_dir, ranking_path
from prunelab.pruning.ranking import ranked_order
from prunelab.runtime import log, read_table, seed_everything, stage_main, write_json


def main() -> None:
    params = load_params()
    seed, export, recal = params.seeds[0], params.export, params.recalibrate
    seed_everything(seed)
    expected = implied(params)
    band = read_table(
        STUDY / "recal_bacc.csv", "study band table", "aggregate", lambda p, t: check_band(p, t, expected)
    )
    criterion, k = choose_export(band, export.criterion, export.k)
    info = load_info(prepared_dir(seed))
    model = load_model(model_path(seed), params.model.arch, info.input)
    layer = model.layer(params.prune.layer)
    removed = ranked_order(ranking_path(seed), criterion, layer.channels, expected)[:k]
    images, labels = load_split(recal.split, prepared_dir(seed), info)
    calibration = images[: recal.max_samples], labels[: recal.max_samples]
    test = load_split("test", prepared_dir(seed), info)
    n_classes = info.input.n_classes
    shipped = shipped_model(model, {layer.name: removed.tolist()}, calibration, n_classes)
    # The unpruned model gets its re-fitted decision too: the comparison is like for like.
    unpruned = fold_recalibrated_decision(copy.deepcopy(model), *calibration, n_classes)
    example = test[0][:2]
    # The program ships in the deployed format (BatchNorm folded, channels-last maps); model.pt keeps the
    # trained layout, which the project's classes rebuild.
    shipped_bytes = save_program(deployed(shipped), example, EXPORTED_PROGRAM)
    facts = {
        "arch": params.model.arch,
        "input": {"channels": info.input.channels, "size": info.input.size, "n_classes": n_classes},
        "removed": {layer.name: [int(c) for c in removed]},
        "criterion": criterion,
        "k": k,
        "seed": seed,
        "mean": list(info.mean),
        "std": list(info.std),
    }
    save_rebuildable(shipped, EXPORTED_STATE, facts)

    models = {"unpruned": unpruned, "exported": shipped}
    measured = compare_models(models, test, info.input, example, known_bytes={"exported": shipped_bytes})
    ratio = measured["ratio"]
    chosen = band[(band["criterion"] == criterion) & (band["k"].isin([0, k]))].set_index("k")["mean"]
    # DVC metrics hold numbers only: the criterion and the CPU are named in a key set to 1.
    write_json(
        EFFICIENCY,
        {
            "k": k,
            "channels": layer.channels,
            "seed": seed,
            f"criterion_{criterion}": 1,
            "study_recal_bacc_at_k": float(chosen[k]),
            "study_recal_bacc_unpruned": float(chosen[0]),
            **measured,
            "threads": torch.get_num_threads(),
            f"cpu_{platform.machine()}": 1,
        },
    )
    log(
        f"exported {criterion} K={k} of seed {seed}: {ratio['params']:.2f}× fewer parameters, "
        f"{ratio['flops']:.2f}× fewer FLOPs, {ratio['speedup_batch256']:.2f}× faster at batch 256"
    )


if __name__ == "__main__":
    stage_main(main)
