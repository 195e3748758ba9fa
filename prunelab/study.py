"""The replicated study: per-seed results in, means with 95 % intervals and paired
comparisons with random out. Pure functions over tables; NumPy, pandas and scipy only.

Intervals are two-sided Student t intervals across seeds (`scipy.stats.t`, n − 1 degrees of
freedom): each seed is one independent replicate of the whole lab (its own pairs,
initialisation, batch order and random orders). A criterion is compared with random
*within* a seed (criterion minus the mean of that seed's random orders, on the same model),
which removes the seed-to-seed spread of the unpruned model from the comparison.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from prunelab.errors import UserError
from prunelab.paths import seed_summary_path, sweep_path, train_curve_path

CONFIDENCE = 0.95
SCORES = {"bacc": "balanced accuracy", "acc": "accuracy"}
# The per-seed scalars compared with random, paired within each seed: mean score over K.
PAIRED = {"bacc_auc": "mean balanced accuracy over K", "auc": "mean accuracy over K"}


def t_interval(values: Iterable[float], confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(mean, low, high): the two-sided t interval for the mean of `values`.

    One value has no interval: (x, nan, nan). Equal values give a zero-width interval.
    """
    x = np.asarray(list(values), dtype=np.float64)
    mean = float(x.mean())
    if len(x) < 2:
        return mean, float("nan"), float("nan")
    sem = float(x.std(ddof=1) / np.sqrt(len(x)))
    if sem == 0.0:
        return mean, mean, mean
    low, high = scipy_stats.t.interval(confidence, df=len(x) - 1, loc=mean, scale=sem)
    return mean, float(low), float(high)


def interval_entry(values: Iterable[float]) -> dict[str, float]:
    """{mean, ci_low, ci_high} for metrics.json; the interval keys are left out for one seed
    (JSON has no NaN, and DVC shows a missing key as '-')."""
    mean, low, high = t_interval(values)
    entry = {"mean": mean}
    if not np.isnan(low):
        entry.update(ci_low=low, ci_high=high)
    return entry


# --------------------------------------------------------------------------- reading the replicates
def load_sweeps(seeds: list[int]) -> pd.DataFrame:
    """Every seed's sweep table (k, criterion, acc, bacc) with a `seed` column."""
    parts = []
    for seed in seeds:
        path = sweep_path(seed)
        if not path.exists():
            raise UserError(f"{path}: the sweep of seed {seed} is missing; run its stages (dvc repro)")
        try:
            table = pd.read_csv(path)
        except (ValueError, OSError) as err:
            raise UserError(f"{path}: unreadable sweep table ({type(err).__name__}); rerun sweep_prune") from None
        if not {"k", "criterion", "acc", "bacc"} <= set(table.columns):
            raise UserError(f"{path}: not a sweep table (needs k, criterion, acc, bacc); rerun sweep_prune")
        parts.append(table.assign(seed=seed))
    return pd.concat(parts, ignore_index=True)


def load_train_curves(seeds: list[int]) -> pd.DataFrame:
    """Every seed's training curve (epoch, train_loss, test_acc, test_bacc) with a `seed` column."""
    parts = []
    for seed in seeds:
        path = train_curve_path(seed)
        try:
            parts.append(pd.read_csv(path).assign(seed=seed))
        except (OSError, ValueError) as err:
            raise UserError(f"{path}: unreadable training curve ({type(err).__name__}); rerun train") from None
    return pd.concat(parts, ignore_index=True)


def load_summaries(seeds: list[int]) -> dict[int, dict]:
    summaries = {}
    for seed in seeds:
        path = seed_summary_path(seed)
        try:
            summaries[seed] = json.loads(path.read_text())
        except FileNotFoundError:
            raise UserError(f"{path}: the summary of seed {seed} is missing; run its stages (dvc repro)") from None
        except ValueError as err:
            raise UserError(f"{path}: unreadable summary ({type(err).__name__}); rerun sweep_prune") from None
    return summaries


def headline_order(path: Path, criterion: str, channels: int) -> np.ndarray:
    """`criterion`'s removal order from a ranking table (ranking.csv of sweep_prune)."""
    try:
        table = pd.read_csv(path)
        order = table[table["criterion"] == criterion].sort_values("rank")["channel"].to_numpy()
    except (OSError, ValueError, KeyError) as err:
        raise UserError(f"{path}: unreadable ranking table ({type(err).__name__}); rerun sweep_prune") from None
    if sorted(order.tolist()) != list(range(channels)):
        raise UserError(f"{path}: no complete {criterion} order of {channels} channels; rerun sweep_prune")
    return order


# --------------------------------------------------------------------------- aggregation
def band_table(sweeps: pd.DataFrame, score: str) -> pd.DataFrame:
    """Per criterion and K: the mean of `score` over seeds and its 95 % t interval."""
    rows = []
    for (criterion, k), group in sweeps.groupby(["criterion", "k"], sort=False):
        mean, low, high = t_interval(group[score])
        rows.append({"k": k, "criterion": criterion, "mean": mean, "ci_low": low, "ci_high": high})
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


def study_metrics(summaries: dict[int, dict]) -> dict:
    """The study's metrics.json: per criterion the mean and 95 % interval of every per-seed
    scalar, and the paired comparison with random. Scalars and nested dicts only."""
    seeds = list(summaries)
    first = summaries[seeds[0]]

    def across(get: Callable[[dict], float]) -> dict[str, float]:
        return interval_entry([get(summaries[s]) for s in seeds])

    criteria: dict[str, dict] = {}
    for name, scalars in first["criteria"].items():
        entry = {key: across(lambda s, n=name, k=key: s["criteria"][n][k]) for key in scalars}
        criteria[name] = entry
    for key in PAIRED:
        for name, diffs in paired_differences(summaries, key).items():
            criteria[name][f"{key}_vs_random"] = {**interval_entry(diffs), "wins": int((diffs > 0).sum())}
    return {
        "n_seeds": len(seeds),
        "confidence": CONFIDENCE,
        "channels": first["channels"],
        "n_test": first["n_test"],
        "majority_floor": across(lambda s: s["majority_floor"])["mean"],
        "balanced_floor": first["balanced_floor"],
        "ranking_split_is_test": first["ranking_split_is_test"],
        "baseline_accuracy": across(lambda s: s["baseline_accuracy"]),
        "baseline_balanced_accuracy": across(lambda s: s["baseline_balanced_accuracy"]),
        "criteria": criteria,
    }


# --------------------------------------------------------------------------- the report
def verdict_class(entry: dict) -> str:
    """`better`, `worse`, `not distinguishable` (from random), or `no claim` for one seed."""
    if "ci_low" not in entry:
        return "no claim"
    if entry["ci_low"] > 0:
        return "better"
    if entry["ci_high"] < 0:
        return "worse"
    return "not distinguishable"


def verdict(entry: dict, n_seeds: int) -> str:
    """What the paired difference supports, in words."""
    wins = f"wins {entry['wins']} of {n_seeds} seeds"
    return {
        "no claim": "one seed: no interval, so no claim",
        "better": f"better than random: the 95 % CI of the difference is above 0 ({wins})",
        "worse": f"worse than random: the 95 % CI of the difference is below 0 ({wins})",
        "not distinguishable": f"not distinguishable from random with {n_seeds} seeds: "
        f"the 95 % CI of the difference contains 0 ({wins})",
    }[verdict_class(entry)]


def _fmt(entry: dict, signed: bool = False) -> str:
    number = f"{entry['mean']:+.1f}" if signed else f"{entry['mean']:.1f}"
    if "ci_low" not in entry:
        return number
    return f"{number} [{entry['ci_low']:.1f}, {entry['ci_high']:.1f}]"


def report_markdown(metrics: dict, seeds: list[int], setting: dict[str, str], ranges: dict[str, tuple]) -> str:
    """metrics/report.md: the setting, the unpruned model, one table row and one sentence per criterion."""
    n = metrics["n_seeds"]
    lines = [
        f"# The study: {n} seed{'s' if n > 1 else ''} ({', '.join(map(str, seeds))})",
        "",
        "Generated by `stages/aggregate.py` from `metrics/seeds/<seed>/`; do not edit by hand.",
        "",
        "Setting: " + "; ".join(f"{key} {value}" for key, value in setting.items()) + ".",
        "",
        "Intervals are two-sided 95 % Student t intervals across seeds (`scipy.stats.t`, n − 1 degrees of freedom), "
        "written `mean [low, high]`, in percent. *Minus random* is paired within each seed: the criterion's score "
        "minus the mean of that seed's random removal orders on the same model. *Wins* counts the seeds where "
        "the criterion is above random.",
        "",
        "## The unpruned model",
        "",
        f"- accuracy {_fmt(metrics['baseline_accuracy'])} (range over seeds {ranges['acc'][0]:.1f} – "
        f"{ranges['acc'][1]:.1f}); always answering the majority class scores {metrics['majority_floor']:.1f}",
        f"- balanced accuracy {_fmt(metrics['baseline_balanced_accuracy'])} (range over seeds "
        f"{ranges['bacc'][0]:.1f} – {ranges['bacc'][1]:.1f}); chance is {metrics['balanced_floor']:.1f}",
        "",
        "## Criteria against random",
        "",
        "| criterion | mean balanced accuracy over K | minus random | wins | mean accuracy over K | minus random |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    criteria = metrics["criteria"]
    for name, entry in criteria.items():
        paired_b = entry.get("bacc_auc_vs_random")
        paired_a = entry.get("auc_vs_random")
        wins = f"{paired_b['wins']}/{n}" if paired_b else "—"
        lines.append(
            f"| {name} | {_fmt(entry['bacc_auc'])} | {_fmt(paired_b, True) if paired_b else '—'} | {wins} | "
            f"{_fmt(entry['auc'])} | {_fmt(paired_a, True) if paired_a else '—'} |"
        )
    lines += ["", "## What the numbers support (mean balanced accuracy over K, paired with random)", ""]
    for name, entry in criteria.items():
        if "bacc_auc_vs_random" in entry:
            lines.append(f"- **{name}**: {verdict(entry['bacc_auc_vs_random'], n)}.")
    if "random" not in criteria:
        lines.append("- No `random` criterion in `prune.criteria`, so no paired comparison.")
    return "\n".join(lines) + "\n"
