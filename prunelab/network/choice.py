"""What to ship from the budget study: the configuration `export` takes, read off metrics.json.

Pure and torch-free: `aggregate` names the choice in the report, `export` builds it.
"""

from __future__ import annotations

from dataclasses import dataclass


def budget_key(share: float) -> str:
    """A FLOPs budget as a metrics.json key: 0.5 → flops_50, 0.125 → flops_12.5."""
    return f"flops_{share * 100:g}"


# The scores a shipped model must keep: threshold-free ranking (ROC AUC) and the re-fitted decision
# (recalibrated balanced accuracy), each fine-tuned and paired with the unpruned model fine-tuned alike.
KEPT_SCORES = ("finetuned_roc_auc", "finetuned_recal_bacc")
RULE = (
    "the smallest FLOPs budget whose fine-tuned ROC AUC and recalibrated balanced accuracy are both non-inferior "
    "to the unpruned model's fine-tuned alike: the lower end of the 95 % interval of the paired difference above "
    "-margin (study.margins; with one seed, the difference itself)"
)


@dataclass(frozen=True)
class Choice:
    """A whole-network configuration to ship, and what the study says it costs."""

    budget: float
    strategy: str
    criterion: str
    loss: float  # mean over seeds of the unpruned model's fine-tuned recal. bacc minus this one's (points)
    within: bool  # whether it keeps every score of KEPT_SCORES by the rule (non-inferior at the margin)


def kept(entry: dict) -> bool:
    """Whether a budget entry keeps every score of KEPT_SCORES: the 95 % interval's lower end of the paired
    difference from the unpruned model above -margin (a one-sided non-inferiority test); with
    one seed there is no interval, and the difference itself is read."""
    for score in KEPT_SCORES:
        paired = entry[f"{score}_vs_unpruned"]
        low = paired.get("ci_low")  # one seed: no interval
        low = paired["mean"] if low is None or low != low else low
        if low < -paired["margin"]:
            return False
    return True


def choose_budget(
    metrics: dict,
    budgets: list[float],
    budget: float | str = "auto",
    strategy: str = "auto",
    criterion: str = "auto",
) -> Choice | None:
    """The configuration to ship from `budget_metrics`, by `RULE`: at each budget (the given one, or
    with `budget` auto each from the smallest up), the strategy and criterion (each `auto` or fixed)
    that keep both scores, best mean fine-tuned recalibrated balanced accuracy first; with `budget`
    auto, the smallest budget with one, else the largest budget's best by that mean (`within`
    False). `auto` criteria leave random out. None when nothing matches."""
    shares = sorted(budgets) if budget == "auto" else [float(budget)]
    best_of: list[Choice] = []
    for share in shares:
        key = budget_key(share)
        found = [
            Choice(share, name, crit, -entry[key]["finetuned_recal_bacc_vs_unpruned"]["mean"], kept(entry[key]))
            for name, criteria in metrics.items()
            if name != "unpruned" and strategy in ("auto", name)
            for crit, entry in criteria.items()
            if (criterion == crit or (criterion == "auto" and crit != "random")) and key in entry
        ]
        if found:
            best_of.append(min(found, key=lambda c: (not c.within, c.loss)))
    if not best_of:
        return None
    fitting = [c for c in best_of if c.within]
    if budget != "auto" or not fitting:
        return max(best_of, key=lambda c: c.budget) if budget == "auto" else best_of[0]
    return fitting[0]


def candidates(
    metrics: dict,
    budgets: list[float],
    budget: float | str = "auto",
    strategy: str = "auto",
    criterion: str = "auto",
) -> list[Choice]:
    """What export may ship, in order: `choose_budget`'s choice first, then (only when every one of
    budget, strategy and criterion is auto) every other configuration that keeps both scores by
    `RULE`, smallest budget first and best mean fine-tuned recalibrated balanced accuracy first within
    a budget. Export ships the first that measures faster than the unpruned model."""
    first = choose_budget(metrics, budgets, budget, strategy, criterion)
    if first is None:
        return []
    if (budget, strategy, criterion) != ("auto", "auto", "auto"):
        return [first]
    others = [
        Choice(share, name, crit, -entry[budget_key(share)]["finetuned_recal_bacc_vs_unpruned"]["mean"], True)
        for share in sorted(budgets)
        for name, criteria in metrics.items()
        if name != "unpruned"
        for crit, entry in criteria.items()
        if crit != "random" and budget_key(share) in entry and kept(entry[budget_key(share)])
    ]
    others.sort(key=lambda c: (c.budget, c.loss))
    return [
        first,
        *(c for c in others if (c.budget, c.strategy, c.criterion) != (first.budget, first.strategy, first.criterion)),
    ]
