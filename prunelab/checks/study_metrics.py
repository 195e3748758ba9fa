"""The study's `metrics.json` (aggregate), read through `StudyMetrics` as plot, export and headline read it:
every interval holds its mean and stays in its range ([0, 100] for a score, [0, 1] for a share, `clipped: 1`
only where an end is a bound), every number is finite (`mde` may be infinite), and the seeds, P, criteria,
margins, layers, strategies and budgets are params.yaml's."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, create_model, field_validator, model_validator

from prunelab.checks.implied import Implied
from prunelab.checks.reader import (
    Count,
    Document,
    Interval,
    Margin,
    Score,
    Share,
    Whole,
    check_document,
    context,
    present_if,
)
from prunelab.checks.summary import MILESTONES, RunFacts, score_field
from prunelab.messages import detail, rule, shown
from prunelab.models.records import metric_key
from prunelab.network.choice import KEPT_SCORES, budget_key
from prunelab.scoring.names import EXTRA_SCORES, SCORES, over_k
from prunelab.study.names import BUDGET_SCORES, PAIRED_SCORES, SENSITIVITY_SCORES, VERDICTS

SCORE_BOUNDS = (0.0, 100.0)  # a score, in percent: its mean and interval stay inside
SHARE_BOUNDS = (0.0, 1.0)  # a share (`beats_random_frac`, `flops_kept`, `params_kept`): the same


class ScoreInterval(Interval):
    bounds = SCORE_BOUNDS
    mean: Score
    ci_low: Score | None = None
    ci_high: Score | None = None


class ShareInterval(Interval):
    bounds = SHARE_BOUNDS
    mean: Share
    ci_low: Share | None = None
    ci_high: Share | None = None


class Comparison(Interval):
    """A paired comparison over seeds (`prunelab.study.verdicts`): the mean difference and its interval
    (no range: a difference of points), the seeds it wins, the verdict at the margin, the TOST p-value,
    and (where the study sizes it) the smallest detectable effect and the seeds it would need."""

    wins: Whole
    verdict: Literal[VERDICTS] = Field(description=", ".join(VERDICTS))
    tost_p: Share
    margin: Margin
    mde: float | None = Field(None, ge=0, allow_inf_nan=True, description="a number >= 0, or Infinity")
    seeds_needed: int | None = Field(None, ge=2, description="an integer >= 2")

    @model_validator(mode="after")
    def _sized_together(self) -> Comparison:
        if (self.mde is None) != (self.seeds_needed is None):
            raise detail("has one of mde and seeds_needed only")
        return self


def _all_nan(value: Any) -> bool:
    numbers = [v for k, v in value.items() if k != "clipped"] if isinstance(value, dict) else []
    return bool(numbers) and all(isinstance(v, float) and math.isnan(v) for v in numbers)


class FinetunePoint(Document):
    """One fine-tuned point of a criterion (`finetune_<point>`): its K, the scores as pruned (None where
    the sweep lacks K: aggregate writes NaN there) and fine-tuned, and (paired with fine-tuned random) the
    comparison with random."""

    k: Count
    plain_bacc: ScoreInterval | None
    recal_bacc: ScoreInterval | None
    finetuned_bacc: ScoreInterval
    plain_roc_auc: ScoreInterval | None
    finetuned_roc_auc: ScoreInterval
    finetuned_acc: ScoreInterval
    finetuned_bacc_vs_random: Comparison | None = None

    AS_PRUNED: ClassVar[tuple[str, ...]] = ("plain_bacc", "recal_bacc", "plain_roc_auc")

    @field_validator(*AS_PRUNED, mode="before")
    @classmethod
    def _unswept(cls, value: Any) -> Any:
        return None if _all_nan(value) else value


class _CriterionBase(Document):
    """A criterion's scalars over seeds, their comparisons with random, and its fine-tuned points."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, FinetunePoint] = Field(init=False)
    extra_prefixes = ("finetune_",)

    def points(self) -> dict[str, FinetunePoint]:
        return dict(self.model_extra or {})


CriterionMetrics = create_model(
    "CriterionMetrics",
    __base__=_CriterionBase,
    **{over_k(score): (ScoreInterval, score_field(over_k(score))) for score in SCORES},
    max_k_within_1pt=(Interval, ...),
    **{name: (ScoreInterval, ...) for name in MILESTONES},
    beats_random_frac=(ShareInterval | None, None),
    **{f"{over_k(score)}_vs_random": (Comparison | None, None) for score in PAIRED_SCORES},
)
SensitivityUnpruned = create_model(
    "SensitivityUnpruned", __base__=Document, **{score: (ScoreInterval, ...) for score in SENSITIVITY_SCORES}
)
SensitivityCriterion = create_model(
    "SensitivityCriterion",
    __base__=Document,
    **{f"mean_{score}_over_shares": (ScoreInterval, ...) for score in SENSITIVITY_SCORES},
    **{f"mean_{score}_over_shares_vs_random": (Comparison | None, None) for score in SENSITIVITY_SCORES},
)


class LayerSensitivity(Document):
    """A layer's sensitivity: its unpruned scores, and per criterion each score's mean over the shares."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, SensitivityCriterion] = Field(init=False)
    unpruned: SensitivityUnpruned

    def criteria(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


BudgetScores = create_model(
    "BudgetScores", __base__=Document, **{score: (ScoreInterval, ...) for score in BUDGET_SCORES}
)
BudgetCell = create_model(
    "BudgetCell",
    __base__=BudgetScores,
    flops_kept=(ShareInterval, ...),
    params_kept=(ShareInterval, ...),
    **{f"{score}_vs_unpruned": (Comparison, ...) for score in KEPT_SCORES},
    finetuned_recal_bacc_vs_random=(Comparison | None, None),
)


class BudgetMetrics(Document):
    """The budgets: the unpruned model fine-tuned, and per strategy, criterion and FLOPs budget a cell."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, dict[str, dict[str, BudgetCell]]] = Field(init=False)
    unpruned: BudgetScores

    def strategies(self) -> dict[str, dict[str, dict[str, Any]]]:
        return dict(self.model_extra or {})


Margins = create_model(
    "Margins",
    __base__=Document,
    **{score: (Margin, ...) for score in SCORES},
)


class _StudyBase(RunFacts):
    """metrics/metrics.json as aggregate writes it: the replicates' facts (`RunFacts`), then the study's."""

    n_seeds: Count
    confidence: float = Field(gt=0, le=1, description="a share, in (0, 1]")
    margins: Margins
    criteria: dict[str, CriterionMetrics] = Field(description="a mapping of each swept criterion to its scalars")
    sensitivity: dict[str, LayerSensitivity] = Field(description="a mapping of each layer to its sensitivity")
    budget: BudgetMetrics

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> _StudyBase:
        for where, comparison in _comparisons(self, ""):
            if comparison.wins > self.n_seeds:
                raise rule(f"{where}.wins={comparison.wins} is outside [0, n_seeds={self.n_seeds}]")
        with_random = "random" in self.criteria
        for name, entry in self.criteria.items():
            beside = with_random and name != "random"
            for key in ("beats_random_frac", *(f"{over_k(s)}_vs_random" for s in PAIRED_SCORES)):
                present_if(beside, getattr(entry, key), f"criteria.{name}.{key}")
        for layer, entry in self.sensitivity.items():
            beside_layer = "random" in entry.criteria()
            for name, scores in entry.criteria().items():
                for score in SENSITIVITY_SCORES:
                    key = f"mean_{score}_over_shares_vs_random"
                    present_if(
                        beside_layer and name != "random", getattr(scores, key), f"sensitivity.{layer}.{name}.{key}"
                    )
        for strategy, criteria in self.budget.strategies().items():
            for criterion, budgets in criteria.items():
                for key, cell in budgets.items():
                    where = f"budget.{strategy}.{criterion}.{key}.finetuned_recal_bacc_vs_random"
                    present_if(
                        "random" in criteria and criterion != "random", cell.finetuned_recal_bacc_vs_random, where
                    )
        implied: Implied | None = context(info).get("implied")
        if implied is not None:
            self._as_params_imply(implied)  # alone, an as-pruned NaN may be a K the sweep lacks
        return self

    def _as_params_imply(self, implied: Implied) -> None:
        if self.n_seeds != len(implied.seeds):
            raise rule(f"n_seeds={self.n_seeds}, but params.yaml has {len(implied.seeds)} seeds")
        if self.channels != implied.channels:
            raise rule(f"channels={self.channels}, but model.arch has P={implied.channels}")
        if list(self.criteria) != list(implied.swept):
            raise rule(f"its criteria {', '.join(map(shown, self.criteria))} are not the ones params.yaml sweeps")
        if self.margins.model_dump() != dict(implied.margins):
            raise rule("its margins are not study.margins")
        for name, entry in self.criteria.items():
            tuned = {f"finetune_{point}": k for c, point, k in implied.finetuned if c == name}
            _same_keys(entry.points(), tuned, f"criteria.{name}", "fine-tuned points")
            for key, point in entry.points().items():
                swept = point.k in implied.ks
                missing = [f for f, v in zip(FinetunePoint.AS_PRUNED, _as_pruned(point), strict=True) if v is None]
                if swept and missing:
                    raise rule(f"criteria.{name}.{key}.{missing[0]} is NaN, but the sweep scores K={point.k}")
        _same_keys(self.sensitivity, {metric_key(name): None for name in implied.layers}, "sensitivity", "layers")
        for layer, entry in self.sensitivity.items():
            _same_keys(
                entry.criteria(), dict.fromkeys(implied.sensitivity_criteria), f"sensitivity.{layer}", "criteria"
            )
        strategies = self.budget.strategies()
        _same_keys(strategies, dict.fromkeys(implied.strategies), "budget", "strategies")
        for strategy, criteria in strategies.items():
            _same_keys(criteria, dict.fromkeys(implied.budget_criteria), f"budget.{strategy}", "criteria")
            for criterion, budgets in criteria.items():
                expected = {budget_key(b): None for b in implied.budgets}
                _same_keys(budgets, expected, f"budget.{strategy}.{criterion}", "FLOPs budgets")


StudyMetrics = create_model(
    "StudyMetrics",
    __base__=_StudyBase,
    **{f"baseline_{name}": (ScoreInterval, ...) for name in ("accuracy", "balanced_accuracy", *EXTRA_SCORES)},
)


def _as_pruned(point: FinetunePoint) -> list[Any]:
    return [getattr(point, key) for key in FinetunePoint.AS_PRUNED]


def _same_keys(found: dict, expected: dict, where: str, what: str) -> None:
    """A mapping of names holds exactly params.yaml's names."""
    missing, extra = [k for k in expected if k not in found], [k for k in found if k not in expected]
    if missing or extra:
        problem = f"lacks {missing[0]}" if missing else f"has {shown(extra[0])}"
        raise rule(f"{where} {problem}: its {what} are not the ones params.yaml implies")


def _comparisons(node: Any, where: str) -> Iterator[tuple[str, Comparison]]:
    """Every comparison in a document, with its dotted key."""
    if isinstance(node, Comparison):
        yield where, node
    elif isinstance(node, BaseModel):
        for key, value in node:  # its fields, then its extra keys
            yield from _comparisons(value, f"{where}.{key}" if where else key)
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _comparisons(value, f"{where}.{key}")


def check_study_metrics(path: Path | str, metrics: Any, implied: Implied | None = None) -> None:
    """metrics/metrics.json as aggregate writes it (and as plot and headline read it): the keys,
    every interval holding its mean, finite numbers, and (given params) the seeds, P, criteria,
    margins, layers, strategies, budgets and fine-tuned points params.yaml implies."""
    check_document(path, metrics, StudyMetrics, "aggregate", {"implied": implied})
