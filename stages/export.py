"""Stage export: the pruned model to take home, and what it saves.

By default (export.budget: auto) ships the whole network pruned to the smallest FLOPs budget
whose mean fine-tuned recalibrated balanced accuracy stays within 1 point of the unpruned model
fine-tuned alike (metrics.json's `budget`; export.strategy / export.criterion may fix those), the
first seed's model rebuilt and fine-tuned by the budget study's recipe. With export.budget: none,
ships the single-layer study's model instead (export.k / export.criterion, or auto: the largest
K whose mean recalibrated balanced accuracy over the seeds stays within 1 point of the unpruned
model's). Either way the first seed's physically smaller model gets its re-fitted
decision folded into the last bias, and the stage writes data/export/model.pt2 (torch.export, with
BatchNorm folded into the convs, channels-last maps),
data/export/model.pt (state_dict + rebuild facts) and metrics/efficiency.json (parameters,
FLOPs, file sizes, CPU latency at batch 1 and 256, scores; unpruned against exported).
"""

from __future__ import annotations

import copy
import platform

import torch

from prunelab.checks.documents import check_study_metrics
from prunelab.checks.implied import Implied, implied
from prunelab.checks.tables import check_band
from prunelab.data.prepared import load_info, load_split
from prunelab.data.spec import InputSpec
from prunelab.deploy.efficiency import compare_models
from prunelab.deploy.export import (
    choose_export,
    fold_recalibrated_decision,
    save_program,
    save_rebuildable,
    shipped_model,
)
from prunelab.deploy.formats import deployed
from prunelab.errors import UserError
from prunelab.models.groups import example_input, find_groups, group_named
from prunelab.models.nets import load_model
from prunelab.models.records import ChannelGroup, metric_key
from prunelab.network.budget import allocate, flops_model, recipe, sensitivity_plans
from prunelab.network.choice import Choice, budget_key, choose_budget
from prunelab.network.sensitivity import load_curves, load_rankings
from prunelab.params import Params, load_params
from prunelab.paths import (
    EFFICIENCY,
    EXPORTED_PROGRAM,
    EXPORTED_STATE,
    STUDY,
    STUDY_METRICS,
    layer_rankings_path,
    model_path,
    prepared_dir,
    ranking_path,
    sensitivity_path,
)
from prunelab.pruning.finetune import finetune_pruned
from prunelab.pruning.ranking import ranked_order
from prunelab.runtime import log, read_json, read_table, resolve_device, seed_everything, stage_main, write_json


def _layer_choice(
    params: Params, groups: tuple[ChannelGroup, ...], expected: Implied
) -> tuple[dict[str, list[int]], dict]:
    """export.budget: none: the single-layer study's criterion and K (`choose_export`)."""
    band = read_table(
        STUDY / "recal_bacc.csv", "study band table", "aggregate", lambda p, t: check_band(p, t, expected)
    )
    criterion, k = choose_export(band, params.export.criterion, params.export.k)
    layer = group_named(groups, params.prune.layer)
    removed = ranked_order(ranking_path(expected.seeds[0]), criterion, layer.channels, expected)[:k]
    chosen = band[(band["criterion"] == criterion) & (band["k"].isin([0, k]))].set_index("k")["mean"]
    facts = {
        "k": k,
        "channels": layer.channels,
        f"criterion_{criterion}": 1,
        "study_recal_bacc_at_k": float(chosen[k]),
        "study_recal_bacc_unpruned": float(chosen[0]),
        "score_loss_points": float(chosen[0] - chosen[k]),
    }
    return {layer.name: [int(c) for c in removed]}, facts


def _network_choice(
    params: Params, model: torch.nn.Module, groups: tuple[ChannelGroup, ...], spec: InputSpec, expected: Implied
) -> tuple[Choice, dict[str, list[int]], dict]:
    """export.budget: auto or a share: the configuration the budget study picks (`choose_budget`),
    the channels it removes from the first seed's model, and metrics.json's `budget`."""
    export, seed = params.export, expected.seeds[0]
    metrics = read_json(STUDY_METRICS, "study metrics", "aggregate")
    check_study_metrics(STUDY_METRICS, metrics, expected)
    budgets = metrics["budget"]
    choice = choose_budget(budgets, list(params.budget.flops), export.budget, export.strategy, export.criterion)
    if choice is None:
        raise UserError(
            f"params.yaml: export.strategy={export.strategy!r} with export.criterion={export.criterion!r} has no "
            "budget results; allowed: auto, or a strategy and criterion of the budget study"
        )
    channels = {layer.name: layer.channels for layer in groups}
    rankings = load_rankings(layer_rankings_path(seed), channels, params.sensitivity.criteria)
    plans = sensitivity_plans(rankings, load_curves(sensitivity_path(seed), expected), choice.criterion)
    flops = flops_model(model, groups, example_input(spec))
    removed = allocate(choice.strategy, plans, flops, choice.budget, params.budget.round_to)
    return choice, removed, budgets


def main() -> None:
    params = load_params()
    seed, export, recal = params.seeds[0], params.export, params.recalibrate
    seed_everything(seed)
    info = load_info(prepared_dir(seed))
    model = load_model(model_path(seed), params.model.arch, info.input)
    groups = find_groups(model, example_input(info.input))
    params.check_groups(groups)
    expected = implied(params, groups)
    images, labels = load_split(recal.split, prepared_dir(seed), info)
    calibration = images[: recal.max_samples], labels[: recal.max_samples]
    test = load_split("test", prepared_dir(seed), info)
    n_classes = info.input.n_classes
    if export.budget == "none":
        removed, facts = _layer_choice(params, groups, expected)
        shipped = shipped_model(model, removed, calibration, n_classes)
        what = f"{next(k for k in facts if k.startswith('criterion_')).removeprefix('criterion_')} K={facts['k']}"
    else:
        choice, removed, budgets = _network_choice(params, model, groups, info.input, expected)
        # Fine-tuned by the budget study's recipe, as the study scored this configuration (same seed, same data).
        tuned, _ = finetune_pruned(
            model, groups, removed, load_split("train", prepared_dir(seed), info), test, n_classes=n_classes,
            device=resolve_device(params.train.device), seed=seed, label="finetune shipped", **recipe(params),
        )  # fmt: skip
        shipped = fold_recalibrated_decision(tuned.cpu().eval(), *calibration, n_classes).eval()
        study = budgets[choice.strategy][choice.criterion][budget_key(choice.budget)]
        facts = {
            "budget": choice.budget,
            f"strategy_{choice.strategy}": 1,
            f"criterion_{choice.criterion}": 1,
            **{f"channels_{metric_key(g.name)}": g.channels - len(removed[g.name]) for g in groups},
            "within_points": int(choice.within),
            "study_finetuned_recal_bacc": study["finetuned_recal_bacc"]["mean"],
            "study_finetuned_recal_bacc_unpruned": budgets["unpruned"]["finetuned_recal_bacc"]["mean"],
            "score_loss_points": choice.loss,
        }
        what = f"{choice.strategy} {choice.criterion} at {choice.budget:g} of the FLOPs"
    # The unpruned model gets its re-fitted decision too: the comparison is like for like.
    unpruned = fold_recalibrated_decision(copy.deepcopy(model).eval(), *calibration, n_classes)
    example = test[0][:2]
    # The program ships in the deployed format (BatchNorm folded, channels-last maps); model.pt keeps the
    # trained layout, which the project's classes rebuild.
    shipped_bytes = save_program(deployed(shipped), example, EXPORTED_PROGRAM)
    rebuild = {
        "arch": params.model.arch,
        "input": {"channels": info.input.channels, "size": info.input.size, "n_classes": n_classes},
        "removed": removed,
        "seed": seed,
        "mean": list(info.mean),
        "std": list(info.std),
        **{key: value for key, value in facts.items() if not key.startswith(("study_", "score_", "within_"))},
    }
    save_rebuildable(shipped, EXPORTED_STATE, rebuild)

    models = {"unpruned": unpruned, "exported": shipped}
    measured = compare_models(models, test, info.input, example, known_bytes={"exported": shipped_bytes})
    ratio = measured["ratio"]
    # DVC metrics hold numbers only: the criterion, strategy and CPU are named in a key set to 1.
    write_json(
        EFFICIENCY,
        {
            "seed": seed,
            **facts,
            **measured,
            "threads": torch.get_num_threads(),
            f"cpu_{platform.machine()}": 1,
        },
    )
    log(
        f"exported {what} of seed {seed}: {ratio['params']:.2f}× fewer parameters, "
        f"{ratio['flops']:.2f}× fewer FLOPs, {ratio['speedup_batch256']:.2f}× faster at batch 256 "
        f"[{ratio['speedup_batch256_low']:.2f}, {ratio['speedup_batch256_high']:.2f}] over "
        f"{ratio['speedup_rounds']} paired rounds; the study's loss {facts['score_loss_points']:.2f} points"
    )
    if ratio["speedup_batch256_high"] < 1:
        log(
            "warning: the exported model measures slower than the unpruned one in the deployed format on this "
            f"machine (speed-up at most {ratio['speedup_batch256_high']:.2f}×): see docs/deploy.md on channel counts"
        )


if __name__ == "__main__":
    stage_main(main)
