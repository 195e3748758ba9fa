"""The whole-network results over seeds: per-layer sensitivity and FLOPs budgets.

Pure functions over the stacked per-seed tables (`load_sensitivity`, `load_budgets`). As in the
single-layer study, a criterion is compared with random within each seed, and a pruned model
fine-tuned by a recipe with the unpruned model fine-tuned by the same recipe.
"""

from __future__ import annotations

import pandas as pd

from prunelab.models.records import metric_key
from prunelab.network.choice import budget_key
from prunelab.study.intervals import bounded_interval, score_entry, share_entry
from prunelab.study.names import BUDGET_SCORES, SENSITIVITY_SCORES  # the scores over seeds (re-exported)
from prunelab.study.verdicts import comparison


def _per_seed(rows: pd.DataFrame, score: str) -> pd.Series:
    return rows.groupby("seed", sort=True)[score].mean()


def sensitivity_metrics(table: pd.DataFrame, margins: dict[str, float]) -> dict:
    """{layer: {unpruned: {score: entry}, <criterion>: {mean_<score>_over_shares: entry,
    mean_<score>_over_shares_vs_random: comparison}}}: each criterion's mean over the shares
    removed (share 0 left out), over seeds, and paired with random within seeds."""
    out: dict = {}
    for layer, rows in table.groupby("layer", sort=False):
        unpruned = rows[rows["fraction"] == 0]
        first = unpruned["criterion"].iloc[0]
        entry: dict = {
            "unpruned": {
                s: score_entry(_per_seed(unpruned[unpruned["criterion"] == first], s)) for s in SENSITIVITY_SCORES
            }
        }
        pruned = rows[rows["fraction"] > 0]
        for criterion, own in pruned.groupby("criterion", sort=False):
            scores: dict = {}
            for score in SENSITIVITY_SCORES:
                mine = _per_seed(own, score)
                scores[f"mean_{score}_over_shares"] = score_entry(mine)
                if criterion != "random":
                    random = _per_seed(pruned[pruned["criterion"] == "random"], score)
                    scores[f"mean_{score}_over_shares_vs_random"] = comparison(
                        (mine - random).to_numpy(), margins[score]
                    )
            entry[criterion] = scores
        out[metric_key(str(layer))] = entry  # DVC flattens keys with dots: layer1.0.conv1 → layer1_0_conv1
    return out


def sensitivity_band(table: pd.DataFrame) -> pd.DataFrame:
    """Per layer, criterion, share and score: the mean over seeds and its 95 % interval."""
    rows = []
    for (layer, criterion, fraction), group in table.groupby(["layer", "criterion", "fraction"], sort=False):
        for score in SENSITIVITY_SCORES:
            mean, low, high = bounded_interval(group[score])
            rows.append(
                {"layer": layer, "criterion": criterion, "fraction": fraction, "k": int(group["k"].iloc[0])}
                | {"score": score, "mean": mean, "ci_low": low, "ci_high": high}
            )
    return pd.DataFrame(rows)


def budget_metrics(table: pd.DataFrame, margins: dict[str, float]) -> dict:
    """{unpruned: {score: entry}, <strategy>: {<criterion>: {flops_<pct>: {...}}}}: per budget,
    strategy and criterion the shares kept and every score over seeds; the fine-tuned ROC AUC and
    recalibrated balanced accuracy paired with the unpruned model fine-tuned alike (`..._vs_unpruned`:
    what the export's rule reads), and the latter with the same strategy's random (`..._vs_random`),
    within seeds."""
    base = table[table["strategy"] == "unpruned"].set_index("seed")
    out: dict = {"unpruned": {s: score_entry(base[s]) for s in BUDGET_SCORES}}
    pruned = table[table["strategy"] != "unpruned"]
    for (strategy, criterion, share), rows in pruned.groupby(["strategy", "criterion", "budget"], sort=False):
        rows = rows.set_index("seed").sort_index()
        entry: dict = {
            "flops_kept": share_entry(rows["flops_kept"]),  # shares: kept in [0, 1]
            "params_kept": share_entry(rows["params_kept"]),
        }
        entry |= {s: score_entry(rows[s]) for s in BUDGET_SCORES}
        for paired, margin in (("finetuned_roc_auc", "roc_auc"), ("finetuned_recal_bacc", "recal_bacc")):
            entry[f"{paired}_vs_unpruned"] = comparison(
                (rows[paired] - base[paired]).dropna().to_numpy(), margins[margin]
            )
        score = "finetuned_recal_bacc"
        if criterion != "random":
            random = pruned[
                (pruned["strategy"] == strategy) & (pruned["criterion"] == "random") & (pruned["budget"] == share)
            ]
            diffs = rows[score] - random.set_index("seed")[score]
            entry[f"{score}_vs_random"] = comparison(diffs.dropna().to_numpy(), margins["recal_bacc"])
        out.setdefault(strategy, {}).setdefault(criterion, {})[budget_key(share)] = entry
    return out


def speedups(table: pd.DataFrame) -> pd.DataFrame:
    """The budget rows with FLOPs speed-up (1 / flops_kept), params compression (1 / params_kept)
    and the fine-tuned recalibrated balanced accuracy minus the unpruned model's fine-tuned alike."""
    base = table[table["strategy"] == "unpruned"].set_index("seed")["finetuned_recal_bacc"]
    pruned = table[table["strategy"] != "unpruned"].copy()
    pruned["flops_speedup"] = 1.0 / pruned["flops_kept"]
    pruned["compression"] = 1.0 / pruned["params_kept"]
    pruned["vs_unpruned"] = pruned["finetuned_recal_bacc"] - pruned["seed"].map(base)
    return pruned.reset_index(drop=True)
