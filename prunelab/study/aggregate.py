"""The replicated study: per-seed results in, means with 95 % intervals and paired comparisons
with random out. Pure functions over tables; NumPy, pandas and scipy only.

A criterion is compared with random *within* a seed (criterion minus the mean of that seed's
random orders, on the same model), which removes the seed-to-seed spread of the unpruned model
from the comparison.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from prunelab.scoring.names import SCORES, over_k
from prunelab.study.intervals import CONFIDENCE, bounded_interval, interval_entry, score_entry, share_entry
from prunelab.study.names import PAIRED_SCORES  # the scores paired with random (re-exported)
from prunelab.study.verdicts import comparison

PAIRED = {over_k(score): f"mean {SCORES[score]} over K" for score in PAIRED_SCORES}
SCORE_OF = {over_k(score): score for score in PAIRED_SCORES}  # whose margin a comparison uses


def is_score(key: str) -> bool:
    """Whether a per-seed scalar is a score in percent (its interval is then kept in [0, 100])."""
    return key.endswith("_over_k") or key.startswith(("acc_at_", "baseline_")) or key in SCORES


def is_share(key: str) -> bool:
    """Whether a per-seed scalar is a share in [0, 1] (`beats_random_frac`: of the pruned K values);
    its interval is then kept in [0, 1]."""
    return key.endswith("_frac")


def scalar_entry(key: str, values: list[float]) -> dict[str, float]:
    """The mean and 95 % interval over seeds of the per-seed scalar `key`: kept in [0, 100] for a
    score and in [0, 1] for a share (`clipped: 1` when the t interval left the range), a plain t
    interval otherwise (a paired difference, `max_k_within_1pt`)."""
    if is_score(key):
        return score_entry(values)
    return share_entry(values) if is_share(key) else interval_entry(values)


def finetune_table(finetunes: pd.DataFrame, sweeps: pd.DataFrame) -> pd.DataFrame:
    """Per seed, fine-tuned criterion and K: balanced accuracy and ROC AUC as pruned (plain),
    with the decision re-fitted (recal), and after fine-tuning (finetuned). Empty when
    fine-tuning is off."""
    tuned = finetunes.rename(columns={"acc": "finetuned_acc", "bacc": "finetuned_bacc", "roc_auc": "finetuned_roc_auc"})
    plain = sweeps.rename(columns={"bacc": "plain_bacc", "roc_auc": "plain_roc_auc", "acc": "plain_acc"})
    columns = ["seed", "criterion", "k", "plain_acc", "plain_bacc", "plain_roc_auc", "recal_bacc"]
    return tuned.merge(plain[columns], on=["seed", "criterion", "k"], how="left")


def finetune_metrics(table: pd.DataFrame, margins: dict[str, float]) -> dict[str, dict]:
    """{criterion: {finetune_<point>: {k, score: {mean, ci_low, ci_high}}}} over seeds, and the
    fine-tuned balanced accuracy paired with fine-tuned random at the same K and seed. The
    point is the finetune.ks entry (half, three_quarters, k40), so every model has the same keys."""
    scores = ["plain_bacc", "recal_bacc", "finetuned_bacc", "plain_roc_auc", "finetuned_roc_auc", "finetuned_acc"]
    out: dict[str, dict] = {}
    for (criterion, point, k), group in table.groupby(["criterion", "point", "k"], sort=False):
        entry: dict = {"k": int(k), **{score: score_entry(group[score]) for score in scores}}
        random = table[(table["criterion"] == "random") & (table["k"] == k)].set_index("seed")["finetuned_bacc"]
        if criterion != "random" and len(random):
            diffs = (group.set_index("seed")["finetuned_bacc"] - random).dropna().to_numpy()
            entry["finetuned_bacc_vs_random"] = comparison(diffs, margins["bacc"])
        out.setdefault(criterion, {})[f"finetune_{point}"] = entry
    return out


def band_table(sweeps: pd.DataFrame, score: str) -> pd.DataFrame:
    """Per criterion and K: the mean of `score` over seeds and its 95 % t interval (kept in
    [0, 100]), and the shares of parameters and FLOPs kept at that K (when the sweeps have them)."""
    costs = [c for c in ("params_kept", "flops_kept") if c in sweeps.columns]
    rows = []
    for (criterion, k), group in sweeps.groupby(["criterion", "k"], sort=False):
        mean, low, high = bounded_interval(group[score])
        row = {"k": k, "criterion": criterion, "mean": mean, "ci_low": low, "ci_high": high}
        rows.append({**row, **{c: group[c].iloc[0] for c in costs}})
    return pd.DataFrame(rows)


def paired_differences(summaries: dict[int, dict], key: str) -> dict[str, np.ndarray]:
    """Per criterion: its `key` minus random's `key`, one value per seed (in seed order)."""
    seeds = list(summaries)
    criteria = summaries[seeds[0]]["criteria"]
    if "random" not in criteria:
        return {}
    return {
        name: np.array([summaries[s]["criteria"][name][key] - summaries[s]["criteria"]["random"][key] for s in seeds])
        for name in criteria
        if name != "random"
    }


def study_metrics(summaries: dict[int, dict], margins: dict[str, float]) -> dict:
    """The study's metrics.json: per criterion the mean and 95 % interval of every per-seed
    scalar (`scalar_entry`: scores kept in [0, 100], shares in [0, 1]), and the paired comparison
    with random with its verdict against `margins` (points per score, `study.margins`). Scalars
    and nested dicts only."""
    seeds = list(summaries)
    first = summaries[seeds[0]]

    def across(get: Callable[[dict], float], key: str = "") -> dict[str, float]:
        return scalar_entry(key, [get(summaries[s]) for s in seeds])

    criteria: dict[str, dict] = {}
    for name, scalars in first["criteria"].items():
        entry = {key: across(lambda s, n=name, k=key: s["criteria"][n][k], key) for key in scalars}
        criteria[name] = entry
    for key in PAIRED:
        if key not in next(iter(first["criteria"].values())):
            continue  # a summary from before the score existed
        for name, diffs in paired_differences(summaries, key).items():
            criteria[name][f"{key}_vs_random"] = comparison(diffs, margins[SCORE_OF[key]])
    return {
        "n_seeds": len(seeds),
        "confidence": CONFIDENCE,
        "channels": first["channels"],
        "n_test": first["n_test"],
        "majority_floor": across(lambda s: s["majority_floor"])["mean"],
        "balanced_floor": first["balanced_floor"],
        "ranking_split_is_test": first["ranking_split_is_test"],
        "margins": dict(margins),
        **{key: across(lambda s, k=key: s[k], key) for key in first if key.startswith("baseline_")},
        "criteria": criteria,
    }
