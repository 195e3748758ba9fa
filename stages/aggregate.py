"""Stage aggregate: the replicates of `seeds` → the study's results.

Reads metrics/seeds/<seed>/ for every seed in params. Writes metrics/metrics.json (means,
95 % intervals, paired comparisons with random), metrics/report.md, and
metrics/study/<score>.csv (per K and criterion: mean and interval of acc, bacc, roc_auc,
recal_acc, recal_bacc), train_curve.csv, finetune.csv, sensitivity.csv (per layer, criterion
and share: mean and interval of each score) and budget.csv (every seed's budget rows). No torch.
"""

from __future__ import annotations

from prunelab.models.records import metric_key
from prunelab.network.choice import choose_budget
from prunelab.params import load_params
from prunelab.paths import REPORT, STUDY, STUDY_METRICS
from prunelab.runtime import log, stage_main, write_json, write_table, write_text
from prunelab.scoring.names import SCORES
from prunelab.study.aggregate import band_table, finetune_metrics, finetune_table, study_metrics
from prunelab.study.network import budget_metrics, sensitivity_band, sensitivity_metrics
from prunelab.study.replicates import (
    load_budgets,
    load_finetunes,
    load_sensitivity,
    load_summaries,
    load_sweeps,
    load_train_curves,
)
from prunelab.study.report import budget_channels, report_markdown


def main() -> None:
    params = load_params()
    seeds = params.seeds
    # Every input is read before the first output is written.
    # Each is checked against its format and against params.yaml (the rows it implies), and each
    # summary against its own sweep: a cut-short or stale file is refused, never aggregated.
    sweeps = load_sweeps(seeds, params)
    summaries = load_summaries(seeds, params, sweeps)
    curves = load_train_curves(seeds, params)
    tuned = finetune_table(load_finetunes(seeds, params), sweeps)
    sensitivity = load_sensitivity(seeds, params)
    budgets = load_budgets(seeds, params)
    margins = params.study.margins.model_dump()
    metrics = study_metrics(summaries, margins)
    for name, entries in finetune_metrics(tuned, margins).items():
        metrics["criteria"][name].update(entries)
    metrics["sensitivity"] = sensitivity_metrics(sensitivity, margins)
    metrics["budget"] = budget_metrics(budgets, margins)
    within = choose_budget(metrics["budget"], list(params.budget.flops))
    for score in SCORES:
        write_table(STUDY / f"{score}.csv", band_table(sweeps, score), "%.4f")
    write_table(STUDY / "train_curve.csv", curves, "%.4f")
    write_table(STUDY / "finetune.csv", tuned, "%.4f")
    write_table(STUDY / "sensitivity.csv", sensitivity_band(sensitivity), "%.4f")
    write_table(STUDY / "budget.csv", budgets, "%.4f")
    write_json(STUDY_METRICS, metrics)
    data, prune, recal = params.data, params.prune, params.recalibrate
    setting = {
        "data": f"{data.source} {data.task}",
        "model": params.model.arch,
        "channels ranked on": f"the {params.activations.split} split",
        "pruning": prune.mode,
        "random orders per seed": str(prune.random_orders),
        "decision re-fitted on": f"the first {recal.max_samples} samples of the {recal.split} split",
    }
    if data.source == "imagefolder":
        setting["data"] += f" from {data.path}"
    if params.model.weights != "none":
        setting["weights"] = (
            f"loaded from {params.model.weights}, not trained: the seeds replicate only what follows training "
            "(the splits' draw where the folder has none, the ranking data, the random orders, the fine-tuning), "
            "not training itself"
        )
    baseline = {
        score: (min(s[key] for s in summaries.values()), max(s[key] for s in summaries.values()))
        for score, key in (("acc", "baseline_accuracy"), ("bacc", "baseline_balanced_accuracy"))
    }
    shares = list(params.sensitivity.fractions)
    names = {metric_key(str(layer)): str(layer) for layer in sensitivity["layer"].unique()}
    channels = budget_channels(budgets)  # the report's kept counts per group (budget.round_to's effect)
    text = report_markdown(metrics, seeds, setting, baseline, shares, within, names, channels, params.budget.target)
    write_text(REPORT, text)
    log(f"aggregated {len(seeds)} seed(s) into {STUDY_METRICS} and {REPORT}")


if __name__ == "__main__":
    stage_main(main)
