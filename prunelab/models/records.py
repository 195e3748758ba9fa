"""Plain records of a model's structure, with no torch: what params validation, checks, the study
and the figures pass around. `prunelab.models.groups` finds the groups; `prunelab.models.cost`
builds the cost models."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class ChannelGroup:
    """One group of coupled channels, by module path."""

    name: str  # readable and stable: the model's name for it, else its first producer's path
    channels: int
    producers: tuple[str, ...]  # convs whose output channels these are, in forward order
    norms: tuple[str, ...]  # BatchNorms over these channels
    consumers: tuple[str, ...]  # convs (groups=1) and Linears that read them as inputs
    depthwise: tuple[str, ...] = ()  # depthwise convs whose inputs, outputs and groups shrink with them

    @property
    def producer(self) -> str:
        """The first producing conv: where the raw conv output of the statistics is read."""
        return self.producers[0]


@dataclass(frozen=True)
class CostModel:
    """A model's cost (FLOPs per sample, or parameters) as a function of how many channels each
    group keeps. Every term is one tensor's work or size, proportional to its kept input channels
    (the group it reads; None: not pruned) times its kept output channels (the group it writes): a
    conv's weights and work are bilinear in the two, a bias or BatchNorm linear in its group, a
    depthwise conv linear in its one group. So pruning two adjacent groups is not additive, and the
    cost of any kept counts is exact arithmetic (tested against FlopCounterMode and parameter
    counts of physically smaller models)."""

    layers: tuple[str, ...]  # group names
    channels: tuple[int, ...]
    terms: tuple[tuple[int, int | None, int | None], ...]  # (cost, input group index, output group index)

    @property
    def total(self) -> int:
        return sum(cost for cost, _, _ in self.terms)

    def kept(self, counts: Mapping[str, int]) -> float:
        """The share of the cost kept when group g keeps counts[g] channels (unnamed groups: all)."""
        share = [counts.get(name, p) / p for name, p in zip(self.layers, self.channels, strict=True)]
        kept = sum(
            cost * (1.0 if i is None else share[i]) * (1.0 if o is None else share[o]) for cost, i, o in self.terms
        )
        return kept / self.total

    def per_channel(self, group: str) -> int:
        """What one channel of `group` costs when it alone is pruned (exact: an integer)."""
        g = self.layers.index(group)
        p = self.channels[g]
        return sum(cost // p for cost, i, o in self.terms if g in (i, o))


@dataclass(frozen=True)
class LatencyModel:
    """A model's latency on one machine as a function of how many channels each group keeps, read
    off a measured latency table (`prunelab.deploy.latency`): per group, the share of the unpruned
    model's time left when that group alone keeps k channels (measured at every count the table holds,
    linear between them), and for several groups the product of their shares. A conv between two
    groups does work proportional to both kept shares, so for a model that is one such conv the
    product is exact, where the sum of single-group savings counts the saving twice.

    Measured against (pair_cnn, 2-core Xeon, deployed format, batch 256): 24 random allowed
    combinations of counts, each timed as a share of the unpruned model over 20 paired rounds. This
    product: mean absolute error 7.1 %, largest 30.9 % (the smallest models, 8/8/8, run faster than
    it says), no bias; the sum of single-group savings: 32.8 % (it predicts negative times); that sum
    with each conv between two pruned groups added back at its FLOPs times the groups' ms per FLOP:
    12.2 %, largest 104 % (bias +6 %); the FLOPs share: 33.3 %, always too fast. How well it predicts
    the study's budget models is in efficiency.json (`latency_prediction`). Same interface as
    `CostModel` (`layers`, `channels`, `total`, `kept`), so every budget strategy allocates against
    either."""

    layers: tuple[str, ...]  # group names
    channels: tuple[int, ...]
    unpruned_ms: float  # the unpruned model's latency (the median of its timings beside each group's)
    # Per group: (kept count, share of the unpruned model's time left), ascending counts, ending (P, 1.0).
    shares: tuple[tuple[tuple[int, float], ...], ...]

    @property
    def total(self) -> float:
        return self.unpruned_ms

    def kept(self, counts: Mapping[str, int]) -> float:
        """The share of the unpruned model's latency predicted when group g keeps counts[g] channels
        (unnamed groups: all): the product of each group's measured share alone."""
        share = 1.0
        for name, p, table in zip(self.layers, self.channels, self.shares, strict=True):
            share *= _interpolated(table, counts.get(name, p))
        return share

    def predicted_ms(self, counts: Mapping[str, int]) -> float:
        """Milliseconds when group g keeps counts[g] channels (unnamed groups: all)."""
        return self.unpruned_ms * self.kept(counts)


def _interpolated(table: tuple[tuple[int, float], ...], kept: int) -> float:
    """The table's value at `kept` channels: at a count it holds, linear between two, and the nearest
    end's beyond them."""
    for (low, low_ms), (high, high_ms) in itertools.pairwise(table):
        if low <= kept <= high:
            return low_ms + (high_ms - low_ms) * (kept - low) / (high - low)
    if kept <= table[0][0]:
        return table[0][1]
    return table[-1][1]


def kept_counts(channels: int, round_to: int = 1) -> tuple[int, ...]:
    """The channel counts a group of `channels` may keep under `budget.round_to`, ascending: every
    multiple of `round_to` from `round_to` up to `channels`, and `channels` itself (the group left
    whole). `round_to` 1: every count from 1 to `channels`; `round_to` >= `channels`: only
    `channels` (params refuse a `round_to` above a group's channels; here such a group stays whole)."""
    return tuple(sorted({*range(round_to, channels + 1, round_to), channels}))


def measured_counts(channels: int, round_to: int, most: int) -> tuple[int, ...]:
    """The counts the latency table measures for a group of `channels` (`latency.counts`: at most
    `most` of them): every allowed count (`kept_counts`) when there are no more than `most`, else
    `most` of them spread evenly from the smallest to the whole group (always both); the latency
    model interpolates linearly between them."""
    allowed = kept_counts(channels, round_to)
    if len(allowed) <= most:
        return allowed
    last = len(allowed) - 1
    return tuple(sorted({allowed[round(i * last / (most - 1))] for i in range(most)}))


def metric_key(name: str) -> str:
    """A group name as a key of a DVC metrics file, which flattens nested keys with dots:
    `layer1.0.conv1` → `layer1_0_conv1` (the lab's `conv1` … are unchanged)."""
    return name.replace(".", "_")


def groups_document(groups: tuple[ChannelGroup, ...] | list[ChannelGroup]) -> list[dict]:
    """The groups as JSON-ready records (`metrics/seeds/<s>/groups.json`, written by the train stage)."""
    return [
        {
            "name": g.name, "channels": g.channels, "producers": list(g.producers), "norms": list(g.norms),
            "consumers": list(g.consumers), "depthwise": list(g.depthwise),
        }
        for g in groups
    ]  # fmt: skip


def groups_from_document(document: object) -> tuple[ChannelGroup, ...]:
    """`groups_document`'s records back as groups; ValueError on anything else."""
    if not isinstance(document, list) or not document:
        raise ValueError("not a non-empty list of channel groups")
    out = []
    for entry in document:
        if not isinstance(entry, dict) or set(entry) != {"name", "channels", "producers", "norms", "consumers",
                                                          "depthwise"}:  # fmt: skip
            raise ValueError("a channel group needs exactly name, channels, producers, norms, consumers, depthwise")
        if not isinstance(entry["name"], str) or not isinstance(entry["channels"], int) or entry["channels"] < 1:
            raise ValueError("a channel group's name is a string and its channels a positive integer")
        lists = ("producers", "norms", "consumers", "depthwise")
        if not all(isinstance(entry[k], list) and all(isinstance(v, str) for v in entry[k]) for k in lists):
            raise ValueError("a channel group's module lists hold module paths (strings)")
        out.append(ChannelGroup(entry["name"], entry["channels"], *(tuple(entry[k]) for k in lists)))
    return tuple(out)
