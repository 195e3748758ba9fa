"""What to ship from the budget study: the configuration `export` takes, read off metrics.json.

Pure and torch-free: `aggregate` names the choice in the report, `export` builds it.
"""

from __future__ import annotations

from dataclasses import dataclass


def budget_key(share: float) -> str:
    """A FLOPs budget as a metrics.json key: 0.5 → flops_50, 0.125 → flops_12.5."""
    return f"flops_{share * 100:g}"


@dataclass(frozen=True)
class Choice:
    """A whole-network configuration to ship, and what the study says it costs."""

    budget: float
    strategy: str
    criterion: str
    loss: float  # mean over seeds of the unpruned model's fine-tuned recal. bacc minus this one's (points)
    within: bool  # whether the loss is at most the allowed points


def choose_budget(
    metrics: dict,
    budgets: list[float],
    budget: float | str = "auto",
    strategy: str = "auto",
    criterion: str = "auto",
    points: float = 1.0,
) -> Choice | None:
    """The configuration to ship from `budget_metrics`: at a given budget, the strategy and
    criterion (each `auto` or fixed) with the best mean fine-tuned recalibrated balanced accuracy
    against the unpruned model fine-tuned alike; with `budget` auto, the smallest budget where that
    best stays within `points`, else the largest budget's best (`within` False). `auto` criteria
    leave random out. None when nothing matches."""
    shares = sorted(budgets) if budget == "auto" else [float(budget)]
    best_of: list[Choice] = []
    for share in shares:
        found = [
            Choice(share, name, crit, -entry[budget_key(share)]["finetuned_recal_bacc_vs_unpruned"]["mean"], False)
            for name, criteria in metrics.items()
            if name != "unpruned" and strategy in ("auto", name)
            for crit, entry in criteria.items()
            if (criterion == crit or (criterion == "auto" and crit != "random")) and budget_key(share) in entry
        ]
        if found:
            top = min(found, key=lambda c: c.loss)
            best_of.append(Choice(top.budget, top.strategy, top.criterion, top.loss, top.loss <= points))
    if not best_of:
        return None
    fitting = [c for c in best_of if c.within]
    if budget != "auto" or not fitting:
        return max(best_of, key=lambda c: c.budget) if budget == "auto" else best_of[0]
    return fitting[0]
