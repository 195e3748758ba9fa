"""Budgets in milliseconds (`budget.target: latency`): the measured latency table as a cost model.

`latency_model` reads the table (`prunelab.deploy.latency.latency_table`: each group pruned alone
to each count it may keep, timed against the unpruned model) into a `LatencyModel`: the unpruned
model's time less each group's measured saving, plus back the double-counted saving of every conv
between two pruned groups (its FLOPs times the two groups' measured milliseconds per FLOP saved).
`budget_cost` picks the cost a budget is a share of, for the budget stage and the export alike.
"""

from __future__ import annotations

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
    """The table's `LatencyModel` for the groups of `flops` (the FLOPs cost model of the same
    model): per group the median ms saved at each count, and per FLOPs term reading one pruned group
    and writing another its overlap in ms. A group's ms per FLOP is the least-squares slope (through
    0) of its measured savings on the FLOPs each count saves; negative slopes (noise on a group
    that saves nothing) count as 0."""
    saved = []
    per_flop = []
    unpruned = None
    for name, p in zip(flops.layers, flops.channels, strict=True):
        rows = table[table["group"] == name].sort_values("kept")
        points = tuple((int(k), float(ms)) for k, ms in zip(rows["kept"], rows["saved_ms"], strict=True))
        saved.append(points)
        whole = rows[rows["kept"] == p]
        unpruned = float(whole["latency_ms"].iloc[0]) if unpruned is None else unpruned
        flops_saved = [flops.total * (1.0 - flops.kept({name: k})) for k, _ in points]
        norm = sum(f * f for f in flops_saved)
        slope = sum(f * ms for f, (_, ms) in zip(flops_saved, points, strict=True)) / norm if norm else 0.0
        per_flop.append(max(slope, 0.0))
    overlap = tuple(
        (cost * (per_flop[i] + per_flop[o]) / 2, i, o)
        for cost, i, o in flops.terms
        if i is not None and o is not None and i != o
    )
    assert unpruned is not None  # a model has at least one group
    return LatencyModel(flops.layers, flops.channels, unpruned, tuple(saved), overlap)


def budget_cost(target: str, flops: CostModel, table: pd.DataFrame | None) -> CostModel | LatencyModel:
    """What `budget.flops` shares are shares of: FLOPs (`flops`), or with target `latency` the
    latency `table` predicts (`latency_model`)."""
    if target == "flops":
        return flops
    if table is None:
        raise ValueError("budget.target latency needs the latency table")
    return latency_model(table, flops)
