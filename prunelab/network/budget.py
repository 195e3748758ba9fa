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

With `budget.target: latency` the budget is a share of the unpruned model's latency as a measured table
predicts it (`prunelab.network.latency`, a `LatencyModel`), and "FLOPs" below reads "predicted
milliseconds": every strategy walks the same knob against either cost.

Every strategy removes each layer's channels in that layer's criterion order and keeps at least
one channel per layer. FLOPs are exact arithmetic (`FlopsModel`, tested against the counter on
physically smaller models): a conv's work is proportional to its kept input channels times its
kept output channels, so pruning two adjacent layers is not additive.

Kernel-friendly counts (`budget.round_to`, r): CPU convolutions (oneDNN) block channels by 8 or 16,
so a count just below a multiple pays for the multiple (DESIGN.md 3d). With r > 1 every group keeps
a multiple of r, never fewer than r, or all its channels (a group left whole is not rounded: its
count is the unpruned model's; a group of r channels, or fewer, is never pruned). Each strategy
walks the same knob as with r = 1, its counts rounded to those (`kept_counts`): uniform and global
round a layer's kept count *up* to the next allowed one, so a block goes only once all its channels
are ones the strategy removes (uniform, where several groups cross a block at the same share,
steps them one at a time); sensitivity steps one block at a time (from the layer whose next
block costs the least loss per FLOP saved). The budget is then met as before, by the first
candidate on the knob that fits, so the FLOPs kept never exceed the budget. r = 1 allows every
count from 1 to P: the allocation is exactly the unrounded one (tested). Torch-Pruning's pruners
take `round_to` too (`BasePruner._round_to`), rounding each group's kept count *down* to a
multiple after thresholding a channel ratio, so it may remove channels its ranking keeps, can
reach 0, and does not re-check its target after rounding; here the rounding is inside the search,
so the FLOPs budget holds with it.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from prunelab.models.records import CostModel as FlopsModel
from prunelab.models.records import LatencyModel, kept_counts

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
# What a budget is a share of (`budget.target`): FLOPs per sample, or the latency a measured table predicts.
Cost = FlopsModel | LatencyModel


def _round_up(allowed: Sequence[int], kept: int) -> int:
    """The smallest count of `allowed` (`kept_counts`, which ends with the group's channels) >= `kept`."""
    return allowed[bisect_left(allowed, kept)]


def _fits(cost: Cost, removed: Counts, budget: float) -> bool:
    kept = {name: p - removed[name] for name, p in zip(cost.layers, cost.channels, strict=True)}
    return cost.kept(kept) <= budget + 1e-12


def _smallest(candidates: Sequence[Counts], cost: Cost, budget: float) -> Counts:
    """The first of growing candidates that fits the budget (by bisection), else the last."""
    low, high = 0, len(candidates) - 1
    if not _fits(cost, candidates[high], budget):
        return candidates[high]
    while low < high:
        mid = (low + high) // 2
        if _fits(cost, candidates[mid], budget):
            high = mid
        else:
            low = mid + 1
    return candidates[low]


STEPS = 1024  # the resolution of a strategy's knob


def _uniform(plans: Mapping[str, LayerPlan], cost: Cost, budget: float, round_to: int = 1) -> Counts:
    """The same share of every layer's channels removed, each layer's kept count rounded up to an
    allowed one (`kept_counts`), growing the share until the model fits. With `round_to` > 1,
    groups whose channels are multiples of it cross a block at the same share (32/64/128 lose a
    quarter at once), a jump far past the budget: between two shares the groups that change step
    one at a time, the one with the smallest share removed first (forward order on ties), so each
    group is within one block of the common share."""
    names = list(plans)
    channels = {name: len(plan.order) for name, plan in plans.items()}
    allowed = {name: kept_counts(channels[name], round_to) for name in names}

    def at(share: float) -> Counts:
        counts = {}
        for name in names:
            kept = channels[name] - min(channels[name] - 1, int(share * channels[name]))
            counts[name] = channels[name] - _round_up(allowed[name], kept)
        return counts

    knob = [at(step / STEPS) for step in range(STEPS + 1)]
    if round_to == 1:
        return _smallest(knob, cost, budget)
    candidates = [knob[0]]
    for target in knob[1:]:
        now = dict(candidates[-1])
        moving = [name for name in names if target[name] != now[name]]
        while moving:
            name = min(moving, key=lambda n: (now[n] / channels[n], names.index(n)))
            now[name] = target[name]
            candidates.append(dict(now))
            moving.remove(name)
    return _smallest(candidates, cost, budget)


def _envelope(plan: LayerPlan) -> tuple[np.ndarray, np.ndarray]:
    """The layer's loss against share removed as a non-decreasing curve from (0, 0), over the
    shares its sensitivity measured (nothing is assumed beyond the largest)."""
    shares = np.array([0.0, *plan.fractions])
    losses = np.maximum.accumulate(np.maximum(np.array([0.0, *plan.losses]), 0.0))
    return shares, losses


def _sensitivity(plans: Mapping[str, LayerPlan], cost: Cost, budget: float, round_to: int = 1) -> Counts:
    """Greedy on the sensitivity curves: one channel (with `round_to` r > 1, one step down to the
    next allowed count: a block of r) at a time from the layer whose next step costs the least loss
    (interpolated on its curve) per FLOP it saves; equal costs (flat curves) go to the layer with
    the smallest share removed, so flat layers shrink together. A layer loses at most the largest
    share its sensitivity measured."""
    names = list(plans)
    curves = {name: _envelope(plans[name]) for name in names}
    channels = {name: len(plans[name].order) for name in names}
    limit = {name: min(channels[name] - 1, int(curves[name][0][-1] * channels[name] + 1e-9)) for name in names}
    allowed = {name: kept_counts(channels[name], round_to) for name in names}
    removed = dict.fromkeys(names, 0)

    def step(name: str) -> int | None:
        """The layer's removals after its next step, or None when it may lose no more."""
        below = bisect_left(allowed[name], channels[name] - removed[name])  # the kept count's index
        if below == 0:
            return None
        after = channels[name] - allowed[name][below - 1]
        return after if after <= limit[name] else None

    def loss(name: str, k: int) -> float:
        shares, losses = curves[name]
        return float(np.interp(k / channels[name], shares, losses))

    def cost_kept(counts: Counts) -> float:
        return cost.kept({name: channels[name] - counts[name] for name in names})

    candidates = [dict(removed)]
    while True:
        now = cost_kept(removed)
        best: tuple[float, float, int] | None = None
        choice = None
        steps = {}
        for i, name in enumerate(names):
            after = step(name)
            if after is None:
                continue
            saved = now - cost_kept(removed | {name: after})
            price = (loss(name, after) - loss(name, removed[name])) / max(saved, 1e-12)
            key = (price, removed[name] / channels[name], i)
            steps[name] = after
            if best is None or key < best:
                best, choice = key, name
        if choice is None:
            break
        removed[choice] = steps[choice]
        candidates.append(dict(removed))
    return _smallest(candidates, cost, budget)


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


def _global(plans: Mapping[str, LayerPlan], cost: Cost, budget: float, round_to: int = 1) -> Counts:
    """Down the one network-wide ranking: each channel passed is wanted out of its layer, and the
    layer removes as many as leave an allowed count (`kept_counts`) of at most the wanted ones (its
    kept count rounded up); the first point of the walk that fits."""
    names = list(plans)
    allowed = {name: kept_counts(len(plans[name].order), round_to) for name in names}
    everything = [(score, i, name) for name in names for i, score in enumerate(normalised_scores(plans[name]))]
    position = {name: {int(c): r for r, c in enumerate(plans[name].order)} for name in names}
    # Lowest normalised score first; within a layer, its own order (equal scores included).
    everything.sort(key=lambda t: (t[0], position[t[2]][t[1]], names.index(t[2])))
    wanted = dict.fromkeys(names, 0)
    removed = dict(wanted)
    candidates = [dict(removed)]
    for _, _, name in everything:
        channels = len(plans[name].order)
        if wanted[name] < channels - 1:
            wanted[name] += 1
            now = channels - _round_up(allowed[name], channels - wanted[name])
            if now != removed[name]:
                removed[name] = now
                candidates.append(dict(removed))
    return _smallest(candidates, cost, budget)


STRATEGIES: dict[str, Callable[[Mapping[str, LayerPlan], Cost, float, int], Counts]] = {
    "uniform": _uniform,
    "sensitivity": _sensitivity,
    "global": _global,
}


def allocate(
    strategy: str, plans: Mapping[str, LayerPlan], cost: Cost, budget: float, round_to: int = 1
) -> dict[str, list[int]]:
    """The channels each layer removes (its plan's first K) so that the model keeps at most
    `budget` of its cost (`cost`: FLOPs, or a latency table's prediction: `budget.target`), by the
    fewest removals the strategy's knob allows, every layer keeping
    a count of `kept_counts(P, round_to)` (`budget.round_to`; 1: any count); if even the most it
    allows does not fit (every layer down to one channel, or to `round_to`), that most."""
    if isinstance(round_to, bool) or not isinstance(round_to, int) or round_to < 1:
        raise ValueError(f"round_to={round_to!r}: allowed: an integer >= 1")
    counts = STRATEGIES[strategy](plans, cost, budget, round_to)
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
