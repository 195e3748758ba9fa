"""A replicate's `summary.json` (sweep_prune) against its own sweep.csv: the baselines are the sweep's K=0
row, every mean over K and every milestone is the sweep's, the criteria are the sweep's, and the accuracies
are whole test samples (`n_test`); across seeds, the summaries pair (the same P, criteria and keys)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from prunelab.checks.implied import Implied
from prunelab.checks.reader import DocumentReader, close, exact_keys, whole_samples
from prunelab.checks.text import refusal, shown
from prunelab.scoring.milestones import WITHIN_POINTS, max_k_within, milestone_ks
from prunelab.scoring.names import EXTRA_SCORES, SCORES, over_k

if TYPE_CHECKING:
    import pandas as pd

# Older summaries name two means over K as the study did before the score vocabulary (rendered docs accept both).
OLD_NAMES = {over_k("acc"): "auc", over_k("bacc"): "bacc_auc"}
CSV_ROUNDING = 1e-6  # sweep.csv prints 6 decimals: a value read back is within 5e-7 of the summary's

SUMMARY_KEYS = {
    "channels", "n_test", "baseline_accuracy", "baseline_balanced_accuracy", "majority_floor", "balanced_floor",
    "ranking_split_is_test", "n_calibration", "criteria", *(f"baseline_{s}" for s in EXTRA_SCORES),
}  # fmt: skip


def check_summary(
    path: Path | str, summary: Any, sweep: pd.DataFrame | None = None, implied: Implied | None = None
) -> None:
    """A replicate's summary.json, and (given its sweep table) that it summarises that sweep."""
    doc = DocumentReader(path, "sweep_prune")
    summary = doc.mapping(summary, "")
    exact_keys(doc, summary, SUMMARY_KEYS, "")
    channels = int(doc.number(summary, "channels", integer=True, low=1))
    if implied is not None and channels != implied.channels:
        raise doc.refuse(f"channels={channels}, but model.arch has P={implied.channels}")
    n_test = int(doc.number(summary, "n_test", integer=True, low=1))
    baselines = {score: doc.number(summary, f"baseline_{score}", low=0.0, high=100.0) for score in EXTRA_SCORES}
    baselines["acc"] = doc.number(summary, "baseline_accuracy", low=0.0, high=100.0)
    baselines["bacc"] = doc.number(summary, "baseline_balanced_accuracy", low=0.0, high=100.0)
    floor = doc.number(summary, "majority_floor", low=0.0, high=100.0)
    chance = doc.number(summary, "balanced_floor", low=0.0, high=100.0, low_open=True)
    if implied is not None and implied.n_classes and not close(chance, 100.0 / implied.n_classes, 1e-9):
        raise doc.refuse(f"balanced_floor={chance}, but the data has {implied.n_classes} classes")
    for key, value in (("baseline_accuracy", baselines["acc"]), ("majority_floor", floor)):
        if not whole_samples(value, n_test):
            raise doc.refuse(f"{key}={value} is no whole number of the n_test={n_test} test samples")
    split_is_test = doc.number(summary, "ranking_split_is_test", integer=True, low=0, high=1)
    if implied is not None and bool(split_is_test) != implied.ranking_split_is_test:
        raise doc.refuse(f"ranking_split_is_test={split_is_test} disagrees with activations.split")
    n_calibration = doc.number(summary, "n_calibration", integer=True, low=1)
    if implied is not None and n_calibration > implied.max_calibration:
        raise doc.refuse(f"n_calibration={n_calibration} exceeds recalibrate.max_samples={implied.max_calibration}")
    criteria = doc.mapping(doc.get(summary, "criteria"), "criteria")
    if implied is not None and list(criteria) != list(implied.swept):
        raise doc.refuse(f"its criteria {', '.join(map(shown, criteria))} are not the ones params.yaml sweeps")
    for name, entry in criteria.items():
        _check_summary_entry(doc, name, entry, criteria, channels)
    if sweep is not None:
        _against_sweep(doc, summary, baselines, criteria, sweep, channels)


def summary_entry_keys(name: str, criteria: dict, channels: int) -> set[str]:
    keys = {over_k(score) for score in SCORES} | {"max_k_within_1pt", *milestone_ks(channels)}
    if "random" in criteria and name != "random":
        keys.add("beats_random_frac")
    return keys


def _check_summary_entry(doc: DocumentReader, name: str, entry: Any, criteria: dict, channels: int) -> None:
    where = f"criteria.{name}."
    entry = doc.mapping(entry, where.rstrip("."))
    expected = summary_entry_keys(name, criteria, channels)
    present = {next((new for new, old in OLD_NAMES.items() if old == key), key) for key in entry}
    if present != expected:
        missing, extra = sorted(expected - present), sorted(present - expected)
        detail = f"missing {', '.join(missing)}" if missing else f"unexpected {', '.join(map(shown, extra))}"
        raise doc.refuse(f"{where.rstrip('.')} is not a summary entry ({detail})")
    for key in entry:
        if key == "max_k_within_1pt":
            doc.number(entry, key, where, low=0, high=channels - 1, integer=True)
        elif key == "beats_random_frac":
            doc.number(entry, key, where, low=0.0, high=1.0)
        else:
            doc.number(entry, key, where, low=0.0, high=100.0)


def _against_sweep(
    doc: DocumentReader, summary: dict, baselines: dict, criteria: dict, sweep: pd.DataFrame, channels: int
) -> None:
    """The summary's numbers are its sweep's: baselines, means over K, milestones, max K within 1 point."""
    swept = list(dict.fromkeys(sweep["criterion"]))
    if list(criteria) != swept:
        raise doc.refuse("its criteria are not its sweep.csv's")
    groups = dict(tuple(sweep.groupby("criterion", sort=False)))
    first = groups[swept[0]]
    for score, value in baselines.items():
        if not close(value, float(first[score].iloc[0]), CSV_ROUNDING):
            raise doc.refuse(f"the baseline {score} {value} is not its sweep's K=0 value {first[score].iloc[0]}")
    n_pruned = 0
    for name, entry in criteria.items():
        rows = groups[name]
        ks, acc = rows["k"].to_numpy(), rows["acc"].to_numpy()
        n_pruned = int((ks >= 1).sum())
        for key, value in entry.items():
            score = next((s for s in SCORES if key in (over_k(s), OLD_NAMES.get(over_k(s)))), None)
            if score is not None:
                expected = float(rows[score].mean())
            elif key.startswith("acc_at_"):
                k = milestone_ks(channels)[key]
                if k not in set(ks.tolist()):
                    raise doc.refuse(f"criteria.{name}.{key}: its sweep lacks K={k}")
                expected = float(acc[list(ks).index(k)])
            elif key == "max_k_within_1pt":
                # Within 1 point, decided on values printed with 6 decimals: either side of the edge.
                loose = max_k_within(ks, acc, baselines["acc"], WITHIN_POINTS + CSV_ROUNDING)
                strict = max_k_within(ks, acc, baselines["acc"], WITHIN_POINTS - CSV_ROUNDING)
                if not strict <= value <= loose:
                    raise doc.refuse(f"criteria.{name}.{key}={value} is not its sweep's")
                continue
            else:  # beats_random_frac: a share of the pruned K values
                if n_pruned and not close(value * n_pruned, round(value * n_pruned), 1e-6):
                    raise doc.refuse(f"criteria.{name}.{key}={value} is no share of the {n_pruned} pruned K values")
                continue
            if not close(value, expected, CSV_ROUNDING):
                raise doc.refuse(f"criteria.{name}.{key}={value} is not its sweep's ({expected:.6f})")


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
