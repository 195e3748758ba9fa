"""A replicate's `summary.json` (sweep_prune), read through `Summary`, against its own sweep.csv: the
baselines are the sweep's K=0 row, every mean over K and every milestone is the sweep's, the criteria are
the sweep's, and the accuracies are whole test samples (`n_test`); across seeds, the summaries pair (the
same P, criteria and keys)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import AliasChoices, Field, ValidationInfo, create_model, model_validator

from prunelab.checks.implied import Implied
from prunelab.checks.reader import (
    Count,
    Document,
    Flag,
    Floor,
    Score,
    Share,
    Whole,
    check_document,
    close,
    context,
    present_if,
    whole_samples,
)
from prunelab.checks.text import refusal
from prunelab.messages import rule, shown
from prunelab.scoring.milestones import WITHIN_POINTS, max_k_within, milestone_ks
from prunelab.scoring.names import EXTRA_SCORES, SCORES, over_k

if TYPE_CHECKING:
    import pandas as pd

# Older summaries name two means over K as the study did before the score vocabulary (rendered docs accept both).
OLD_NAMES = {over_k("acc"): "auc", over_k("bacc"): "bacc_auc"}
MILESTONES = tuple(milestone_ks(1))  # acc_at_quarter, ...: the same names for every P
CSV_ROUNDING = 1e-6  # sweep.csv prints 6 decimals: a value read back is within 5e-7 of the summary's


def score_field(name: str) -> Any:
    """A mean over K's field, read under its older name too."""
    return Field(validation_alias=AliasChoices(name, OLD_NAMES[name])) if name in OLD_NAMES else ...


SummaryEntry = create_model(
    "SummaryEntry",
    __base__=Document,
    __doc__="One criterion's scalars: its means over K, milestones, largest K within 1 point, and (beside "
    "random) the share of pruned K values where it beats random.",
    **{over_k(score): (Score, score_field(over_k(score))) for score in SCORES},
    max_k_within_1pt=(Whole, ...),
    **{name: (Score, ...) for name in MILESTONES},
    beats_random_frac=(Share | None, None),
)


class RunFacts(Document):
    """What a replicate's summary.json states about its model and test split, and the study's metrics.json
    repeats (as `prunelab.study.aggregate` copies it): P, the test samples, the majority and balanced floors,
    and whether the ranking split is the test split."""

    channels: Count
    n_test: Count
    majority_floor: Score
    balanced_floor: Floor
    ranking_split_is_test: Flag


class _SummaryBase(RunFacts):
    """summary.json as `prunelab.scoring.curves.summary_metrics` writes it (and sweep_prune completes it)."""

    baseline_accuracy: Score
    baseline_balanced_accuracy: Score
    n_calibration: Count
    criteria: dict[str, SummaryEntry] = Field(description="a mapping of each swept criterion to its scalars")

    def baselines(self) -> dict[str, float]:
        """Each score's value for the unpruned model, by score name."""
        extra = {score: getattr(self, f"baseline_{score}") for score in EXTRA_SCORES}
        return {"acc": self.baseline_accuracy, "bacc": self.baseline_balanced_accuracy, **extra}

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> _SummaryBase:
        for name, entry in self.criteria.items():
            beside_random = "random" in self.criteria and name != "random"
            present_if(beside_random, entry.beats_random_frac, f"criteria.{name}.beats_random_frac")
            if entry.max_k_within_1pt > self.channels - 1:
                raise rule(
                    f"criteria.{name}.max_k_within_1pt={entry.max_k_within_1pt} is outside [0, P-1={self.channels - 1}]"
                )
        for key in ("baseline_accuracy", "majority_floor"):
            if not whole_samples(getattr(self, key), self.n_test):
                raise rule(f"{key}={getattr(self, key)} is no whole number of the n_test={self.n_test} test samples")
        implied: Implied | None = context(info).get("implied")
        if implied is not None:
            self._as_params_imply(implied)
        sweep: pd.DataFrame | None = context(info).get("sweep")
        if sweep is not None:
            self._against_sweep(sweep)
        return self

    def _as_params_imply(self, implied: Implied) -> None:
        if self.channels != implied.channels:
            raise rule(f"channels={self.channels}, but model.arch has P={implied.channels}")
        if implied.n_classes and not close(self.balanced_floor, 100.0 / implied.n_classes, 1e-9):
            raise rule(f"balanced_floor={self.balanced_floor}, but the data has {implied.n_classes} classes")
        if bool(self.ranking_split_is_test) != implied.ranking_split_is_test:
            raise rule(f"ranking_split_is_test={self.ranking_split_is_test} disagrees with activations.split")
        if self.n_calibration > implied.max_calibration:
            raise rule(f"n_calibration={self.n_calibration} exceeds recalibrate.max_samples={implied.max_calibration}")
        if list(self.criteria) != list(implied.swept):
            raise rule(f"its criteria {', '.join(map(shown, self.criteria))} are not the ones params.yaml sweeps")

    def _against_sweep(self, sweep: pd.DataFrame) -> None:
        """The summary's numbers are its sweep's: baselines, means over K, milestones, max K within 1 point."""
        swept = list(dict.fromkeys(sweep["criterion"]))
        if list(self.criteria) != swept:
            raise rule("its criteria are not its sweep.csv's")
        groups = dict(tuple(sweep.groupby("criterion", sort=False)))
        first = groups[swept[0]]
        baselines = self.baselines()
        for score, value in baselines.items():
            if not close(value, float(first[score].iloc[0]), CSV_ROUNDING):
                raise rule(f"the baseline {score} {value} is not its sweep's K=0 value {first[score].iloc[0]}")
        for name, entry in self.criteria.items():
            rows = groups[name]
            ks, acc = rows["k"].to_numpy(), rows["acc"].to_numpy()
            expected = {over_k(score): float(rows[score].mean()) for score in SCORES}
            for key, k in milestone_ks(self.channels).items():
                if k not in set(ks.tolist()):
                    raise rule(f"criteria.{name}.{key}: its sweep lacks K={k}")
                expected[key] = float(acc[list(ks).index(k)])
            for key, value in expected.items():
                if not close(getattr(entry, key), value, CSV_ROUNDING):
                    raise rule(f"criteria.{name}.{key}={getattr(entry, key)} is not its sweep's ({value:.6f})")
            # Within 1 point, decided on values printed with 6 decimals: either side of the edge.
            loose = max_k_within(ks, acc, baselines["acc"], WITHIN_POINTS + CSV_ROUNDING)
            strict = max_k_within(ks, acc, baselines["acc"], WITHIN_POINTS - CSV_ROUNDING)
            if not strict <= entry.max_k_within_1pt <= loose:
                raise rule(f"criteria.{name}.max_k_within_1pt={entry.max_k_within_1pt} is not its sweep's")
            share, n_pruned = entry.beats_random_frac, int((ks >= 1).sum())  # a share of the pruned K values
            if share is not None and n_pruned and not close(share * n_pruned, round(share * n_pruned), 1e-6):
                raise rule(f"criteria.{name}.beats_random_frac={share} is no share of the {n_pruned} pruned K values")


Summary = create_model(
    "Summary", __base__=_SummaryBase, **{f"baseline_{score}": (Score, ...) for score in EXTRA_SCORES}
)


def check_summary(
    path: Path | str, summary: Any, sweep: pd.DataFrame | None = None, implied: Implied | None = None
) -> None:
    """A replicate's summary.json, and (given its sweep table) that it summarises that sweep."""
    check_document(path, summary, Summary, "sweep_prune", {"sweep": sweep, "implied": implied})


def check_summaries_agree(paths: dict[int, Path], summaries: dict[int, dict]) -> None:
    """Across seeds: the same P and the same criteria with the same keys (the study pairs them)."""
    seeds = list(summaries)
    first = summaries[seeds[0]]
    for seed in seeds[1:]:
        other = summaries[seed]
        same = other["channels"] == first["channels"] and list(other["criteria"]) == list(first["criteria"])
        same = same and all(set(other["criteria"][c]) == set(first["criteria"][c]) for c in first["criteria"])
        same = same and {k for k in other if k.startswith("baseline_")} == {
            k for k in first if k.startswith("baseline_")
        }
        if not same:
            raise refusal(paths[seed], f"its P, criteria or keys differ from seed {seeds[0]}'s summary", "sweep_prune")
