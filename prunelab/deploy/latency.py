"""The latency table: what each channel group's count costs in milliseconds, on this machine, in the
deployed format (BatchNorm folded, channels-last; `prunelab.deploy.formats`), at batch 256.

For every group and the counts it may keep under `budget.round_to` (`measured_counts`: all of them,
or at most `latency.counts` spread evenly), the model with that group alone pruned to that count
(the first channels removed: which channels go does not change the work) is timed against the
unpruned model, the group's configurations in turn within each of `latency.rounds` rounds
(`interleaved_times`), so a drifting machine speed hits them alike and round i of one pairs with
round i of another. A row holds the median latency and its quartiles, and the milliseconds saved
against the unpruned model (median of the paired differences, and quartiles). NetAdapt (Yang et al.
2018) builds such tables per layer; Torch-Pruning and NNI have none.

The table is machine-dependent, like efficiency.json: `metrics/cost/latency/table.csv` is in git, so
a fresh clone reuses it (the stage reruns only when what it measures changes) and a rerun elsewhere
measures that machine. `prunelab.network.latency.latency_model` turns it into the cost the budget
strategies allocate against with `budget.target: latency`; `configuration_shares` measures pruned
models to say how well it predicts them.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from prunelab.deploy.efficiency import batch_of, latency_rounds
from prunelab.deploy.formats import deployed
from prunelab.models.groups import remove_channels
from prunelab.models.records import measured_counts

if TYPE_CHECKING:
    import pandas as pd
    from torch import nn

    from prunelab.models.records import ChannelGroup

TABLE_ROUNDS = 20  # interleaved rounds per configuration of the table (latency.rounds)
TABLE_COUNTS = 16  # the most counts measured per group (latency.counts)
BATCH = 256


def _pruned_to(
    model: nn.Module, groups: Sequence[ChannelGroup], counts: Mapping[str, int], example: torch.Tensor
) -> nn.Module:
    """`model` with each named group keeping `counts[name]` channels (its first ones removed), deployed."""
    by_name = {g.name: g for g in groups}
    removed = {name: list(range(by_name[name].channels - kept)) for name, kept in counts.items()}
    removed = {name: channels for name, channels in removed.items() if channels}
    return deployed(remove_channels(model, groups, removed, example) if removed else model)


@torch.no_grad()
def latency_table(
    model: nn.Module,
    groups: Sequence[ChannelGroup],
    example: torch.Tensor,
    images: torch.Tensor,
    round_to: int,
    rounds: int = TABLE_ROUNDS,
    most: int = TABLE_COUNTS,
) -> pd.DataFrame:
    """The table: one row per group and count of `measured_counts(channels, round_to, most)` (the
    last, all of the group's channels, is the unpruned model: 0 ms saved), columns group, channels,
    kept, latency_ms, latency_ms_q25, latency_ms_q75, saved_ms, saved_ms_q25, saved_ms_q75. Group by
    group: its configurations and the unpruned model timed in turn within each of `rounds` rounds, so
    only one group's models are held at a time (a MobileNetV2 has dozens of groups)."""
    import pandas as pd

    model = model.cpu().eval()
    batch = batch_of(images, BATCH)
    unpruned_model = deployed(model)
    rows = []
    for group in groups:
        counts = measured_counts(group.channels, round_to, most)
        timed: dict[str, nn.Module] = {"": unpruned_model}
        for kept in counts[:-1]:
            timed[str(kept)] = _pruned_to(model, groups, {group.name: kept}, example)
        times = {key: 1000 * np.asarray(seconds) for key, seconds in latency_rounds(timed, batch, rounds).items()}
        unpruned = times[""]
        for kept in counts:
            measured = times[str(kept)] if kept < group.channels else unpruned
            ms = np.percentile(measured, [25, 50, 75])
            saved = np.percentile(unpruned - measured, [25, 50, 75])
            rows.append({
                "group": group.name, "channels": group.channels, "kept": kept,
                "latency_ms": ms[1], "latency_ms_q25": ms[0], "latency_ms_q75": ms[2],
                "saved_ms": saved[1], "saved_ms_q25": saved[0], "saved_ms_q75": saved[2],
            })  # fmt: skip
    return pd.DataFrame(rows)


@torch.no_grad()
def configuration_shares(
    model: nn.Module,
    groups: Sequence[ChannelGroup],
    example: torch.Tensor,
    images: torch.Tensor,
    configurations: Mapping[str, Mapping[str, int]],
    rounds: int = TABLE_ROUNDS,
) -> tuple[float, dict[str, float]]:
    """The unpruned model's median batch-256 latency (ms), and each configuration's (kept counts per
    group) measured share of it: the median over interleaved rounds of its time over the unpruned
    model's in the same round. A share is what the table's prediction (`LatencyModel.kept`) is
    compared with: measured the same minute as its reference, so it does not move with the machine's
    speed between the table's measurement and this one."""
    model = model.cpu().eval()
    timed: dict[str, nn.Module] = {"": deployed(model)}
    for label, counts in configurations.items():
        timed[label] = _pruned_to(model, groups, counts, example)
    times = latency_rounds(timed, batch_of(images, BATCH), rounds)
    unpruned = times[""]
    shares = {
        label: statistics.median(t / u for t, u in zip(times[label], unpruned, strict=True)) for label in configurations
    }
    return 1000 * statistics.median(unpruned), shares


def latency_report(prediction: dict, target: str) -> str:
    """metrics/latency.md: the table's prediction for every budget model of the first seed against its
    measurement (`prediction`: efficiency.json's `latency_prediction`), and FLOPs as a predictor beside it."""
    lines = [
        "# Latency budgets on this machine",
        "",
        f"`budget.target: {target}`: the budgets of `budget.flops` are shares of "
        + ("FLOPs per sample." if target == "flops" else "the unpruned model's latency, as the table predicts it."),
        "",
        "The latency table (`metrics/cost/latency/table.csv`: each channel group pruned alone to counts it may keep, "
        f"`latency.rounds` interleaved rounds at batch {BATCH} in the deployed format) predicts each pruned model's "
        "latency as a share of the unpruned model's. Below, the first seed's budget models are measured the same "
        f"way ({prediction['rounds']} paired rounds each; the unpruned model {prediction['unpruned_ms']:.2f} ms), "
        "and the prediction's error is the predicted share over the measured one, less 1. Latencies depend on the "
        "machine and its load: this file is rewritten by every export.",
        "",
        f"Table: mean absolute error {prediction['table_mean_abs_error_pct']:.1f} %, largest "
        f"{prediction['table_max_abs_error_pct']:.1f} % over {prediction['configurations']} distinct models. "
        f"FLOPs share as the prediction: mean {prediction['flops_mean_abs_error_pct']:.1f} %, largest "
        f"{prediction['flops_max_abs_error_pct']:.1f} %.",
        "",
        "| budget | strategy | criterion | channels | measured | table | error | FLOPs | error |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for budget, strategies in prediction.items():
        if not isinstance(strategies, dict):
            continue
        for strategy, criteria in strategies.items():
            for criterion, entry in criteria.items():
                channels = "/".join(str(n) for key, n in entry.items() if key.startswith("channels_"))
                lines.append(
                    f"| {float(budget.removeprefix('flops_')) / 100:g} | {strategy} | {criterion} | "
                    f"{channels} | {100 * entry['measured_share']:.1f} % | {100 * entry['table_share']:.1f} % "
                    f"| {entry['table_error_pct']:+.1f} % | {100 * entry['flops_share']:.1f} % | "
                    f"{entry['flops_error_pct']:+.1f} % |"
                )
    return "\n".join(lines) + "\n"
