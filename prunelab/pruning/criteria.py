"""Channel ranking criteria: one registry, each entry a small function.

A criterion returns removal orders: an R×P integer array whose row r lists channels in
the order they are pruned (first = pruned at K = 1). Score-based criteria return one order:
ascending score, ties broken by channel index. `reconstruction` returns one greedy order (ties
also to the lowest index), `random` R seeded permutations and `reverse` the headline order
backwards (most important first: the sanity bound).

Adding a criterion means adding one function to `CRITERIA` and its name to
`prunelab.pruning.names.CRITERION_NAMES` (params validation reads the names there, in every stage;
a test checks the two agree). No torch at import; the criteria that read weights get them from the
model they are handed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from prunelab.errors import UserError

if TYPE_CHECKING:
    from torch import nn

    from prunelab.models.records import ChannelGroup
    from prunelab.pruning.records import ActivationStats

RANDOM_STREAM = 104_729  # separates the random-order stream from every other use of the seed


@dataclass(frozen=True)
class RankingContext:
    stats: ActivationStats
    model: nn.Module
    headline: str
    seed: int
    random_orders: int
    group: ChannelGroup  # the channel group ranked
    fast: bool = True  # whether the group has one linear consumer (what `reconstruction` needs)


def order_from_scores(scores: np.ndarray) -> np.ndarray:
    """Channels by ascending score; equal scores (e.g. dead ReLU channels) by channel index."""
    return np.argsort(np.asarray(scores), kind="stable")


def _scored(score: Callable[[RankingContext], np.ndarray]) -> Callable[[RankingContext], np.ndarray]:
    def orders(ctx: RankingContext) -> np.ndarray:
        return order_from_scores(score(ctx))[None, :]

    orders.__doc__ = score.__doc__
    orders.scores = score  # type: ignore[attr-defined]  # what `channel_scores` reads
    return orders


def l1_norm_scores(ctx: RankingContext) -> np.ndarray:
    """The L1 norm of each channel's filter (Li et al. 2017), averaged over the group's producing
    convs: Torch-Pruning's group_reduction="mean" over the producers' output channels (one
    producer: its filter's L1 norm, as Li et al.; tested against Torch-Pruning's pruner)."""
    norms = [
        np.abs(ctx.model.get_submodule(path).weight.detach().cpu().double().numpy()).sum(axis=(1, 2, 3))
        for path in ctx.group.producers
    ]
    return norms[0] if len(norms) == 1 else np.mean(norms, axis=0)


def bn_gamma_scores(ctx: RankingContext) -> np.ndarray:
    """|γ| of the group's BatchNorms (network slimming), averaged over them (group_reduction="mean")."""
    if not ctx.group.norms:  # params validation refuses this combination; this guards direct callers
        raise UserError(f"bn_gamma needs a BatchNorm over {ctx.group.name}'s channels; this group has none")
    gammas = [ctx.model.get_submodule(path).weight.detach().cpu().double().abs().numpy() for path in ctx.group.norms]
    return gammas[0] if len(gammas) == 1 else np.mean(gammas, axis=0)


def greedy_reconstruction_order(gram: np.ndarray) -> np.ndarray:
    """The greedy removal order that least disturbs the consumer's pre-activation (ThiNet's
    greedy channel selection, Luo et al. 2017, applied to the next layer: fc1, or the next conv).

    `gram` is the P×P centred Gram matrix of the channels' contributions to that
    pre-activation (see `ActivationStats.contribution_gram`): removing a set R, with its mean
    contribution folded into the consumer's bias, leaves a squared error E(R) = Σ_{c,c'∈R} G[c, c']
    over the ranking split.
    Starting from R = ∅, each step removes the channel c with the smallest
    E(R ∪ {c}) − E(R) = 2 Σ_{c'∈R} G[c, c'] + G[c, c]; equal increases (e.g. dead channels,
    whose rows are zero) go to the lowest channel index. The running row sums Σ_{c'∈R} G[c, c']
    make the whole order O(P²).
    """
    g = np.asarray(gram, dtype=np.float64)
    if g.ndim != 2 or g.shape[0] != g.shape[1]:
        raise ValueError(f"the contribution Gram matrix must be square, not {g.shape}")
    if not np.isfinite(g).all():
        # inf marks channels already removed below, and argmin would pick a NaN first.
        raise ValueError("the contribution Gram matrix has non-finite entries")
    p, diagonal = g.shape[0], np.diag(g)
    cross = np.zeros(p)  # Σ_{c'∈R} G[c, c'] for the channels removed so far
    removed = np.zeros(p, dtype=bool)
    order = np.empty(p, dtype=np.int64)
    for step in range(p):
        increase = 2.0 * cross + diagonal
        increase[removed] = np.inf
        channel = int(np.argmin(increase))  # argmin returns the first of equal minima
        order[step] = channel
        removed[channel] = True
        cross += g[:, channel]
    return order


def reconstruction_orders(ctx: RankingContext) -> np.ndarray:
    """Greedy least increase in the consumer's pre-activation error over the ranking split (one order)."""
    if not ctx.fast:
        raise UserError(
            f"reconstruction needs a channel group with one linear consumer; {ctx.group.name} has several "
            "(choose another prune.layer, or drop reconstruction from the criteria)"
        )
    return greedy_reconstruction_order(ctx.stats.contribution_gram)[None, :]


def random_orders(ctx: RankingContext) -> np.ndarray:
    """R uniform random permutations, reproducible under params `seed`."""
    rng = np.random.default_rng([ctx.seed, RANDOM_STREAM])
    return np.stack([rng.permutation(ctx.stats.channels) for _ in range(ctx.random_orders)])


def reverse_order(ctx: RankingContext) -> np.ndarray:
    """The headline criterion's order, backwards."""
    return CRITERIA[ctx.headline](ctx)[:, ::-1].copy()


CRITERIA: dict[str, Callable[[RankingContext], np.ndarray]] = {
    # Mean of the block output after BN and ReLU: the lab's criterion, done on the right tensor.
    "mean_activation": _scored(lambda ctx: ctx.stats.act_mean),
    # Mean of the raw conv output, as the handout's code ranks.
    "mean_conv_output": _scored(lambda ctx: ctx.stats.conv_mean),
    # abs(mean raw conv output), as the report's code ranks.
    "abs_mean_conv_output": _scored(lambda ctx: np.abs(ctx.stats.conv_mean)),
    # Average percentage of zeros after ReLU (Hu et al. 2016): highest APoZ is pruned first.
    "apoz": _scored(lambda ctx: -ctx.stats.apoz),
    # L1 norm of each filter (Li et al. 2017).
    "l1_norm": _scored(l1_norm_scores),
    "bn_gamma": _scored(bn_gamma_scores),
    # First-order Taylor (Molchanov et al. 2017): mean over samples of |mean_m a_m · dL/da_m|.
    "taylor": _scored(lambda ctx: ctx.stats.taylor),
    # ThiNet's greedy selection (Luo et al. 2017) on the next layer: at every K, remove the channel whose
    # removal least increases the squared error of the consumer's pre-activation (fc1, or the next conv)
    # over the ranking split, each channel's mean contribution folded in. Unlike the scores above, each
    # step accounts for the channels already removed: a channel whose contribution offsets theirs is
    # cheap, one that adds to it is dear.
    "reconstruction": reconstruction_orders,
    "random": random_orders,
    "reverse": reverse_order,
}


def removal_orders(criterion: str, ctx: RankingContext) -> np.ndarray:
    return CRITERIA[criterion](ctx)


def channel_scores(criterion: str, ctx: RankingContext) -> np.ndarray | None:
    """The P per-channel scores a score-based criterion orders by (lowest pruned first), or None
    for a criterion that only orders (reconstruction's greedy steps, random, reverse)."""
    score = getattr(CRITERIA[criterion], "scores", None)
    return None if score is None else np.asarray(score(ctx), dtype=np.float64)
