"""Kernel-friendly channel counts (`budget.round_to`): every strategy keeps, per channel group, a
multiple of round_to (never fewer) or all the group's channels, and still fits its FLOPs budget;
round_to 1 is exactly the unrounded allocation (against the strategies as they were before it);
bad values are refused in one line naming the key; the budget table's checks and the report
show the kept counts."""

from __future__ import annotations

import copy
from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from prunelab.checks.implied import Implied, implied
from prunelab.checks.tables import check_budget
from prunelab.data.spec import InputSpec
from prunelab.errors import UserError
from prunelab.models.cost import layer_flops
from prunelab.models.groups import example_input, find_groups
from prunelab.models.records import ChannelGroup
from prunelab.network.budget import (
    STEPS,
    STRATEGIES,
    FlopsModel,
    LayerPlan,
    _envelope,
    _smallest,
    allocate,
    flops_model,
    kept_counts,
    normalised_scores,
)
from prunelab.network.choice import choose_budget
from prunelab.params.loader import validate
from prunelab.pruning.surgery import remove_channels
from prunelab.study.report import budget_channels, budget_section
from tests.helpers import tiny_model
from tests.test_params import raw_params

Counts = dict[str, int]
SPECS = {"pair_cnn": InputSpec(2, 28, 2), "simple_cnn": InputSpec(3, 32, 10), "resnet20": InputSpec(3, 32, 10)}
FRACTIONS = (0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875)  # params.yaml's sensitivity.fractions


# --------------------------------------------------------------------------- the allocation before round_to
# The three strategies as they were before `round_to` (one channel at a time), the oracle of
# "round_to 1 changes nothing". `_smallest`, `_envelope`, `normalised_scores` are unchanged.
def _old_uniform(plans: Mapping[str, LayerPlan], flops: FlopsModel, budget: float) -> Counts:
    def at(share: float) -> Counts:
        return {name: min(len(p.order) - 1, int(share * len(p.order))) for name, p in plans.items()}

    return _smallest([at(step / STEPS) for step in range(STEPS + 1)], flops, budget)


def _old_sensitivity(plans: Mapping[str, LayerPlan], flops: FlopsModel, budget: float) -> Counts:
    names = list(plans)
    curves = {name: _envelope(plans[name]) for name in names}
    channels = {name: len(plans[name].order) for name in names}
    limit = {name: min(channels[name] - 1, int(curves[name][0][-1] * channels[name] + 1e-9)) for name in names}
    removed = dict.fromkeys(names, 0)

    def loss(name: str, k: int) -> float:
        return float(np.interp(k / channels[name], *curves[name]))

    def flops_kept(counts: Counts) -> float:
        return flops.kept({name: channels[name] - counts[name] for name in names})

    candidates = [dict(removed)]
    while True:
        now, best, choice = flops_kept(removed), None, None
        for i, name in enumerate(names):
            if removed[name] >= limit[name]:
                continue
            saved = now - flops_kept(removed | {name: removed[name] + 1})
            key = ((loss(name, removed[name] + 1) - loss(name, removed[name])) / max(saved, 1e-12),
                   removed[name] / channels[name], i)  # fmt: skip
            if best is None or key < best:
                best, choice = key, name
        if choice is None:
            break
        removed[choice] += 1
        candidates.append(dict(removed))
    return _smallest(candidates, flops, budget)


def _old_global(plans: Mapping[str, LayerPlan], flops: FlopsModel, budget: float) -> Counts:
    names = list(plans)
    everything = [(score, i, name) for name in names for i, score in enumerate(normalised_scores(plans[name]))]
    position = {name: {int(c): r for r, c in enumerate(plans[name].order)} for name in names}
    everything.sort(key=lambda t: (t[0], position[t[2]][t[1]], names.index(t[2])))
    removed = dict.fromkeys(names, 0)
    candidates = [dict(removed)]
    for _, _, name in everything:
        if removed[name] < len(plans[name].order) - 1:
            removed[name] += 1
            candidates.append(dict(removed))
    return _smallest(candidates, flops, budget)


OLD = {"uniform": _old_uniform, "sensitivity": _old_sensitivity, "global": _old_global}


# --------------------------------------------------------------------------- constructed plans
def _chain(channels: tuple[int, ...], seed: int) -> FlopsModel:
    """A constructed network: an input conv into group 0, a conv between each pair of groups, a
    BatchNorm-like term per group, a linear out of the last; random costs per channel pair."""
    rng = np.random.default_rng(seed)
    terms = [(int(rng.integers(1, 50)) * channels[0], None, 0)]
    for g in range(1, len(channels)):
        terms.append((int(rng.integers(1, 50)) * channels[g - 1] * channels[g], g - 1, g))
    terms += [(int(rng.integers(1, 5)) * p, None, g) for g, p in enumerate(channels)]
    terms.append((int(rng.integers(1, 50)) * channels[-1], len(channels) - 1, None))
    return FlopsModel(tuple(f"g{g}" for g in range(len(channels))), channels, tuple(terms))


def _plans(names: tuple[str, ...], channels: tuple[int, ...], seed: int, order_only: bool = False) -> dict:
    """Random orders, scores (None: an order-only criterion) and non-decreasing sensitivity curves."""
    rng = np.random.default_rng(seed)
    plans = {}
    for name, p in zip(names, channels, strict=True):
        scores = rng.random(p) - 0.2
        order = rng.permutation(p) if order_only else np.argsort(scores, kind="stable")
        losses = tuple(np.cumsum(rng.random(len(FRACTIONS)) * rng.choice([0.1, 1.0, 10.0])))
        plans[name] = LayerPlan(order, None if order_only else scores, FRACTIONS, losses)
    return plans


def _kept(flops: FlopsModel, removed: dict[str, list[int]]) -> Counts:
    return {name: p - len(removed[name]) for name, p in zip(flops.layers, flops.channels, strict=True)}


def _assert_rounded(flops: FlopsModel, plans: dict, removed: dict[str, list[int]], round_to: int) -> Counts:
    """Every group keeps an allowed count (a multiple of round_to, at least round_to, or all its
    channels), its plan's first K channels."""
    kept = _kept(flops, removed)
    for name, p in zip(flops.layers, flops.channels, strict=True):
        assert kept[name] in kept_counts(p, round_to), (name, p, kept[name], round_to)
        assert kept[name] == p or (kept[name] % round_to == 0 and kept[name] >= round_to)
        assert sorted(removed[name]) == sorted(plans[name].order[: len(removed[name])].tolist())
    return kept


def test_kept_counts_are_multiples_or_the_whole_group() -> None:
    assert kept_counts(32, 1) == tuple(range(1, 33))
    assert kept_counts(32, 8) == (8, 16, 24, 32)
    assert kept_counts(20, 8) == (8, 16, 20)  # whole, or a multiple below
    assert kept_counts(8, 8) == (8,) and kept_counts(7, 8) == (7,)  # a group of round_to or fewer stays whole
    with pytest.raises(ValueError, match="round_to=0"):
        allocate("uniform", {"g0": LayerPlan(np.arange(4))}, _chain((4,), 0), 0.5, 0)


@pytest.mark.parametrize("strategy", list(STRATEGIES))
@pytest.mark.parametrize("seed", range(6))
def test_round_to_one_is_exactly_the_unrounded_allocation(strategy: str, seed: int) -> None:
    channels = ((12, 20, 33, 7, 64), (32, 64, 128), (16, 32), (5,))[seed % 4]
    flops = _chain(channels, seed)
    plans = _plans(flops.layers, channels, seed, order_only=seed % 3 == 2)
    for budget in (0.95, 0.8, 0.6, 0.4, 0.25, 0.1, 0.01):
        counts = OLD[strategy](plans, flops, budget)
        expected = {name: sorted(int(c) for c in plans[name].order[: counts[name]]) for name in plans}
        assert allocate(strategy, plans, flops, budget, 1) == expected
        assert allocate(strategy, plans, flops, budget) == expected  # the default


def _one_back(flops: FlopsModel, kept: Counts, round_to: int) -> list[Counts]:
    """The allocations with one group one allowed count back up (none for a whole group)."""
    out = []
    for name, p in zip(flops.layers, flops.channels, strict=True):
        allowed = kept_counts(p, round_to)
        i = bisect_left(allowed, kept[name])
        if i + 1 < len(allowed):
            out.append(kept | {name: allowed[i + 1]})
    return out


@pytest.mark.parametrize("strategy", list(STRATEGIES))
@pytest.mark.parametrize("round_to", [2, 4, 8, 16])
@pytest.mark.parametrize("seed", range(4))
def test_rounded_allocations_meet_their_budget_and_round_to(strategy: str, round_to: int, seed: int) -> None:
    """On constructed networks (group sizes that are and are not multiples, one below round_to):
    between the least each strategy can keep and the whole model, every budget is met, with
    allowed counts only, and by the fewest blocks: one block back into some group it pruned would
    not fit."""
    channels = ((12, 20, 33, 7, 64), (32, 64, 128), (16, 40), (24, 48, 96, 17))[seed]
    flops = _chain(channels, seed)
    plans = _plans(flops.layers, channels, seed, order_only=seed == 3)
    most = _kept(flops, allocate(strategy, plans, flops, 0.0, round_to))  # a budget none meets: the most it removes
    _assert_rounded(flops, plans, allocate(strategy, plans, flops, 0.0, round_to), round_to)
    floor = flops.kept(most)
    for q in (0.05, 0.3, 0.6, 0.9):
        budget = floor + q * (1 - floor)
        removed = allocate(strategy, plans, flops, budget, round_to)
        kept = _assert_rounded(flops, plans, removed, round_to)
        assert flops.kept(kept) <= budget + 1e-12
        if any(removed.values()):  # uniform too: with round_to > 1 its groups step one at a time
            assert any(flops.kept(back) > budget for back in _one_back(flops, kept, round_to))


@pytest.mark.parametrize("arch", ["pair_cnn", "simple_cnn", "resnet20"])
@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_rounded_allocations_on_a_real_models_groups(arch: str, strategy: str) -> None:
    """A real model's channel groups (resnet20: residual groups spanning several convs) at
    params.yaml's budgets: multiples of 8 met within budget, exact for the counter of the
    physically smaller model."""
    spec = SPECS[arch]
    model, example = tiny_model(arch, spec), example_input(spec)
    groups = find_groups(model, example)
    flops = flops_model(model, groups, example)
    plans = _plans(flops.layers, flops.channels, 0)
    for budget in (0.75, 0.5, 0.25):
        removed = allocate(strategy, plans, flops, budget, 8)
        kept = _assert_rounded(flops, plans, removed, 8)
        assert flops.kept(kept) <= budget + 1e-12
        assert all(n % 8 == 0 for n in kept.values())  # every group of these models is a multiple of 8
        if strategy == "uniform" and arch == "pair_cnn":  # the same share of each layer, to a block
            shares = [len(removed[g.name]) / g.channels for g in groups]
            assert max(shares) - min(shares) < 8 / min(g.channels for g in groups)
    smaller = remove_channels(model, groups, removed, example)
    assert flops.kept(kept) == pytest.approx(layer_flops(smaller, spec) / flops.total, rel=1e-12)
    convs = [m for m in smaller.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(conv.out_channels % 8 == 0 for conv in convs)


# --------------------------------------------------------------------------- params
# Bad values of budget.round_to: in tests/test_network.py's table of one-line refusals.


def test_round_to_is_checked_against_traced_groups() -> None:
    """A traced architecture's groups are known only to the stages: `check_groups` refuses there."""
    raw = copy.deepcopy(raw_params())
    raw["model"]["arch"] = "resnet20"
    raw["budget"]["round_to"] = 32  # resnet20's first groups have 16 channels
    params = validate(raw)
    groups = [ChannelGroup(name, p, (name,), (f"{name}_bn",), ()) for name, p in (("conv1", 16), ("layer2", 32))]
    with pytest.raises(UserError) as err:
        params.check_groups(groups)
    message = str(err.value)
    assert message == (
        "params.yaml: budget.round_to=32 is larger than channel group 'conv1' of model.arch=resnet20 (16 channels); "
        "allowed: an integer from 1 to 16 (1: no rounding)"
    )
    raw["budget"]["round_to"] = 16
    validate(raw).check_groups(groups)  # a group of exactly round_to channels: allowed (it stays whole)


def test_params_yaml_rounds_to_eight() -> None:
    assert validate(raw_params()).budget.round_to == 8


# --------------------------------------------------------------------------- outputs
def _implied(round_to: int) -> Implied:
    """params.yaml's facts (pair_cnn: conv1, conv2, conv3), one budget row, the given round_to."""
    facts = implied(validate(raw_params()))
    return replace(facts, budgets=(0.5,), strategies=("uniform",), budget_criteria=("l1_norm",), round_to=round_to)


def test_the_budget_table_check_refuses_counts_off_round_to() -> None:
    scores = ",".join(["80.000000"] * 10)
    header = (
        "budget,strategy,criterion,channels,flops_kept,params_kept,acc,bacc,roc_auc,recal_acc,recal_bacc,"
        "finetuned_acc,finetuned_bacc,finetuned_roc_auc,finetuned_recal_acc,finetuned_recal_bacc\n"
    )
    table = (
        header
        + f"1.000000,unpruned,none,32/64/128,1.000000,1.000000,{scores}\n"
        + f"0.500000,uniform,l1_norm,{{}},0.490000,0.600000,{scores}\n"
    )
    check_budget("b.csv", table.format("24/48/88"), _implied(8))
    check_budget("b.csv", table.format("32/40/128"), _implied(8))  # a group left whole
    check_budget("b.csv", table.format("22/44/88"), _implied(1))
    for counts, round_to in (("22/44/88", 8), ("24/48/130", 8), ("24/48/96", 16)):
        with pytest.raises(UserError) as err:
            check_budget("b.csv", table.format(counts), _implied(round_to))
        message = str(err.value)
        assert f"line 3: channels {counts} are not, per group, all of the unpruned model's (32/64/128) or a " \
               f"multiple of budget.round_to={round_to}" in message, message  # fmt: skip
        assert "\n" not in message and "rerun budget" in message


def test_the_report_shows_the_channels_each_configuration_keeps() -> None:
    rows = [
        (0, 1.0, "unpruned", "none", "32/64/128"), (1, 1.0, "unpruned", "none", "32/64/128"),
        (0, 0.5, "uniform", "l1_norm", "24/48/88"), (1, 0.5, "uniform", "l1_norm", "24/48/88"),
        (0, 0.5, "global", "l1_norm", "16/48/96"), (1, 0.5, "global", "l1_norm", "24/40/96"),
    ]  # fmt: skip
    table = pd.DataFrame(rows, columns=["seed", "budget", "strategy", "criterion", "channels"])
    channels = budget_channels(table)
    assert channels == {
        ("unpruned", "none", "flops_100"): "32/64/128",
        ("uniform", "l1_norm", "flops_50"): "24/48/88",
        ("global", "l1_norm", "flops_50"): "16–24/40–48/96",  # the range over seeds where they differ
    }
    metrics = {"unpruned": {s: {"mean": 75.0} for s in ("finetuned_recal_bacc", "finetuned_roc_auc")}}
    entry = {
        "flops_kept": {"mean": 0.49}, "params_kept": {"mean": 0.6}, "recal_bacc": {"mean": 70.0},
        "finetuned_recal_bacc": {"mean": 74.5},
        "finetuned_recal_bacc_vs_unpruned": {"mean": -0.5, "ci_low": -0.5, "ci_high": -0.5, "margin": 2.0},
        "finetuned_roc_auc_vs_unpruned": {"mean": 0.0, "ci_low": 0.0, "ci_high": 0.0, "margin": 1.0},
    }  # fmt: skip
    metrics["uniform"] = {"l1_norm": {"flops_50": entry}}
    metrics["global"] = {"l1_norm": {"flops_50": entry}}
    text = "\n".join(budget_section(metrics, 2, choose_budget(metrics, [0.5]), channels))
    assert "| 0.5 | uniform | l1_norm | 24/48/88 | 0.490 | 0.600 | 70.0 | 74.5 | -0.5 [-0.5, -0.5] | — |" in text
    assert "| 0.5 | global | l1_norm | 16–24/40–48/96 | 0.490 |" in text
    assert "(unpruned: 32/64/128)" in text and "`budget.round_to`" in text
