"""The scores' names, with no project import: what the stages, the study and the checks name
their columns and keys by. `prunelab.scoring.scores` computes them (and re-exports these)."""

from __future__ import annotations

# The scores, by name, with their titles: written once, used by sweep, study, figures and export.
SCORES: dict[str, str] = {
    "acc": "accuracy",
    "bacc": "balanced accuracy",
    "roc_auc": "ROC AUC",
    "recal_acc": "recalibrated accuracy",
    "recal_bacc": "recalibrated balanced accuracy",
}


def over_k(score: str) -> str:
    """The per-replicate scalar that averages `score` over every swept K (e.g. `bacc_over_k`)."""
    return f"{score}_over_k"


# The scores beyond acc and bacc (kept per K as means over orders, with no std).
EXTRA_SCORES = [name for name in SCORES if name not in ("acc", "bacc")]
