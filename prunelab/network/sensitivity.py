"""Per-layer sensitivity (Li et al., ICLR 2017, Fig. 2): prune a share of one conv layer's
channels, every other layer intact, and score the model, for every layer, criterion and share.

Each layer is swept with the fast sweep of that layer (`prunelab.scoring.evaluate.evaluate_orders`),
so one pass of the layer's outputs serves every criterion and share. Random is scored as the
mean over its orders, the way the single-layer study pairs criteria with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from prunelab.scoring.names import SCORES

if TYPE_CHECKING:
    from torch import nn

    from prunelab.checks.implied import Implied
    from prunelab.models.groups import ChannelGroup
    from prunelab.pruning.records import ActivationStats
    from prunelab.pruning.views import GroupView
    from prunelab.scoring.evaluate import SplitOutputs


def fraction_ks(fractions: Sequence[float], channels: int) -> list[int]:
    """The K each share of a P-channel layer removes: the nearest integer, at least 1 and at
    most P − 1 (a layer always keeps a channel), so a small layer may repeat a K."""
    return [int(min(channels - 1, max(1, round(f * channels)))) for f in fractions]


@dataclass(frozen=True)
class LayerRanking:
    """One criterion's ranking of one layer: its removal orders (R×P; random has R rows) and,
    for a score-based criterion, the per-channel scores the first order sorts (else None)."""

    orders: np.ndarray
    scores: np.ndarray | None


def rank_layer(
    model: nn.Module,
    stats: ActivationStats,
    criteria: Sequence[str],
    *,
    headline: str,
    seed: int,
    random_orders: int,
    group: ChannelGroup,
    fast: bool = True,
) -> dict[str, LayerRanking]:
    """Every criterion's ranking of `group` from its statistics (`collect_stats`)."""
    from prunelab.pruning.criteria import RankingContext, channel_scores, removal_orders

    ctx = RankingContext(stats, model, headline, seed, random_orders, group, fast)
    return {name: LayerRanking(removal_orders(name, ctx), channel_scores(name, ctx)) for name in criteria}


def layer_sensitivity(
    view: GroupView,
    rankings: dict[str, LayerRanking],
    test: SplitOutputs,
    calibration: SplitOutputs,
    fractions: Sequence[float],
    n_classes: int,
) -> pd.DataFrame:
    """One row per criterion and share (0 first: the unpruned model): layer, fraction, k and
    every score of SCORES in percent, random's as the mean over its orders. The splits hold
    the group's sweep inputs (`block_outputs`)."""
    from prunelab.scoring.evaluate import evaluate_orders

    layer, channels = view.group.name, view.group.channels
    ks = [0, *fraction_ks(fractions, channels)]
    unique = sorted(set(ks))
    stacked = np.concatenate([r.orders for r in rankings.values()])
    scores = evaluate_orders(view, test, calibration, stacked, unique, n_classes, "remove")
    column = [unique.index(k) for k in ks]
    bounds = np.cumsum([0, *(len(r.orders) for r in rankings.values())])
    rows = []
    for name, first, last in zip(rankings, bounds[:-1], bounds[1:], strict=True):
        means = {score: values[first:last].mean(axis=0)[column] for score, values in scores.items()}
        for i, (fraction, k) in enumerate(zip([0.0, *fractions], ks, strict=True)):
            rows.append(
                {"layer": layer, "criterion": name, "fraction": float(fraction), "k": k}
                | {score: float(means[score][i]) for score in SCORES}
            )
    return pd.DataFrame(rows)


def save_rankings(path: Path | str, rankings: dict[str, dict[str, LayerRanking]]) -> None:
    """Each layer's criteria: the first removal order, and the scores when the criterion has them."""
    from prunelab.runtime import atomic_path

    arrays = {}
    for layer, ranked in rankings.items():
        for name, ranking in ranked.items():
            arrays[f"{layer}/{name}/order"] = np.asarray(ranking.orders[0], dtype=np.int64)
            if ranking.scores is not None:
                arrays[f"{layer}/{name}/scores"] = np.asarray(ranking.scores, dtype=np.float64)
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        np.savez(handle, **arrays)


def load_rankings(
    path: Path | str, channels: dict[str, int], criteria: Sequence[str]
) -> dict[str, dict[str, LayerRanking]]:
    """`save_rankings`'s file, checked: every layer of `channels` ranked by every criterion,
    each order a permutation of the layer's channels and each score finite."""
    import zipfile

    from prunelab.errors import UserError

    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: the layer rankings are missing; run the sensitivity stage (dvc repro)")
    out: dict[str, dict[str, LayerRanking]] = {}
    try:
        with np.load(path, allow_pickle=False) as raw:
            for layer, p in channels.items():
                out[layer] = {}
                for name in criteria:
                    order = raw[f"{layer}/{name}/order"]
                    scores = raw[f"{layer}/{name}/scores"] if f"{layer}/{name}/scores" in raw.files else None
                    if not np.array_equal(np.sort(order), np.arange(p)):
                        problem = f"{name}'s order of {layer} is not a permutation of its {p} channels"
                        raise UserError(f"{path}: {problem}; rerun sensitivity")
                    if scores is not None and (scores.shape != (p,) or not np.isfinite(scores).all()):
                        raise UserError(
                            f"{path}: {name}'s scores of {layer} are not {p} finite numbers; rerun sensitivity"
                        )
                    out[layer][name] = LayerRanking(order[None, :], scores)
    except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise UserError(f"{path}: unreadable layer rankings ({type(err).__name__}); rerun sensitivity") from None
    return out


def load_curves(path: Path | str, implied: Implied | None = None) -> pd.DataFrame:
    """One seed's sensitivity.csv, checked against its format and (given `implied`) the rows
    params.yaml implies (`prunelab.checks.tables.check_sensitivity`) before it is parsed."""
    from prunelab.checks.tables import check_sensitivity
    from prunelab.runtime import read_table

    return read_table(path, "sensitivity table", "sensitivity", lambda p, t: check_sensitivity(p, t, implied))
