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
from prunelab.paths import finetune_path, seed_summary_path, sweep_path, train_curve_path

CONFIDENCE = 0.95
SCORES = {
    "bacc": "balanced accuracy",
    "acc": "accuracy",
    "roc_auc": "ROC AUC",
    "recal_bacc": "recalibrated balanced accuracy",
    "recal_acc": "recalibrated accuracy",
}
# The per-seed scalars compared with random, paired within each seed: mean score over K.
PAIRED = {
    "bacc_auc": "mean balanced accuracy over K",
    "auc": "mean accuracy over K",
    "roc_auc_over_k": "mean ROC AUC over K",
    "recal_bacc_over_k": "mean recalibrated balanced accuracy over K",
}


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
def _per_seed_tables(
    seeds: list[int], path_of: Callable[[int], Path], what: str, stage: str, required: tuple[str, ...] = ()
) -> pd.DataFrame:
    """Every seed's `what` table (CSV) stacked, with a `seed` column; a missing, unreadable or
    foreign file is a one-line UserError naming the stage that writes it."""
    parts = []
    for seed in seeds:
        path = path_of(seed)
        if not path.exists():
            raise UserError(f"{path}: the {what} of seed {seed} is missing; run its stages (dvc repro)")
        try:
            table = pd.read_csv(path)
        except (ValueError, OSError) as err:
            raise UserError(f"{path}: unreadable {what} table ({type(err).__name__}); rerun {stage}") from None
        if not set(required) <= set(table.columns):
            raise UserError(f"{path}: not a {what} table (needs {', '.join(required)}); rerun {stage}")
        parts.append(table.assign(seed=seed))
    return pd.concat(parts, ignore_index=True)


def load_sweeps(seeds: list[int]) -> pd.DataFrame:
    """Every seed's sweep table (k, criterion, acc, bacc, …) with a `seed` column."""
    return _per_seed_tables(seeds, sweep_path, "sweep", "sweep_prune", ("k", "criterion", "acc", "bacc"))


def load_train_curves(seeds: list[int]) -> pd.DataFrame:
    """Every seed's training curve (epoch, train_loss, test_acc, test_bacc) with a `seed` column."""
    return _per_seed_tables(seeds, train_curve_path, "training curve", "train")


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


# --------------------------------------------------------------------------- aggregation
def finetune_table(seeds: list[int], sweeps: pd.DataFrame) -> pd.DataFrame:
    """Per seed, fine-tuned criterion and K: balanced accuracy and ROC AUC as pruned (plain),
    with the decision re-fitted (recal), and after fine-tuning (finetuned). Empty when
    fine-tuning is off."""
    tuned = _per_seed_tables(seeds, finetune_path, "fine-tuning", "finetune").rename(
        columns={"acc": "finetuned_acc", "bacc": "finetuned_bacc", "roc_auc": "finetuned_roc_auc"}
    )
    plain = sweeps.rename(columns={"bacc": "plain_bacc", "roc_auc": "plain_roc_auc", "acc": "plain_acc"})
    columns = ["seed", "criterion", "k", "plain_acc", "plain_bacc", "plain_roc_auc", "recal_bacc"]
    return tuned.merge(plain[columns], on=["seed", "criterion", "k"], how="left")


def finetune_metrics(table: pd.DataFrame) -> dict[str, dict]:
    """{criterion: {finetune_<point>: {k, score: {mean, ci_low, ci_high}}}} over seeds, and the
    fine-tuned balanced accuracy paired with fine-tuned random at the same K and seed. The
    point is the finetune.ks entry (half, three_quarters, k40), so every model has the same keys."""
    scores = ["plain_bacc", "recal_bacc", "finetuned_bacc", "plain_roc_auc", "finetuned_roc_auc", "finetuned_acc"]
    out: dict[str, dict] = {}
    for (criterion, point, k), group in table.groupby(["criterion", "point", "k"], sort=False):
        entry: dict = {"k": int(k), **{score: interval_entry(group[score]) for score in scores}}
        random = table[(table["criterion"] == "random") & (table["k"] == k)].set_index("seed")["finetuned_bacc"]
        if criterion != "random" and len(random):
            diffs = (group.set_index("seed")["finetuned_bacc"] - random).dropna().to_numpy()
            entry["finetuned_bacc_vs_random"] = {**interval_entry(diffs), "wins": int((diffs > 0).sum())}
        out.setdefault(criterion, {})[f"finetune_{point}"] = entry
    return out


def band_table(sweeps: pd.DataFrame, score: str) -> pd.DataFrame:
    """Per criterion and K: the mean of `score` over seeds and its 95 % t interval, and the
    shares of parameters and FLOPs kept at that K (when the sweeps have them)."""
    costs = [c for c in ("params_kept", "flops_kept") if c in sweeps.columns]
    rows = []
    for (criterion, k), group in sweeps.groupby(["criterion", "k"], sort=False):
        mean, low, high = t_interval(group[score])
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
        if key not in next(iter(first["criteria"].values())):
            continue  # a summary from before the score existed
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
        **{key: across(lambda s, k=key: s[k]) for key in first if key.startswith("baseline_")},
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


def _paired_table(metrics: dict, columns: list[tuple[str, str]]) -> list[str]:
    """Markdown rows: per criterion, for each (scalar key, title): the mean over seeds and the
    paired difference from random with its wins."""
    n = metrics["n_seeds"]
    header = "| criterion | " + " | ".join(f"{title} | minus random | wins" for _, title in columns) + " |"
    lines = [header, "|" + " --- |" * (1 + 3 * len(columns))]
    for name, entry in metrics["criteria"].items():
        cells = [name]
        for key, _ in columns:
            paired = entry.get(f"{key}_vs_random")
            cells += [
                _fmt(entry[key]) if key in entry else "—",
                _fmt(paired, True) if paired else "—",
                f"{paired['wins']}/{n}" if paired else "—",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _first_on(metrics: dict, key: str) -> str:
    """Which criterion has the highest mean of `key`, and what the paired interval says of it."""
    ranked = [(entry[key]["mean"], name) for name, entry in metrics["criteria"].items() if key in entry]
    if not ranked:
        return "—"
    best = max(ranked)[1]
    paired = metrics["criteria"][best].get(f"{key}_vs_random")
    note = f"; against random: {verdict_class(paired)}" if paired else ""
    return f"`{best}` ({_fmt(metrics['criteria'][best][key])}{note})"


def report_markdown(metrics: dict, seeds: list[int], setting: dict[str, str], ranges: dict[str, tuple]) -> str:
    """metrics/report.md: the setting, the unpruned model, the criteria against random on every
    score, one sentence per criterion, which criterion ranks first on each score, and fine-tuning."""
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
        "the criterion is above random. *Recalibrated* scores re-fit only the decision (two classes: the threshold "
        "on the logit difference that maximises balanced accuracy; more classes: the last layer's bias) on the "
        "calibration split, never on test; ROC AUC needs no threshold at all.",
        "",
        "## The unpruned model",
        "",
        f"- accuracy {_fmt(metrics['baseline_accuracy'])} (range over seeds {ranges['acc'][0]:.1f} – "
        f"{ranges['acc'][1]:.1f}); always answering the majority class scores {metrics['majority_floor']:.1f}",
        f"- balanced accuracy {_fmt(metrics['baseline_balanced_accuracy'])} (range over seeds "
        f"{ranges['bacc'][0]:.1f} – {ranges['bacc'][1]:.1f}); chance is {metrics['balanced_floor']:.1f}",
    ]
    if "baseline_roc_auc" in metrics:
        lines += [
            f"- ROC AUC {_fmt(metrics['baseline_roc_auc'])}; balanced accuracy with the decision re-fitted "
            f"{_fmt(metrics['baseline_recal_bacc'])}",
        ]
    lines += ["", "## Criteria against random, at the model's own decision", ""]
    lines += _paired_table(metrics, [("bacc_auc", "mean balanced accuracy over K"), ("auc", "mean accuracy over K")])
    first_entry = next(iter(metrics["criteria"].values()))
    if "roc_auc_over_k" in first_entry:
        lines += ["", "## Criteria against random, threshold-free and recalibrated", ""]
        lines += _paired_table(
            metrics, [("roc_auc_over_k", "mean ROC AUC over K"), ("recal_bacc_over_k", "mean recalibrated bacc over K")]
        )
    for key, title in PAIRED.items():
        if not any(f"{key}_vs_random" in e for e in metrics["criteria"].values()) or key == "auc":
            continue
        lines += ["", f"## What the numbers support: {title}, paired with random", ""]
        for name, entry in metrics["criteria"].items():
            if f"{key}_vs_random" in entry:
                lines.append(f"- **{name}**: {verdict(entry[f'{key}_vs_random'], n)}.")
    if "random" not in metrics["criteria"]:
        lines += ["", "No `random` criterion in `prune.criteria`, so no paired comparison."]
    lines += ["", "## Which criterion ranks first", ""]
    for key, title in PAIRED.items():
        if key in first_entry:
            lines.append(f"- on {title}: {_first_on(metrics, key)}")
    lines += _finetune_section(metrics)
    return "\n".join(lines) + "\n"


def _finetune_section(metrics: dict) -> list[str]:
    tuned = {
        (name, key): entry
        for name, criterion in metrics["criteria"].items()
        for key, entry in criterion.items()
        if key.startswith("finetune_")
    }
    if not tuned:
        return []
    n = metrics["n_seeds"]
    lines = [
        "",
        "## Fine-tuning",
        "",
        "Balanced accuracy of the pruned model as removed (*plain*), with the decision re-fitted (*recal*), and "
        "after fine-tuning on the train split (*fine-tuned*); the last columns pair the fine-tuned score with "
        "fine-tuned random at the same K and seed.",
        "",
        "| K | criterion | plain bacc | recal bacc | fine-tuned bacc | fine-tuned ROC AUC "
        "| fine-tuned minus random | wins |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    k_of = {key: entry["k"] for (_, key), entry in tuned.items()}
    for (name, key), entry in sorted(tuned.items(), key=lambda item: (item[1]["k"], item[0][0])):
        paired = entry.get("finetuned_bacc_vs_random")
        wins = f"{paired['wins']}/{n}" if paired else "—"
        lines.append(
            f"| {k_of[key]} | {name} | {_fmt(entry['plain_bacc'])} | {_fmt(entry['recal_bacc'])} | "
            f"{_fmt(entry['finetuned_bacc'])} | {_fmt(entry['finetuned_roc_auc'])} | "
            f"{_fmt(paired, True) if paired else '—'} | {wins} |"
        )
    lines.append("")
    for (name, key), entry in tuned.items():
        if "finetuned_bacc_vs_random" in entry:
            claim = verdict(entry["finetuned_bacc_vs_random"], n)
            lines.append(f"- **{name}** at K = {k_of[key]}, fine-tuned: {claim}.")
    return lines
