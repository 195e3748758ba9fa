"""One replicate's results: from per-order scores to the per-K table and the replicate's scalars.

Torch-free (NumPy and pandas): the per-K curves of every criterion, and `summary.json`'s scalars,
named after the scores of `prunelab.scoring.scores` (`bacc_over_k` is the mean balanced accuracy over K).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

# Re-exported from the leaves where they live (the checks and the export read them there).
from prunelab.scoring.milestones import WITHIN_POINTS as WITHIN_POINTS
from prunelab.scoring.milestones import max_k_within, milestone_ks
from prunelab.scoring.milestones import resolve_ks as resolve_ks
from prunelab.scoring.names import EXTRA_SCORES, over_k

BEAT_RANDOM_STDS = 2.0  # "beats random" means more than this many random std above the random mean


@dataclass(frozen=True)
class Curve:
    """Accuracy and balanced accuracy per K, in %; std is over random orders (None otherwise).
    `extra` holds the other scores per K (roc_auc, recal_acc, recal_bacc), means over orders."""

    acc: np.ndarray
    bacc: np.ndarray
    acc_std: np.ndarray | None = None
    bacc_std: np.ndarray | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)


def curve_from_scores(scores: dict[str, np.ndarray]) -> Curve:
    """scores: name → R×len(ks) (acc and bacc, optionally EXTRA_SCORES). One order gives the
    curve; several give the mean (and, for acc and bacc, the std over orders)."""
    acc, bacc = scores["acc"], scores["bacc"]
    extra = {name: scores[name].mean(0) for name in EXTRA_SCORES if name in scores}
    if len(acc) == 1:
        return Curve(acc[0], bacc[0], extra=extra)
    return Curve(acc.mean(0), bacc.mean(0), acc.std(0), bacc.std(0), extra=extra)


def long_table(ks: list[int], curves: dict[str, Curve]) -> pd.DataFrame:
    """The curves in long format (k, criterion, acc, bacc, and the extra scores; the random
    criterion's values are the mean over its orders): one table shape for any choice of criteria."""
    parts = [
        pd.DataFrame({"k": ks, "criterion": name, "acc": c.acc, "bacc": c.bacc, **c.extra})
        for name, c in curves.items()
    ]
    return pd.concat(parts, ignore_index=True)


def beats_random_fraction(ks: np.ndarray, bacc: np.ndarray, random: Curve) -> float:
    """Share of K >= 1 where balanced accuracy exceeds the random mean by > 2 random std."""
    pruned = ks >= 1
    threshold = random.bacc + BEAT_RANDOM_STDS * (random.bacc_std if random.bacc_std is not None else 0.0)
    return float(np.mean(bacc[pruned] > threshold[pruned])) if pruned.any() else 0.0


def summary_metrics(
    ks: list[int], curves: dict[str, Curve], channels: int, majority_floor: float, n_classes: int, n_test: int
) -> dict:
    """Scalars only (DVC drops lists); nested dicts flatten to criteria.<name>.<metric>."""
    ks_arr = np.asarray(ks)
    first = next(iter(curves.values()))
    baseline_acc, baseline_bacc = float(first.acc[0]), float(first.bacc[0])
    random = curves.get("random")
    per_criterion = {}
    for name, curve in curves.items():
        entry = {
            over_k("acc"): float(curve.acc.mean()),
            over_k("bacc"): float(curve.bacc.mean()),
            "max_k_within_1pt": max_k_within(ks_arr, curve.acc, baseline_acc),
        }
        for key, k in milestone_ks(channels).items():
            entry[key] = float(curve.acc[ks.index(k)])
        for score in EXTRA_SCORES:
            if score in curve.extra:
                entry[over_k(score)] = float(curve.extra[score].mean())
        if random is not None and name != "random":
            entry["beats_random_frac"] = beats_random_fraction(ks_arr, curve.bacc, random)
        per_criterion[name] = entry
    baselines = {f"baseline_{score}": float(values[0]) for score, values in first.extra.items()}
    return {
        "channels": channels,
        "n_test": n_test,
        "baseline_accuracy": baseline_acc,
        "baseline_balanced_accuracy": baseline_bacc,
        **baselines,
        "majority_floor": majority_floor,
        "balanced_floor": 100.0 / n_classes,
        "criteria": per_criterion,
    }
