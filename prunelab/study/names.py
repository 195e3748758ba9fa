"""The study's vocabulary, with no project import: which scores metrics.json pairs with random
and reports over seeds, and the verdicts a comparison gets. `prunelab.study.aggregate`,
`prunelab.study.network` and `prunelab.study.verdicts` write them (and re-export these);
`prunelab.checks.study_metrics` checks metrics.json against them without importing pandas or scipy."""

from __future__ import annotations

# The per-seed scalars compared with random, paired within each seed: each score's mean over K.
PAIRED_SCORES = ("bacc", "acc", "roc_auc", "recal_bacc")
# The verdicts of a paired comparison (`prunelab.study.verdicts.verdict_of`).
VERDICTS = ("better", "worse", "equivalent", "inconclusive")
# The scores the sensitivity study averages over shares and pairs with random.
SENSITIVITY_SCORES = ("roc_auc", "recal_bacc", "bacc")
# The budget study's scores over seeds: after fine-tuning (recalibrated balanced accuracy decides the
# export; ROC AUC is its threshold-free companion) and as pruned.
BUDGET_SCORES = ("finetuned_recal_bacc", "finetuned_roc_auc", "recal_bacc", "roc_auc")
