"""Removal orders on disk: each criterion's order, as ranking.csv (criterion, rank, channel).

pandas only (no torch): fine-tuning, export and the figures read the orders sweep_prune ranked.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from prunelab.checks.tables import check_ranking
from prunelab.errors import UserError

if TYPE_CHECKING:
    from prunelab.checks.implied import Implied


def ranking_table(orders: dict[str, np.ndarray]) -> pd.DataFrame:
    """criterion, rank, channel for every criterion (rank 0 = pruned first). For a criterion
    with several orders (random) only the first is written: the one fine-tuning uses."""
    parts = [
        pd.DataFrame({"criterion": name, "rank": np.arange(order.shape[1]), "channel": order[0]})
        for name, order in orders.items()
    ]
    return pd.concat(parts, ignore_index=True)


def ranked_order(path: Path, criterion: str, channels: int, implied: Implied | None = None) -> np.ndarray:
    """`criterion`'s removal order from a ranking table (ranking.csv of sweep_prune). The whole
    table is checked first (`prunelab.checks.tables.check_ranking`: every criterion's order a
    permutation of the P channels; given `implied`, the criteria params.yaml ranks)."""
    if not path.exists():
        raise UserError(f"{path}: ranking table not found; run the sweep_prune stage (dvc repro)")
    try:
        text = path.read_text()
        check_ranking(path, text, channels, implied)
        table = pd.read_csv(io.StringIO(text))
        order = table[table["criterion"] == criterion].sort_values("rank")["channel"].to_numpy()
    except (OSError, ValueError, KeyError) as err:
        raise UserError(f"{path}: unreadable ranking table ({type(err).__name__}); rerun sweep_prune") from None
    if sorted(order.tolist()) != list(range(channels)):
        raise UserError(f"{path}: no complete {criterion} order of {channels} channels; rerun sweep_prune")
    return order
