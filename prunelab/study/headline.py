"""metrics/headline.json: the handful of numbers a person compares across experiments.

`dvc exp show` and `dvc metrics diff` read this file by default; the full study stays in
metrics/metrics.json (`dvc metrics show metrics/metrics.json`), the shipped model's measurements
in metrics/efficiency.json. About twenty scalars: the unpruned model's balanced accuracy and ROC
AUC with their 95 % intervals, each criterion's paired difference from random on the main score
(mean over K of the recalibrated balanced accuracy: the decision's drift taken out, class
imbalance not hidden), and what the shipped model buys and costs (`shipped.loss`: the study's mean loss of recalibrated
balanced accuracy for it, in points).
"""

from __future__ import annotations

from prunelab.scoring.names import over_k

MAIN_SCORE = "recal_bacc"


def headline_metrics(metrics: dict, efficiency: dict) -> dict:
    """Short keys, so that `dvc exp show` stays narrow: `unpruned.bacc_low`, `vs_random.taylor`, `shipped.speedup`."""
    unpruned = {}
    for score, key in (("bacc", "baseline_balanced_accuracy"), ("roc_auc", "baseline_roc_auc")):
        entry = metrics.get(key)
        if entry is None:
            continue
        unpruned[score] = entry["mean"]
        if "ci_low" in entry:
            unpruned[f"{score}_low"], unpruned[f"{score}_high"] = entry["ci_low"], entry["ci_high"]
    paired = f"{over_k(MAIN_SCORE)}_vs_random"
    vs_random = {name: entry[paired]["mean"] for name, entry in metrics["criteria"].items() if paired in entry}
    # The whole network at a FLOPs budget, or the single-layer model at K (export.budget: none).
    what = {"budget": efficiency["budget"]} if "budget" in efficiency else {"k": efficiency["k"]}
    shipped = {
        **what,
        "speedup": efficiency["ratio"]["speedup_batch256"],
        "flops_ratio": efficiency["ratio"]["flops"],
        "loss": efficiency["score_loss_points"],
    }
    return {"n_seeds": metrics["n_seeds"], "unpruned": unpruned, "vs_random": vs_random, "shipped": shipped}
