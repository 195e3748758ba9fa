"""Each criterion against a brute-force ranking on a tiny model; ties, reverse, random."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from prunelab.models.groups import group_named
from prunelab.models.records import ChannelGroup
from prunelab.pruning.activations import ActivationStats
from prunelab.pruning.criteria import (
    CRITERIA,
    RankingContext,
    greedy_reconstruction_order,
    order_from_scores,
    removal_orders,
)
from tests.helpers import lab_groups, tiny_model

P = 128


def brute_force_order(scores: list[float]) -> list[int]:
    """Ascending by score, then by channel index: sort (score, index) tuples."""
    return [c for _, c in sorted((s, c) for c, s in enumerate(scores))]


def stats_with(**arrays: np.ndarray) -> ActivationStats:
    rng = np.random.default_rng(1)
    contributions = rng.normal(size=(P, 2 * P))  # a random PSD Gram: G = A Aᵀ
    base = {
        "conv_mean": rng.normal(size=P),
        "act_mean": rng.random(P),
        "feature_maps": rng.random((P, 7, 7)),
        "apoz": rng.random(P),
        "taylor": rng.random(P),
        "contribution_gram": contributions @ contributions.T,
        "n_samples": 10,
    }
    return ActivationStats(**{**base, **arrays})


@functools.cache
def conv3() -> ChannelGroup:
    """The lab's layer: the pairs model's channel group conv3 (P = 128)."""
    group = group_named(lab_groups(tiny_model("pair_cnn"), "pair_cnn"), "conv3")
    assert group.channels == P
    return group


def context(stats: ActivationStats, headline: str = "mean_activation", seed: int = 0, r: int = 5) -> RankingContext:
    return RankingContext(stats, tiny_model("pair_cnn"), headline, seed, r, conv3())


def test_ties_break_by_channel_index() -> None:
    scores = np.array([0.5, 0.0, 0.2, 0.0, 0.0, 0.2])
    assert order_from_scores(scores).tolist() == [1, 3, 4, 2, 5, 0]


def test_dead_channels_are_pruned_first_in_index_order() -> None:
    act = np.random.default_rng(0).random(P) + 0.1
    dead = [90, 3, 64]
    act[dead] = 0.0
    order = removal_orders("mean_activation", context(stats_with(act_mean=act)))[0]
    assert order[:3].tolist() == [3, 64, 90]
    assert order.tolist() == brute_force_order(act.tolist())


@pytest.mark.parametrize(
    ("criterion", "score"),
    [
        ("mean_activation", lambda s, m: s.act_mean),
        ("mean_conv_output", lambda s, m: s.conv_mean),
        ("abs_mean_conv_output", lambda s, m: np.abs(s.conv_mean)),
        ("taylor", lambda s, m: s.taylor),
        ("l1_norm", lambda s, m: [float(m.block.conv.weight[c].detach().double().abs().sum()) for c in range(P)]),
        ("bn_gamma", lambda s, m: [abs(float(m.block.bn.weight[c].detach())) for c in range(P)]),
    ],
)
def test_score_criteria_match_brute_force(criterion, score) -> None:
    ctx = context(stats_with())
    expected = brute_force_order(list(np.asarray(score(ctx.stats, ctx.model), dtype=float)))
    order = removal_orders(criterion, ctx)
    assert order.shape == (1, P)
    assert order[0].tolist() == expected


def test_apoz_prunes_the_most_often_zero_channel_first() -> None:
    # APoZ from counts: channel c is zero at zeros[c] of 10 samples × 49 positions.
    zeros = np.random.default_rng(2).integers(0, 490, P)
    zeros[[5, 6]] = 490  # two always-dead channels: tie, broken by index
    stats = stats_with(apoz=zeros / 490)
    order = removal_orders("apoz", context(stats))[0].tolist()
    assert order[:2] == [5, 6]
    assert order == [c for _, c in sorted((-z, c) for c, z in enumerate(zeros.tolist()))]


def test_l1_norm_uses_filter_weights() -> None:
    ctx = context(stats_with())
    with torch.no_grad():
        ctx.model.block.conv.weight[42] = 0.0
    assert removal_orders("l1_norm", ctx)[0][0] == 42


def test_reconstruction_is_one_greedy_order_of_the_contribution_gram() -> None:
    ctx = context(stats_with())
    order = removal_orders("reconstruction", ctx)
    assert order.shape == (1, P)
    assert order[0].tolist() == greedy_reconstruction_order(ctx.stats.contribution_gram).tolist()
    # Shown to users in registry order: with the other single-order criteria, before random and reverse.
    names = list(CRITERIA)
    assert names.index("reconstruction") < names.index("random") < names.index("reverse")


@pytest.mark.parametrize("headline", ["mean_activation", "apoz", "l1_norm", "taylor", "reconstruction"])
def test_reverse_is_the_headline_order_backwards(headline: str) -> None:
    ctx = context(stats_with(), headline=headline)
    forward = removal_orders(headline, ctx)[0]
    assert removal_orders("reverse", ctx)[0].tolist() == forward[::-1].tolist()


def test_random_orders_are_reproducible_permutations() -> None:
    stats = stats_with()
    a = removal_orders("random", context(stats, seed=7, r=20))
    b = removal_orders("random", context(stats, seed=7, r=20))
    c = removal_orders("random", context(stats, seed=8, r=20))
    assert a.shape == (20, P)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    for row in a:
        assert sorted(row.tolist()) == list(range(P))
    assert len({tuple(row) for row in a.tolist()}) == 20


def test_every_registered_criterion_yields_permutations() -> None:
    ctx = context(stats_with())
    assert "reconstruction" in CRITERIA
    for name in CRITERIA:
        for row in removal_orders(name, ctx):
            assert sorted(row.tolist()) == list(range(P)), name
