"""Whole-network pruning to a FLOPs budget: how many channels each channel group loses, and which.

A budget is the share of the unpruned model's FLOPs per sample the pruned model may keep. A
strategy turns it into per-layer removals, growing one knob until the model fits:

- `uniform`: the same share of every layer's channels (each layer's own ranking picks which);
- `sensitivity`: channels go one at a time from the layer whose next channel costs the least loss
  per FLOP saved, read off that layer's own sensitivity curve (`prunelab.network.sensitivity`),
  so robust layers give more (Li et al. 2017), never beyond the largest share measured;
- `global`: one ranking over every channel of the network, each layer's scores divided by their
  mean magnitude so that layers compare (Torch-Pruning's `global_pruning` with its `mean`
  normaliser; Molchanov et al. 2019). A criterion that only orders (reconstruction, random) is
  normalised by rank: its channel at rank r of P scores (r + 1) / P.

Every strategy removes each layer's channels in that layer's criterion order and keeps at least
one channel per layer. FLOPs are exact arithmetic (`FlopsModel`, tested against the counter on
physically smaller models): a conv's work is proportional to its kept input channels times its
kept output channels, so pruning two adjacent layers is not additive.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from prunelab.models.records import CostModel as FlopsModel

if TYPE_CHECKING:
    import pandas as pd
    import torch
    from torch import nn

    from prunelab.models.records import ChannelGroup
    from prunelab.params import Params


def flops_model(model: nn.Module, groups: Sequence[ChannelGroup], example: torch.Tensor) -> FlopsModel:
    """The FLOPs of every Conv2d and Linear of `model` for one sample (2 per multiply-add, as
    `torch.utils.flop_counter` counts), as a function of the channels each group keeps."""
    from prunelab.models.cost import cost_models

    return cost_models(model, groups, example)[0]


@dataclass(frozen=True)
class LayerPlan:
    """What a strategy knows about one layer: its removal order (most expendable first), the
    per-channel scores that order sorts (None for an order-only criterion), and its sensitivity
    curve: the score lost (points) at each share of channels removed, ascending shares."""

    order: np.ndarray
    scores: np.ndarray | None = None
    fractions: tuple[float, ...] = ()
    losses: tuple[float, ...] = ()


Counts = dict[str, int]  # channels removed per layer


def _fits(flops: FlopsModel, removed: Counts, budget: float) -> bool:
    kept = {name: p - removed[name] for name, p in zip(flops.layers, flops.channels, strict=True)}
    return flops.kept(kept) <= budget + 1e-12


def _smallest(candidates: Sequence[Counts], flops: FlopsModel, budget: float) -> Counts:
    """The first of growing candidates that fits the budget (by bisection), else the last."""
    low, high = 0, len(candidates) - 1
    if not _fits(flops, candidates[high], budget):
        return candidates[high]
    while low < high:
        mid = (low + high) // 2
        if _fits(flops, candidates[mid], budget):
            high = mid
        else:
            low = mid + 1
    return candidates[low]


STEPS = 1024  # the resolution of a strategy's knob


def _uniform(plans: Mapping[str, LayerPlan], flops: FlopsModel, budget: float) -> Counts:
    def at(share: float) -> Counts:
        return {name: min(len(p.order) - 1, int(share * len(p.order))) for name, p in plans.items()}

    return _smallest([at(step / STEPS) for step in range(STEPS + 1)], flops, budget)


def _envelope(plan: LayerPlan) -> tuple[np.ndarray, np.ndarray]:
    """The layer's loss against share removed as a non-decreasing curve from (0, 0), over the
    shares its sensitivity measured (nothing is assumed beyond the largest)."""
    shares = np.array([0.0, *plan.fractions])
    losses = np.maximum.accumulate(np.maximum(np.array([0.0, *plan.losses]), 0.0))
    return shares, losses


def _sensitivity(plans: Mapping[str, LayerPlan], flops: FlopsModel, budget: float) -> Counts:
    """Greedy on the sensitivity curves: one channel at a time from the layer whose next channel
    costs the least loss (interpolated on its curve) per FLOP it saves; equal costs (flat curves)
    go to the layer with the smallest share removed, so flat layers shrink together. A layer
    loses at most the largest share its sensitivity measured."""
    names = list(plans)
    curves = {name: _envelope(plans[name]) for name in names}
    channels = {name: len(plans[name].order) for name in names}
    limit = {name: min(channels[name] - 1, int(curves[name][0][-1] * channels[name] + 1e-9)) for name in names}
    removed = dict.fromkeys(names, 0)

    def loss(name: str, k: int) -> float:
        shares, losses = curves[name]
        return float(np.interp(k / channels[name], shares, losses))

    def flops_kept(counts: Counts) -> float:
        return flops.kept({name: channels[name] - counts[name] for name in names})

    candidates = [dict(removed)]
    while True:
        now = flops_kept(removed)
        best: tuple[float, float, int] | None = None
        choice = None
        for i, name in enumerate(names):
            if removed[name] >= limit[name]:
                continue
            saved = now - flops_kept(removed | {name: removed[name] + 1})
            cost = (loss(name, removed[name] + 1) - loss(name, removed[name])) / max(saved, 1e-12)
            key = (cost, removed[name] / channels[name], i)
            if best is None or key < best:
                best, choice = key, name
        if choice is None:
            break
        removed[choice] += 1
        candidates.append(dict(removed))
    return _smallest(candidates, flops, budget)


def normalised_scores(plan: LayerPlan) -> np.ndarray:
    """A layer's channels on the network-wide scale: scores over their mean magnitude, or
    (r + 1) / P by rank r in the order for an order-only criterion."""
    channels = len(plan.order)
    if plan.scores is None:
        ranked = np.empty(channels)
        ranked[plan.order] = (np.arange(channels) + 1) / channels
        return ranked
    scale = np.abs(plan.scores).mean()
    return plan.scores / scale if scale > 0 else np.zeros(channels)


def _global(plans: Mapping[str, LayerPlan], flops: FlopsModel, budget: float) -> Counts:
    names = list(plans)
    everything = [(score, i, name) for name in names for i, score in enumerate(normalised_scores(plans[name]))]
    position = {name: {int(c): r for r, c in enumerate(plans[name].order)} for name in names}
    # Lowest normalised score first; within a layer, its own order (equal scores included).
    everything.sort(key=lambda t: (t[0], position[t[2]][t[1]], names.index(t[2])))
    removed = dict.fromkeys(names, 0)
    candidates = [dict(removed)]
    for _, _, name in everything:
        if removed[name] < len(plans[name].order) - 1:
            removed[name] += 1
            candidates.append(dict(removed))
    return _smallest(candidates, flops, budget)


STRATEGIES: dict[str, Callable[[Mapping[str, LayerPlan], FlopsModel, float], Counts]] = {
    "uniform": _uniform,
    "sensitivity": _sensitivity,
    "global": _global,
}


def allocate(strategy: str, plans: Mapping[str, LayerPlan], flops: FlopsModel, budget: float) -> dict[str, list[int]]:
    """The channels each layer removes (its plan's first K) so that the model keeps at most
    `budget` of its FLOPs, by the fewest removals the strategy's knob allows; if even the most
    it allows does not fit (every layer down to one channel), that most."""
    counts = STRATEGIES[strategy](plans, flops, budget)
    return {name: sorted(int(c) for c in plans[name].order[: counts[name]]) for name in plans}


# The score a layer's sensitivity curve measures its loss in: ROC AUC is threshold-free, so a
# curve reads what the layer's channels carry rather than where the decision happened to land,
# and it moves least from seed to seed (see study.margins).
SENSITIVITY_SCORE = "roc_auc"


def sensitivity_plans(
    rankings: Mapping[str, Mapping[str, object]], curves: pd.DataFrame, criterion: str
) -> dict[str, LayerPlan]:
    """Each layer's plan for `criterion`: its first order and scores (`rankings`: layer →
    criterion → `LayerRanking`) and its loss curve from one seed's sensitivity table, in points of
    SENSITIVITY_SCORE below the unpruned model's (the fraction-0 row)."""
    plans = {}
    for layer, ranked in rankings.items():
        ranking = ranked[criterion]
        rows = curves[(curves["layer"] == layer) & (curves["criterion"] == criterion)].sort_values("fraction")
        base = float(rows[SENSITIVITY_SCORE].iloc[0])
        removed = rows[rows["fraction"] > 0]
        plans[layer] = LayerPlan(
            order=np.asarray(ranking.orders[0]),
            scores=ranking.scores,
            fractions=tuple(float(f) for f in removed["fraction"]),
            losses=tuple(base - float(v) for v in removed[SENSITIVITY_SCORE]),
        )
    return plans


def recipe(params: Params) -> dict[str, object]:
    """The fine-tuning recipe of the budget study, for `finetune_pruned`: the budget stage and the
    export (which rebuilds the shipped configuration) fine-tune alike, so the shipped model is
    the one the study scored."""
    return {
        "epochs": params.budget.finetune_epochs,
        "lr": params.finetune.lr,
        "batch_size": params.train.batch_size,
        "class_weight": params.train.class_weight,
    }
