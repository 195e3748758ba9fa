"""Budgets in milliseconds (`budget.target: latency`): the measured latency table as a cost model.

`latency_model` reads the table (`prunelab.deploy.latency.latency_table`: each group pruned alone
to each count it may keep, timed against the unpruned model) into a `LatencyModel`: the product of
each group's measured share of the unpruned model's time (what it measured against is in its docstring).
`read_latency_model` reads and checks the table into that model, and `budget_cost` picks the cost a
budget is a share of, for the budget stage and the export alike.
"""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING

from prunelab.models.records import CostModel, LatencyModel

if TYPE_CHECKING:
    import pandas as pd

# What a budget of each target is a share of, in words (logs, refusals, the report).
TARGET_WORDS = {"flops": "FLOPs", "latency": "predicted latency"}


def read_latency_table(channels: dict[str, int], round_to: int) -> pd.DataFrame:
    """metrics/cost/latency/table.csv, checked against the model's groups (`channels`: name → P, forward
    order) and budget.round_to before it is used (`prunelab.checks.tables.check_latency_table`)."""
    from prunelab.checks.tables import check_latency_table
    from prunelab.paths import LATENCY_TABLE
    from prunelab.runtime import read_table

    def check(path: object, text: str) -> None:
        check_latency_table(path, text, channels, round_to)

    return read_table(LATENCY_TABLE, "latency table", "latency", check)


def latency_model(table: pd.DataFrame, flops: CostModel) -> LatencyModel:
    """The table's `LatencyModel` for the groups of `flops` (the FLOPs cost model of the same model,
    which names the groups in forward order): per group and count it holds, the share of the unpruned
    model's time left, 1 − (median ms saved) / (the unpruned model's median timed beside that group's
    configurations); the unpruned model's latency is the median of those medians."""
    if not flops.layers:
        raise ValueError("a model without channel groups has no latency table")
    shares, unpruned = [], []
    for name, p in zip(flops.layers, flops.channels, strict=True):
        rows = table[table["group"] == name].sort_values("kept")
        whole = float(rows.loc[rows["kept"] == p, "latency_ms"].iloc[0])
        unpruned.append(whole)
        shares.append(
            tuple((int(k), 1.0 - float(ms) / whole) for k, ms in zip(rows["kept"], rows["saved_ms"], strict=True))
        )
    return LatencyModel(flops.layers, flops.channels, statistics.median(unpruned), tuple(shares))


def read_latency_model(flops: CostModel, round_to: int) -> LatencyModel:
    """The latency table of the model whose FLOPs model is `flops` (its groups, forward order), checked
    against them and budget.round_to (`read_latency_table`), as a `LatencyModel`."""
    return latency_model(read_latency_table(dict(zip(flops.layers, flops.channels, strict=True)), round_to), flops)


def budget_cost(target: str, flops: CostModel, latency: LatencyModel | None) -> CostModel | LatencyModel:
    """What `budget.flops` shares are shares of: FLOPs (`flops`), or with target `latency` the
    latency the table predicts (`latency`, from `read_latency_model`)."""
    if target == "flops":
        return flops
    if latency is None:
        raise ValueError("budget.target latency needs the latency table")
    return latency
