"""`efficiency.json` (export), as plot and headline read it: its ratios are its own measurements' ratios, its
latency prediction's errors and summaries are its own, and what it ships is what params allow, with the
study's scores for it (the band table's for the single-layer model, metrics.json's for the whole network)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prunelab.checks.implied import Implied
from prunelab.checks.reader import DocumentReader, close, exact_keys
from prunelab.checks.text import shown
from prunelab.models.records import metric_key

if TYPE_CHECKING:
    import pandas as pd

# ONNX Runtime's logits against torch's for the same shipped model (float32, BatchNorm folded): kernels
# sum in another order, so equal up to rounding; measured max differences are about 1e-6.
ONNX_TOLERANCE = 1e-3
RATIOS = {
    "params": ("params", "params"),
    "flops": ("flops_per_sample", "flops_per_sample"),
    "program_bytes": ("program_bytes", "program_bytes"),
    "speedup_batch1": ("latency_ms_batch1", "latency_ms_batch1"),
    "speedup_batch256": ("latency_ms_batch256", "latency_ms_batch256"),
    "speedup_batch256_eager": ("latency_ms_batch256_eager", "latency_ms_batch256_eager"),
    "speedup_batch256_onnxruntime": ("latency_ms_batch256_onnxruntime", "latency_ms_batch256_onnxruntime"),
}


def check_efficiency(
    path: Path | str,
    efficiency: Any,
    implied: Implied | None = None,
    band: pd.DataFrame | None = None,
    metrics: dict | None = None,
) -> None:
    """metrics/efficiency.json: its own ratios, and what it ships as params allow: the whole network
    (a budget, strategy and criterion; given `metrics`, the study's scores for them) or the
    single-layer model (criterion and K; given them, the study band's scores, `band`:
    recal_bacc.csv, and the study's baseline, `metrics`)."""
    doc = DocumentReader(path, "export")
    eff = doc.mapping(efficiency, "")
    seed = doc.number(eff, "seed", integer=True, low=0)
    chosen = [key.removeprefix("criterion_") for key in eff if key.startswith("criterion_")]
    if len(chosen) != 1 or eff[f"criterion_{chosen[0]}"] != 1:
        raise doc.refuse("it does not name one criterion (one criterion_<name> key set to 1)")
    criterion = chosen[0]
    loss = doc.number(eff, "score_loss_points", low=-100.0, high=100.0)
    if "budget" in eff:
        _check_network_export(doc, eff, criterion, loss, implied, metrics)
    else:
        _check_layer_export(doc, eff, criterion, loss, implied, band, metrics)
    doc.number(eff, "threads", integer=True, low=1)
    sides = {}
    for side in ("unpruned", "exported"):
        facts = doc.mapping(doc.get(eff, side), side)
        for key in ("params", "flops_per_sample", "program_bytes"):
            doc.number(facts, key, f"{side}.", low=0, low_open=True, integer=True)
        for key in facts:
            if key.startswith("test_"):
                doc.number(facts, key, f"{side}.", low=0.0, high=100.0)
            elif key.startswith("latency_"):
                doc.number(facts, key, f"{side}.", low=0.0, low_open=True)
        sides[side] = facts
    ratio = doc.mapping(doc.get(eff, "ratio"), "ratio")
    for key, (top, bottom) in RATIOS.items():
        value = doc.number(ratio, key, "ratio.", low=0.0, low_open=True)
        expected = doc.number(sides["unpruned"], top, "unpruned.") / doc.number(sides["exported"], bottom, "exported.")
        if not math.isclose(value, expected, rel_tol=1e-12):
            raise doc.refuse(f"ratio.{key}={value} is not its own measurements' ratio {expected}")
    vs_flops = doc.number(ratio, "speedup_batch256_vs_flops", "ratio.", low=0.0, low_open=True)
    if not math.isclose(vs_flops, ratio["speedup_batch256"] / ratio["flops"], rel_tol=1e-12):
        raise doc.refuse("ratio.speedup_batch256_vs_flops is not speedup_batch256 / flops")
    # The speed-ups' bootstrap intervals over paired rounds (prunelab.deploy.efficiency.speedup_interval).
    doc.number(ratio, "speedup_rounds", "ratio.", integer=True, low=2)
    for runtime in ("", "_onnxruntime"):
        low = doc.number(ratio, f"speedup_batch256{runtime}_low", "ratio.", low=0.0, low_open=True)
        doc.number(ratio, f"speedup_batch256{runtime}_high", "ratio.", low=low)
    doc.number(eff, "onnx_opset", integer=True, low=7)
    doc.number(eff, "onnxruntime_max_abs_logit_diff", low=0.0, high=ONNX_TOLERANCE)
    targets = [key.removeprefix("target_") for key in eff if key.startswith("target_")]
    if len(targets) != 1 or targets[0] not in ("flops", "latency") or eff[f"target_{targets[0]}"] != 1:
        raise doc.refuse("it does not name one budget target (one target_flops or target_latency key set to 1)")
    if implied is not None and targets[0] != implied.target:
        raise doc.refuse(f"target_{targets[0]}, but budget.target={implied.target}")
    check_latency_prediction(doc, doc.mapping(doc.get(eff, "latency_prediction"), "latency_prediction"))
    if implied is not None and seed != implied.seeds[0]:
        raise doc.refuse(f"seed={seed}, but the model shipped is seeds[0]={implied.seeds[0]}'s")


def check_latency_prediction(doc: DocumentReader, prediction: dict) -> None:
    """efficiency.json's `latency_prediction` (`stages/export.py`): each budget model's measured share of
    the unpruned model's latency against the table's and the FLOPs' prediction; every error is its
    prediction over the measurement, less 1 (in %), and the summaries are those errors' mean and largest over
    the distinct models (`configurations` of them: entries with the same channels are one model, measured once)."""
    where = "latency_prediction."
    n = doc.number(prediction, "configurations", where, integer=True, low=1)
    doc.number(prediction, "rounds", where, integer=True, low=1)
    doc.number(prediction, "unpruned_ms", where, low=0.0, low_open=True)
    errors: dict[str, dict[str, float]] = {"table": {}, "flops": {}}  # per distinct model (its channels)
    for budget, strategies in prediction.items():
        if not isinstance(strategies, dict):
            continue
        for strategy, criteria in doc.mapping(strategies, f"{where}{budget}").items():
            for criterion, entry in doc.mapping(criteria, f"{where}{budget}.{strategy}").items():
                at = f"{where}{budget}.{strategy}.{criterion}."
                entry = doc.mapping(entry, at)
                measured = doc.number(entry, "measured_share", at, low=0.0, low_open=True)
                channels = tuple(value for key, value in entry.items() if key.startswith("channels_"))
                if not channels or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in channels):
                    raise doc.refuse(f"{at}channels_<group> are not its kept counts (positive integers)")
                for source in errors:
                    share = doc.number(entry, f"{source}_share", at, low=0.0)
                    error = doc.number(entry, f"{source}_error_pct", at)
                    if not close(error, 100 * (share - measured) / measured, 1e-6):
                        raise doc.refuse(f"{at}{source}_error_pct is not {source}_share over measured_share, less 1")
                    if errors[source].setdefault(channels, abs(error)) != abs(error):
                        raise doc.refuse(f"{at}{source}_error_pct differs from another model's with its channels")
    if len(errors["table"]) != n:
        raise doc.refuse(f"{where}configurations={n}, but it holds {len(errors['table'])} distinct models")
    for source, by_model in errors.items():
        values = list(by_model.values())
        for stat, expected in (("mean", sum(values) / len(values)), ("max", max(values))):
            key = f"{source}_{stat}_abs_error_pct"
            if not close(doc.number(prediction, key, where, low=0.0), expected, 1e-6):
                raise doc.refuse(f"{where}{key} is not its models' {stat} absolute error")


def _check_layer_export(
    doc: DocumentReader,
    eff: dict,
    criterion: str,
    loss: float,
    implied: Implied | None,
    band: pd.DataFrame | None,
    metrics: dict | None,
) -> None:
    """The single-layer study's export (export.budget: none): K of P, the study's scores at K."""
    channels = int(doc.number(eff, "channels", integer=True, low=1))
    k = int(doc.number(eff, "k", integer=True, low=0, high=channels - 1))
    at_k = doc.number(eff, "study_recal_bacc_at_k", low=0.0, high=100.0)
    unpruned = doc.number(eff, "study_recal_bacc_unpruned", low=0.0, high=100.0)
    if not close(loss, unpruned - at_k, 1e-9):
        raise doc.refuse(f"score_loss_points={loss} is not study_recal_bacc_unpruned - study_recal_bacc_at_k")
    if implied is not None:
        if implied.export_budget != "none":
            raise doc.refuse(f"it ships the single-layer model, but export.budget={implied.export_budget!r}")
        if channels != implied.channels:
            raise doc.refuse(f"channels={channels}, but model.arch has P={implied.channels}")
        if criterion not in implied.ranked or implied.export_criterion not in ("auto", criterion):
            raise doc.refuse(f"criterion {shown(criterion)} is not one export.criterion and prune.criteria allow")
        if implied.export_k not in ("auto", k) or k not in implied.ks:
            raise doc.refuse(f"k={k} is not one export.k and the sweep allow")
    if band is not None:
        rows = band[band["criterion"] == criterion].set_index("k")["mean"]
        for key, value, at in (("study_recal_bacc_at_k", at_k, k), ("study_recal_bacc_unpruned", unpruned, 0)):
            if at not in rows.index or not close(value, float(rows[at]), 1e-9):
                raise doc.refuse(f"{key}={value} is not the study's recal_bacc.csv mean for {criterion} at K={at}")
    if metrics is not None:
        baseline = metrics["baseline_recal_bacc"]["mean"]
        # The band prints 4 decimals (5e-5) of means over 6-decimal sweep values (5e-7).
        if not close(unpruned, baseline, 6e-5):
            raise doc.refuse(f"study_recal_bacc_unpruned={unpruned} is not the study's baseline {baseline:.4f}")


def _check_network_export(
    doc: DocumentReader, eff: dict, criterion: str, loss: float, implied: Implied | None, metrics: dict | None
) -> None:
    """The whole-network export: a budget and strategy of the study, each layer's kept channels,
    the study's fine-tuned scores whose difference is the loss."""
    budget = doc.number(eff, "budget", low=0.0, high=1.0, low_open=True)
    strategies = [key.removeprefix("strategy_") for key in eff if key.startswith("strategy_")]
    if len(strategies) != 1 or eff[f"strategy_{strategies[0]}"] != 1:
        raise doc.refuse("it does not name one strategy (one strategy_<name> key set to 1)")
    doc.number(eff, "within_points", integer=True, low=0, high=1)
    doc.number(eff, "slower_skipped", integer=True, low=0)
    doc.number(eff, "shipped_unpruned", integer=True, low=0, high=1)
    from prunelab.network.choice import KEPT_SCORES

    losses = doc.mapping(doc.get(eff, "study_loss"), "study_loss")
    exact_keys(doc, losses, set(KEPT_SCORES), "study_loss")
    for score in KEPT_SCORES:
        entry = doc.mapping(losses[score], f"study_loss.{score}")
        mean = doc.number(entry, "mean", f"study_loss.{score}.", low=-100.0, high=100.0)
        if "ci_low" in entry or "ci_high" in entry:  # one seed: no interval
            # a paired t interval, unclipped as in metrics.json's comparisons: with two seeds it can pass ±100
            doc.number(entry, "ci_low", f"study_loss.{score}.", high=mean)
            doc.number(entry, "ci_high", f"study_loss.{score}.", low=mean)
    shipped = doc.number(eff, "study_finetuned_recal_bacc", low=0.0, high=100.0)
    unpruned = doc.number(eff, "study_finetuned_recal_bacc_unpruned", low=0.0, high=100.0)
    if not close(loss, unpruned - shipped, 1e-9):
        raise doc.refuse("score_loss_points is not study_finetuned_recal_bacc_unpruned - study_finetuned_recal_bacc")
    kept = {key.removeprefix("channels_"): eff[key] for key in eff if key.startswith("channels_")}
    for layer in kept:
        doc.number(eff, f"channels_{layer}", integer=True, low=1)
    if implied is not None:
        if implied.export_budget == "none":
            raise doc.refuse("it ships the whole-network model, but export.budget is none")
        if set(kept) != {metric_key(name) for name in implied.layers}:
            raise doc.refuse(f"its channels_<layer> keys are not model.arch's layers ({', '.join(implied.layers)})")
        if round(budget, 6) not in implied.budgets or implied.export_budget not in ("auto", budget):
            raise doc.refuse(f"budget={budget} is not one export.budget and budget.flops allow")
        if strategies[0] not in implied.strategies or implied.export_strategy not in ("auto", strategies[0]):
            raise doc.refuse(f"strategy {shown(strategies[0])} is not one export.strategy and budget.strategies allow")
        if criterion not in implied.budget_criteria or implied.export_criterion not in ("auto", criterion):
            raise doc.refuse(f"criterion {shown(criterion)} is not one export.criterion and budget.criteria allow")
    if metrics is not None:
        from prunelab.network.choice import budget_key

        study = metrics["budget"]
        entry = study.get(strategies[0], {}).get(criterion, {}).get(budget_key(budget))
        if entry is None or not close(shipped, entry["finetuned_recal_bacc"]["mean"], 1e-9):
            raise doc.refuse(
                "study_finetuned_recal_bacc is not metrics.json's mean for its budget, strategy, criterion"
            )
        if not close(unpruned, study["unpruned"]["finetuned_recal_bacc"]["mean"], 1e-9):
            raise doc.refuse("study_finetuned_recal_bacc_unpruned is not metrics.json's unpruned fine-tuned mean")
