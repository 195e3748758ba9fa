"""Stage export: the pruned model to take home, and what it saves.

By default (export.budget: auto) ships the whole network pruned to the smallest FLOPs budget whose
fine-tuned ROC AUC and recalibrated balanced accuracy are both non-inferior to the unpruned model's
fine-tuned alike at the study's margins (`prunelab.network.choice.RULE`; export.strategy /
export.criterion may fix those), the first seed's model rebuilt and fine-tuned by the budget study's
recipe. A configuration that measures no faster than the unpruned model in the deployed format is
passed over for the next the rule allows, and when none is faster the unpruned model ships; the log
and efficiency.json (`slower_skipped`, `shipped_unpruned`) say so. With export.budget: none,
ships the single-layer study's model instead (export.k / export.criterion, or auto: the largest
K whose mean recalibrated balanced accuracy over the seeds stays within 1 point of the unpruned
model's). Either way the first seed's physically smaller model gets its re-fitted
decision folded into the last bias, and the stage writes data/export/model.pt2 (torch.export, with
BatchNorm folded into the convs, channels-last maps),
data/export/model.pt (state_dict + rebuild facts), data/export/model.onnx (for ONNX Runtime: BatchNorm
folded, `prunelab.deploy.onnx`) and metrics/efficiency.json (parameters, FLOPs, file sizes, CPU latency
at batch 1 and 256 in torch and at batch 256 under ONNX Runtime, with intervals, scores; unpruned against
exported).
"""

from __future__ import annotations

import copy
import platform
import tempfile
from pathlib import Path

import torch

from prunelab.checks.implied import Implied, implied
from prunelab.checks.study_metrics import check_study_metrics
from prunelab.checks.tables import check_band, check_budget
from prunelab.deploy.efficiency import compare_models, quick_speedup
from prunelab.deploy.export import (
    choose_export,
    fold_recalibrated_decision,
    save_program,
    save_rebuildable,
    shipped_model,
)
from prunelab.deploy.formats import deployed
from prunelab.deploy.latency import configuration_shares, latency_report
from prunelab.deploy.onnx import OPSET, runtime_version, save_onnx
from prunelab.errors import UserError
from prunelab.models.groups import group_named
from prunelab.models.records import ChannelGroup, CostModel, LatencyModel, metric_key
from prunelab.models.replicate import open_replicate
from prunelab.network.budget import allocate, flops_model, recipe, sensitivity_plans
from prunelab.network.choice import KEPT_SCORES, Choice, budget_key, candidates
from prunelab.network.latency import TARGET_WORDS, budget_cost, read_latency_model
from prunelab.network.sensitivity import load_curves, load_rankings
from prunelab.params import Params, load_params
from prunelab.paths import (
    EFFICIENCY,
    EXPORTED_ONNX,
    EXPORTED_PROGRAM,
    EXPORTED_STATE,
    LATENCY_REPORT,
    STUDY,
    STUDY_METRICS,
    budget_path,
    layer_rankings_path,
    ranking_path,
    sensitivity_path,
)
from prunelab.pruning.finetune import finetune_pruned
from prunelab.pruning.ranking import ranked_order
from prunelab.runtime import (
    log,
    read_json,
    read_table,
    resolve_device,
    stage_main,
    write_json,
    write_text,
)


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


def _network_candidates(params: Params, expected: Implied) -> tuple[list[Choice], dict]:
    """export.budget: auto or a share: the configurations the budget study allows, in the order export
    tries them (`prunelab.network.choice.candidates`), and metrics.json's `budget`."""
    export = params.export
    metrics = read_json(STUDY_METRICS, "study metrics", "aggregate")
    check_study_metrics(STUDY_METRICS, metrics, expected)
    budgets = metrics["budget"]
    found = candidates(budgets, list(params.budget.flops), export.budget, export.strategy, export.criterion)
    if not found:
        raise UserError(
            f"params.yaml: export.strategy={export.strategy!r} with export.criterion={export.criterion!r} has no "
            "budget results; allowed: auto, or a strategy and criterion of the budget study"
        )
    return found, budgets


def _removed_for(
    params: Params, choice: Choice, groups: tuple[ChannelGroup, ...], cost: CostModel | LatencyModel, expected: Implied
) -> dict[str, list[int]]:
    """The channels `choice` removes from the first seed's model, allocated as the budget study did
    (`cost`: what its budget is a share of, `budget.target`)."""
    seed = params.seeds[0]
    channels = {layer.name: layer.channels for layer in groups}
    rankings = load_rankings(layer_rankings_path(seed), channels, params.sensitivity.criteria)
    plans = sensitivity_plans(rankings, load_curves(sensitivity_path(seed), expected), choice.criterion)
    return allocate(choice.strategy, plans, cost, choice.budget, params.budget.round_to)


def _latency_check(
    params: Params,
    model: torch.nn.Module,
    groups: tuple[ChannelGroup, ...],
    table: LatencyModel,
    flops: CostModel,
    example: torch.Tensor,
    images: torch.Tensor,
    expected: Implied,
) -> dict:
    """Every configuration of the first seed's budget study measured here (its share of the unpruned
    model's latency, paired rounds), against what the latency table predicts (`table`) and what its FLOPs
    share would: efficiency.json's `latency_prediction` (numbers only, as DVC metrics: the kept counts
    as `channels_<group>`), also written as metrics/latency.md."""
    seed = params.seeds[0]
    study = read_table(budget_path(seed), "budget table", "budget", lambda p, t: check_budget(p, t, expected))
    names = [g.name for g in groups]
    configurations = {}
    for row in study.itertuples():
        if row.strategy != "unpruned":
            counts = dict(zip(names, (int(n) for n in row.channels.split("/")), strict=True))
            configurations[(budget_key(row.budget), row.strategy, row.criterion)] = counts

    def label(counts: dict[str, int]) -> str:
        return "/".join(str(counts[n]) for n in names)

    # Each distinct model once (strategies often agree): its error counts once, and its rounds are not shared.
    distinct = {label(c): c for c in configurations.values()}
    rounds = params.latency.rounds  # as many as the table's: the check is as steady as what it checks
    unpruned_ms, measured = configuration_shares(model, groups, example, images, distinct, rounds)

    def error(predicted: float, share: float) -> float:
        return 100 * (predicted - share) / share

    errors = {
        source: [abs(error(predict(counts), measured[key])) for key, counts in distinct.items()]
        for source, predict in (("table", table.kept), ("flops", flops.kept))
    }
    entries: dict = {}
    for (budget, strategy, criterion), counts in configurations.items():
        share, predicted = measured[label(counts)], table.kept(counts)
        entries.setdefault(budget, {}).setdefault(strategy, {})[criterion] = {
            **{f"channels_{metric_key(n)}": counts[n] for n in names},
            "measured_share": share,
            "table_share": predicted,
            "flops_share": flops.kept(counts),
            "table_error_pct": error(predicted, share),
            "flops_error_pct": error(flops.kept(counts), share),
        }
    return {
        "configurations": len(distinct),
        "rounds": rounds,
        "unpruned_ms": unpruned_ms,
        **{f"{source}_mean_abs_error_pct": sum(e) / len(e) for source, e in errors.items()},
        **{f"{source}_max_abs_error_pct": max(e) for source, e in errors.items()},
        **entries,
    }


def _loss_entry(paired: dict) -> dict[str, float]:
    """The study's paired difference (pruned minus unpruned, fine-tuned alike) as a loss in points."""
    if "ci_low" not in paired:  # one seed: no interval
        return {"mean": -paired["mean"]}
    return {"mean": -paired["mean"], "ci_low": -paired["ci_high"], "ci_high": -paired["ci_low"]}


def main() -> None:
    params = load_params()
    seed, export, recal = params.seeds[0], params.export, params.recalibrate
    replicate = open_replicate(params, seed)
    info, model, groups = replicate.info, replicate.model, replicate.groups
    expected = implied(params, groups)
    images, labels = replicate.split(recal.split)
    calibration = images[: recal.max_samples], labels[: recal.max_samples]
    test = replicate.split("test")
    n_classes = info.input.n_classes
    # The unpruned model gets its re-fitted decision too: the comparison is like for like.
    unpruned = fold_recalibrated_decision(copy.deepcopy(model).eval(), *calibration, n_classes)
    target = params.budget.target
    flops = flops_model(model, groups, replicate.example)
    # Read whatever the target: the export checks the table's predictions against its measurements.
    table = read_latency_model(flops, params.budget.round_to)
    cost = budget_cost(target, flops, table)
    if export.budget == "none":
        removed, facts = _layer_choice(params, groups, expected)
        shipped = shipped_model(model, removed, calibration, n_classes)
        what = f"{next(k for k in facts if k.startswith('criterion_')).removeprefix('criterion_')} K={facts['k']}"
    else:
        found, budgets = _network_candidates(params, expected)
        train = replicate.split("train")
        reference = deployed(unpruned)
        slower = 0
        for choice in found:
            removed = _removed_for(params, choice, groups, cost, expected)
            # Fine-tuned by the budget study's recipe, as the study scored it (same seed, same data).
            tuned, _ = finetune_pruned(
                model, groups, removed, train, test, n_classes=n_classes, device=resolve_device(params.train.device),
                seed=seed, label="finetune shipped", score=False, **recipe(params),
            )  # fmt: skip
            shipped = fold_recalibrated_decision(tuned.cpu().eval(), *calibration, n_classes).eval()
            speedup = quick_speedup(reference, deployed(shipped), test[0])
            if speedup > 1 or len(found) == 1:
                break
            slower += 1
            log(
                f"note: {choice.strategy} {choice.criterion} at {choice.budget:g} of the {TARGET_WORDS[target]} "
                f"measures no faster than the unpruned model here ({speedup:.2f}×); "
                "trying the next configuration the rule allows"
            )
        else:  # every configuration the rule allows is slower here: ship the unpruned model, and say so
            choice, removed = found[0], {}
            shipped = copy.deepcopy(unpruned).eval()
            log("warning: no configuration the rule allows runs faster here than the unpruned model: shipping it")
        study = budgets[choice.strategy][choice.criterion][budget_key(choice.budget)]
        facts = {
            "budget": choice.budget,
            f"strategy_{choice.strategy}": 1,
            f"criterion_{choice.criterion}": 1,
            **{f"channels_{metric_key(g.name)}": g.channels - len(removed.get(g.name, ())) for g in groups},
            "within_points": int(choice.within),
            "slower_skipped": slower,
            "shipped_unpruned": int(not removed),
            "study_finetuned_recal_bacc": study["finetuned_recal_bacc"]["mean"],
            "study_finetuned_recal_bacc_unpruned": budgets["unpruned"]["finetuned_recal_bacc"]["mean"],
            "score_loss_points": choice.loss,
            "study_loss": {score: _loss_entry(study[f"{score}_vs_unpruned"]) for score in KEPT_SCORES},
        }
        what = f"{choice.strategy} {choice.criterion} at {choice.budget:g} of the {TARGET_WORDS[target]}"
        if not removed:
            what = f"the unpruned model (no configuration of the rule was faster; the study chose {what})"
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
        **{
            key: value
            for key, value in facts.items()
            if not key.startswith(("study_", "score_", "within_", "slower_", "shipped_"))
        },
    }
    save_rebuildable(shipped, EXPORTED_STATE, rebuild)

    models = {"unpruned": unpruned, "exported": shipped}
    # The second target: ONNX Runtime. The unpruned model's file is only timed, never shipped.
    save_onnx(shipped, example, EXPORTED_ONNX)
    with tempfile.TemporaryDirectory() as scratch:
        onnx_files = {"unpruned": Path(scratch) / "unpruned.onnx", "exported": EXPORTED_ONNX}
        save_onnx(unpruned, example, onnx_files["unpruned"])
        measured = compare_models(
            models,
            test,
            info.input,
            example,
            known_bytes={"exported": shipped_bytes},
            onnx_files=onnx_files,
            rounds=export.rounds,
        )
    ratio = measured["ratio"]
    prediction = _latency_check(params, model, groups, table, flops, replicate.example, test[0], expected)
    write_text(LATENCY_REPORT, latency_report(prediction, target))
    # DVC metrics hold numbers only: the criterion, strategy and CPU are named in a key set to 1.
    write_json(
        EFFICIENCY,
        {
            "seed": seed,
            **facts,
            **measured,
            f"target_{target}": 1,
            "latency_prediction": prediction,
            "threads": torch.get_num_threads(),
            "onnx_opset": OPSET,
            f"cpu_{platform.machine()}": 1,
        },
    )
    log(
        f"exported {what} of seed {seed}: {ratio['params']:.2f}× fewer parameters, "
        f"{ratio['flops']:.2f}× fewer FLOPs, {ratio['speedup_batch256']:.2f}× faster at batch 256 "
        f"[{ratio['speedup_batch256_low']:.2f}, {ratio['speedup_batch256_high']:.2f}] over "
        f"{ratio['speedup_rounds']} paired rounds; the study's loss {facts['score_loss_points']:.2f} points"
    )
    log(
        f"under ONNX Runtime {runtime_version()} (opset {OPSET}): {ratio['speedup_batch256_onnxruntime']:.2f}× "
        f"faster at batch 256 [{ratio['speedup_batch256_onnxruntime_low']:.2f}, "
        f"{ratio['speedup_batch256_onnxruntime_high']:.2f}]; logits within "
        f"{measured['onnxruntime_max_abs_logit_diff']:.1e} of torch's"
    )
    if ratio["speedup_batch256_high"] < 1:
        log(
            "warning: the exported model measures slower than the unpruned one in the deployed format on this "
            f"machine (speed-up at most {ratio['speedup_batch256_high']:.2f}×): see docs/deploy.md on channel counts"
        )


if __name__ == "__main__":
    stage_main(main)
