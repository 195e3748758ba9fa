"""Reading the replicates: every seed's per-seed tables and summary, stacked with a `seed` column.

A missing, unreadable or foreign file is a one-line UserError naming the stage that writes it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from prunelab.errors import UserError
from prunelab.paths import finetune_path, seed_summary_path, sweep_path, train_curve_path


def per_seed_tables(
    seeds: list[int], path_of: Callable[[int], Path], what: str, stage: str, required: tuple[str, ...] = ()
) -> pd.DataFrame:
    """Every seed's `what` table (CSV) stacked, with a `seed` column; a missing, unreadable or
    foreign file is a one-line UserError naming the stage that writes it."""
    parts = []
    for seed in seeds:
        path = path_of(seed)
        if not path.exists():
            raise UserError(f"{path}: the {what} of seed {seed} is missing; run its stages (dvc repro)")
        try:
            table = pd.read_csv(path)
        except (ValueError, OSError) as err:
            raise UserError(f"{path}: unreadable {what} table ({type(err).__name__}); rerun {stage}") from None
        if not set(required) <= set(table.columns):
            raise UserError(f"{path}: not a {what} table (needs {', '.join(required)}); rerun {stage}")
        parts.append(table.assign(seed=seed))
    return pd.concat(parts, ignore_index=True)


def load_sweeps(seeds: list[int]) -> pd.DataFrame:
    """Every seed's sweep table (k, criterion, acc, bacc, …) with a `seed` column."""
    return per_seed_tables(seeds, sweep_path, "sweep", "sweep_prune", ("k", "criterion", "acc", "bacc"))


def load_train_curves(seeds: list[int]) -> pd.DataFrame:
    """Every seed's training curve (epoch, train_loss, test_acc, test_bacc) with a `seed` column."""
    return per_seed_tables(seeds, train_curve_path, "training curve", "train")


def load_summaries(seeds: list[int]) -> dict[int, dict]:
    summaries = {}
    for seed in seeds:
        path = seed_summary_path(seed)
        try:
            summaries[seed] = json.loads(path.read_text())
        except FileNotFoundError:
            raise UserError(f"{path}: the summary of seed {seed} is missing; run its stages (dvc repro)") from None
        except ValueError as err:
            raise UserError(f"{path}: unreadable summary ({type(err).__name__}); rerun sweep_prune") from None
    return summaries


def load_finetunes(seeds: list[int]) -> pd.DataFrame:
    """Every seed's fine-tuning table (criterion, point, k, acc, bacc, roc_auc) with a `seed` column."""
    return per_seed_tables(seeds, finetune_path, "fine-tuning", "finetune")
