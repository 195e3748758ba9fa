"""`efficiency.json` (export), read through `Efficiency` as plot and headline read it: its ratios are its own
measurements' ratios, its latency prediction's errors and summaries are its own, and what it ships is what
params allow, with the study's scores for it (the band table's for the single-layer model, metrics.json's for
the whole network)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ConfigDict, Field, ValidationInfo, create_model, model_validator

from prunelab.checks.implied import Implied
from prunelab.checks.reader import (
    Count,
    Document,
    Flag,
    Interval,
    NonNegative,
    Number,
    Points,
    Positive,
    Score,
    Whole,
    check_document,
    close,
    context,
)
from prunelab.messages import at, rule, shown
from prunelab.models.records import metric_key
from prunelab.network.choice import KEPT_SCORES, budget_key

if TYPE_CHECKING:
    import pandas as pd

# ONNX Runtime's logits against torch's for the same shipped model (float32, BatchNorm folded): kernels
# sum in another order, so equal up to rounding; measured max differences are about 1e-6.
ONNX_TOLERANCE = 1e-3
RATIOS = {  # each ratio: the unpruned model's figure over the exported model's
    "params": "params",
    "flops": "flops_per_sample",
    "program_bytes": "program_bytes",
    "speedup_batch1": "latency_ms_batch1",
    "speedup_batch256": "latency_ms_batch256",
    "speedup_batch256_eager": "latency_ms_batch256_eager",
    "speedup_batch256_onnxruntime": "latency_ms_batch256_onnxruntime",
}
FLAGS = ("criterion_", "strategy_", "target_", "cpu_")  # a name set in its key: `<flag><name>: 1`


class Side(Document):
    """One model's facts (`prunelab.deploy.efficiency.compare_models`): its size, its test scores
    (`test_<score>`) and latencies (`latency_ms_<...>`)."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, Number] = Field(init=False)
    extra_prefixes = ("test_", "latency_")
    params: Count
    flops_per_sample: Count
    program_bytes: Count
    # The latencies its ratios are made of (more, per part, are extra keys).
    latency_ms_batch1: Positive
    latency_ms_batch256: Positive
    latency_ms_batch256_eager: Positive
    latency_ms_batch256_onnxruntime: Positive

    @model_validator(mode="after")
    def _scores_and_latencies(self) -> Side:
        for key, value in (self.model_extra or {}).items():
            if key.startswith("test_"):
                if not 0 <= value <= 100:
                    raise at(f"{key}={value} is outside [0, 100] (a score in percent)")
            elif value <= 0:
                raise at(f"{key}={value} is not a latency > 0")
        return self


class _RatioBase(Document):
    """The unpruned model's figures over the exported model's, and the speed-ups' intervals over paired rounds
    (`prunelab.deploy.efficiency.speedup_interval`)."""

    speedup_batch256_vs_flops: Positive
    speedup_rounds: int = Field(ge=2, description="an integer >= 2")
    speedup_batch256_low: Positive
    speedup_batch256_high: Positive
    speedup_batch256_onnxruntime_low: Positive
    speedup_batch256_onnxruntime_high: Positive

    @model_validator(mode="after")
    def _own(self) -> _RatioBase:
        for runtime in ("", "_onnxruntime"):
            low, high = (getattr(self, f"speedup_batch256{runtime}_{end}") for end in ("low", "high"))
            if high < low:
                raise at(f"speedup_batch256{runtime}_high={high} is below speedup_batch256{runtime}_low={low}")
        expected = self.speedup_batch256 / self.flops  # fields of `Ratio`, made from RATIOS
        if not math.isclose(self.speedup_batch256_vs_flops, expected, rel_tol=1e-12):
            raise at("speedup_batch256_vs_flops is not speedup_batch256 / flops")
        return self


Ratio = create_model("Ratio", __base__=_RatioBase, **{key: (Positive, ...) for key in RATIOS})


class PredictionEntry(Document):
    """One budget model's measured share of the unpruned model's latency, the table's and the FLOPs'
    prediction of it, and each prediction's error (`channels_<group>`: its kept counts)."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, Count] = Field(init=False)
    extra_prefixes = ("channels_",)
    measured_share: Positive
    table_share: NonNegative
    flops_share: NonNegative
    table_error_pct: Number
    flops_error_pct: Number

    @model_validator(mode="after")
    def _own_errors(self) -> PredictionEntry:
        counts = self.model_extra or {}
        if not counts:
            raise at("channels_<group> are missing: its kept counts")
        for source in ("table", "flops"):
            share, error = getattr(self, f"{source}_share"), getattr(self, f"{source}_error_pct")
            if not close(error, 100 * (share - self.measured_share) / self.measured_share, 1e-6):
                raise at(f"{source}_error_pct is not {source}_share over measured_share, less 1")
        return self

    def channels(self) -> tuple[int, ...]:
        return tuple((self.model_extra or {}).values())


class LatencyPrediction(Document):
    """efficiency.json's `latency_prediction` (`stages/export.py`): per budget, strategy and criterion a
    `PredictionEntry`; the summaries are the errors' mean and largest over the distinct models
    (`configurations` of them: entries with the same channels are one model, measured once)."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, dict[str, dict[str, PredictionEntry]]] = Field(init=False)
    configurations: Count
    rounds: Count
    unpruned_ms: Positive
    table_mean_abs_error_pct: NonNegative
    table_max_abs_error_pct: NonNegative
    flops_mean_abs_error_pct: NonNegative
    flops_max_abs_error_pct: NonNegative

    @model_validator(mode="after")
    def _own_summaries(self) -> LatencyPrediction:
        errors: dict[str, dict[tuple[int, ...], float]] = {"table": {}, "flops": {}}  # per distinct model
        for budget, strategies in (self.model_extra or {}).items():
            for strategy, criteria in strategies.items():
                for criterion, entry in criteria.items():
                    for source, by_model in errors.items():
                        error = abs(getattr(entry, f"{source}_error_pct"))
                        if by_model.setdefault(entry.channels(), error) != error:
                            raise at(f"{budget}.{strategy}.{criterion}.{source}_error_pct differs from another "
                                     "model's with its channels")  # fmt: skip
        if len(errors["table"]) != self.configurations:
            raise at(f"configurations={self.configurations}, but it holds {len(errors['table'])} distinct models")
        for source, by_model in errors.items():
            values = list(by_model.values()) or [0.0]
            for stat, expected in (("mean", sum(values) / len(values)), ("max", max(values))):
                key = f"{source}_{stat}_abs_error_pct"
                if not close(getattr(self, key), expected, 1e-6):
                    raise at(f"{key} is not its models' {stat} absolute error")
        return self


class Loss(Interval):
    """The study's loss of a kept score (unpruned less shipped, fine-tuned alike): a paired t interval,
    unclipped as in metrics.json's comparisons (with two seeds it can pass ±100); one seed: no interval."""

    mean: Points


StudyLoss = create_model("StudyLoss", __base__=Document, **{score: (Loss, ...) for score in KEPT_SCORES})
LAYER_KEYS = ("k", "channels", "study_recal_bacc_at_k", "study_recal_bacc_unpruned")
NETWORK_KEYS = ("budget", "within_points", "slower_skipped", "shipped_unpruned", "study_loss",
                "study_finetuned_recal_bacc", "study_finetuned_recal_bacc_unpruned")  # fmt: skip


class Efficiency(Document):
    """metrics/efficiency.json as export writes it: what it ships (the single-layer model at K, or the whole
    network at a budget), both models' facts, their ratios, the ONNX check and the latency prediction. DVC
    metrics hold numbers only: the criterion, strategy, budget target and CPU are named in a key set to 1,
    and each layer's kept channels in `channels_<layer>`."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, Count] = Field(init=False)
    extra_prefixes = (*FLAGS, "channels_")
    seed: Whole
    score_loss_points: Points
    # The single-layer export (export.budget: none).
    k: Whole | None = None
    channels: Count | None = None
    study_recal_bacc_at_k: Score | None = None
    study_recal_bacc_unpruned: Score | None = None
    # The whole-network export.
    budget: float | None = Field(None, gt=0, le=1, description="a share of the FLOPs, in (0, 1]")
    within_points: Flag | None = None
    slower_skipped: Whole | None = None
    shipped_unpruned: Flag | None = None
    study_loss: StudyLoss | None = None
    study_finetuned_recal_bacc: Score | None = None
    study_finetuned_recal_bacc_unpruned: Score | None = None
    # Both.
    unpruned: Side
    exported: Side
    ratio: Ratio
    threads: Count
    onnx_opset: int = Field(ge=7, description="an integer >= 7")
    onnxruntime_max_abs_logit_diff: float = Field(
        ge=0, le=ONNX_TOLERANCE, description=f"a number in [0, {ONNX_TOLERANCE:g}]"
    )
    latency_prediction: LatencyPrediction

    def named(self, flag: str) -> list[str]:
        """The names set in `<flag><name>: 1` keys (criterion_, strategy_, target_)."""
        return [key.removeprefix(flag) for key in self.model_extra or {} if key.startswith(flag)]

    def kept(self) -> dict[str, int]:
        """Each layer's kept channels (`channels_<layer>`), by the layer's metric key."""
        extra = self.model_extra or {}
        return {key.removeprefix("channels_"): value for key, value in extra.items() if key.startswith("channels_")}

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> Efficiency:
        for key, value in (self.model_extra or {}).items():
            if key.startswith(FLAGS) and value != 1:
                raise rule(f"{key}={value} is invalid; allowed: 1 (the name set in its key)")
        if len(self.named("criterion_")) != 1:
            raise rule("it does not name one criterion (one criterion_<name> key set to 1)")
        targets = self.named("target_")
        if len(targets) != 1 or targets[0] not in ("flops", "latency"):
            raise rule("it does not name one budget target (one target_flops or target_latency key set to 1)")
        for key, top in RATIOS.items():
            expected = getattr(self.unpruned, top) / getattr(self.exported, top)
            value = getattr(self.ratio, key)
            if not math.isclose(value, expected, rel_tol=1e-12):
                raise rule(f"ratio.{key}={value} is not its own measurements' ratio {expected}")
        whole_network = self.budget is not None
        shape = NETWORK_KEYS if whole_network else LAYER_KEYS
        what = "the whole network at a budget" if whole_network else "the single-layer model"
        for key in shape:
            if getattr(self, key) is None:
                raise rule(f"{key} is missing: efficiency.json of {what} has {', '.join(shape)}")
        against = context(info)
        if whole_network:
            self._network(against.get("implied"), against.get("metrics"))
        else:
            self._layer(against.get("implied"), against.get("band"), against.get("metrics"))
        implied: Implied | None = against.get("implied")
        if implied is not None:
            if targets[0] != implied.target:
                raise rule(f"target_{targets[0]}, but budget.target={implied.target}")
            if self.seed != implied.seeds[0]:
                raise rule(f"seed={self.seed}, but the model shipped is seeds[0]={implied.seeds[0]}'s")
        return self

    def _layer(self, implied: Implied | None, band: pd.DataFrame | None, metrics: dict | None) -> None:
        """The single-layer study's export (export.budget: none): K of P, the study's scores at K."""
        criterion = self.named("criterion_")[0]
        k, channels = self.k, self.channels
        at_k, unpruned = self.study_recal_bacc_at_k, self.study_recal_bacc_unpruned
        assert k is not None and channels is not None and at_k is not None and unpruned is not None
        if k > channels - 1:
            raise rule(f"k={k} is outside [0, channels-1={channels - 1}]")
        if not close(self.score_loss_points, unpruned - at_k, 1e-9):
            raise rule(
                f"score_loss_points={self.score_loss_points} is not study_recal_bacc_unpruned - study_recal_bacc_at_k"
            )
        if implied is not None:
            if implied.export_budget != "none":
                raise rule(f"it ships the single-layer model, but export.budget={implied.export_budget!r}")
            if channels != implied.channels:
                raise rule(f"channels={channels}, but model.arch has P={implied.channels}")
            if criterion not in implied.ranked or implied.export_criterion not in ("auto", criterion):
                raise rule(f"criterion {shown(criterion)} is not one export.criterion and prune.criteria allow")
            if implied.export_k not in ("auto", k) or k not in implied.ks:
                raise rule(f"k={k} is not one export.k and the sweep allow")
        if band is not None:
            rows = band[band["criterion"] == criterion].set_index("k")["mean"]
            for key, value, at_k_of in (("study_recal_bacc_at_k", at_k, k), ("study_recal_bacc_unpruned", unpruned, 0)):
                if at_k_of not in rows.index or not close(value, float(rows[at_k_of]), 1e-9):
                    raise rule(f"{key}={value} is not the study's recal_bacc.csv mean for {criterion} at K={at_k_of}")
        if metrics is not None:
            baseline = metrics["baseline_recal_bacc"]["mean"]
            # The band prints 4 decimals (5e-5) of means over 6-decimal sweep values (5e-7).
            if not close(unpruned, baseline, 6e-5):
                raise rule(f"study_recal_bacc_unpruned={unpruned} is not the study's baseline {baseline:.4f}")

    def _network(self, implied: Implied | None, metrics: dict | None) -> None:
        """The whole-network export: a budget and strategy of the study, each layer's kept channels, the
        study's fine-tuned scores whose difference is the loss."""
        criterion, strategies = self.named("criterion_")[0], self.named("strategy_")
        budget, shipped, unpruned = (
            self.budget,
            self.study_finetuned_recal_bacc,
            self.study_finetuned_recal_bacc_unpruned,
        )
        assert budget is not None and shipped is not None and unpruned is not None
        if len(strategies) != 1:
            raise rule("it does not name one strategy (one strategy_<name> key set to 1)")
        if not close(self.score_loss_points, unpruned - shipped, 1e-9):
            raise rule("score_loss_points is not study_finetuned_recal_bacc_unpruned - study_finetuned_recal_bacc")
        strategy = strategies[0]
        if implied is not None:
            if implied.export_budget == "none":
                raise rule("it ships the whole-network model, but export.budget is none")
            if set(self.kept()) != {metric_key(name) for name in implied.layers}:
                raise rule(f"its channels_<layer> keys are not model.arch's layers ({', '.join(implied.layers)})")
            if round(budget, 6) not in implied.budgets or implied.export_budget not in ("auto", budget):
                raise rule(f"budget={budget} is not one export.budget and budget.flops allow")
            if strategy not in implied.strategies or implied.export_strategy not in ("auto", strategy):
                raise rule(f"strategy {shown(strategy)} is not one export.strategy and budget.strategies allow")
            if criterion not in implied.budget_criteria or implied.export_criterion not in ("auto", criterion):
                raise rule(f"criterion {shown(criterion)} is not one export.criterion and budget.criteria allow")
        if metrics is not None:
            study = metrics["budget"]
            entry = study.get(strategy, {}).get(criterion, {}).get(budget_key(budget))
            if entry is None or not close(shipped, entry["finetuned_recal_bacc"]["mean"], 1e-9):
                raise rule("study_finetuned_recal_bacc is not metrics.json's mean for its budget, strategy, criterion")
            if not close(unpruned, study["unpruned"]["finetuned_recal_bacc"]["mean"], 1e-9):
                raise rule("study_finetuned_recal_bacc_unpruned is not metrics.json's unpruned fine-tuned mean")


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
    check_document(path, efficiency, Efficiency, "export", {"implied": implied, "band": band, "metrics": metrics})


def check_latency_prediction(path: Path | str, prediction: Any) -> None:
    """efficiency.json's `latency_prediction` on its own (`stages/export.py` checks what it writes)."""
    check_document(path, prediction, LatencyPrediction, "export")
