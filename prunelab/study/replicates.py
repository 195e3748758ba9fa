"""Reading the replicates: every seed's per-seed tables and summary, stacked with a `seed` column.

A missing, unreadable, foreign or damaged file is a one-line UserError naming the stage that
writes it. Every table is checked against its declared format before pandas reads it
(`prunelab.checks.tables`); given `params`, also against the rows params.yaml implies, and a
summary against its own sweep (`prunelab.checks.summary`): a cut-short table is refused, not
averaged over fewer seeds.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from prunelab.checks.implied import Implied, implied
from prunelab.checks.summary import check_summaries_agree, check_summary
from prunelab.checks.tables import (
    check_budget,
    check_finetune,
    check_sensitivity,
    check_sweep,
    check_sweeps_agree,
    check_train_curve,
)
from prunelab.errors import UserError
from prunelab.paths import budget_path, finetune_path, seed_summary_path, sensitivity_path, sweep_path, train_curve_path
from prunelab.runtime import read_json

if TYPE_CHECKING:
    from prunelab.params import Params


def per_seed_tables(
    seeds: list[int],
    path_of: Callable[[int], Path],
    what: str,
    stage: str,
    required: tuple[str, ...] = (),
    check: Callable[[Path, str], None] | None = None,
) -> pd.DataFrame:
    """Every seed's `what` table (CSV) stacked, with a `seed` column; a missing, unreadable,
    foreign or (by `check(path, text)`) damaged file is a one-line UserError naming the stage
    that writes it."""
    parts = []
    for seed in seeds:
        path = path_of(seed)
        if not path.exists():
            raise UserError(f"{path}: the {what} of seed {seed} is missing; run its stages (dvc repro)")
        try:
            text = path.read_text()
            if check is not None:
                check(path, text)
            table = pd.read_csv(io.StringIO(text))
        except (ValueError, OSError) as err:  # UnicodeDecodeError is a ValueError
            raise UserError(f"{path}: unreadable {what} table ({type(err).__name__}); rerun {stage}") from None
        if not set(required) <= set(table.columns):
            raise UserError(f"{path}: not a {what} table (needs {', '.join(required)}); rerun {stage}")
        parts.append(table.assign(seed=seed))
    return pd.concat(parts, ignore_index=True)


def _implied(params: Params | None) -> Implied | None:
    return implied(params) if params is not None else None


def load_sweeps(seeds: list[int], params: Params | None = None) -> pd.DataFrame:
    """Every seed's sweep table (k, criterion, acc, bacc, …) with a `seed` column. Given
    `params`, each must hold exactly the (K, criterion) rows params.yaml implies."""
    expected = _implied(params)
    sweeps = per_seed_tables(
        seeds, sweep_path, "sweep", "sweep_prune", ("k", "criterion", "acc", "bacc"),
        check=lambda path, text: check_sweep(path, text, expected),
    )  # fmt: skip
    check_sweeps_agree({seed: sweep_path(seed) for seed in seeds}, sweeps)
    return sweeps


def load_train_curves(seeds: list[int], params: Params | None = None) -> pd.DataFrame:
    """Every seed's training curve (epoch, train_loss, test_acc, test_bacc) with a `seed` column."""
    expected = _implied(params)
    return per_seed_tables(
        seeds, train_curve_path, "training curve", "train",
        check=lambda path, text: check_train_curve(path, text, expected),
    )  # fmt: skip


def load_summaries(
    seeds: list[int], params: Params | None = None, sweeps: pd.DataFrame | None = None
) -> dict[int, dict]:
    """Every seed's summary.json. Given `sweeps` (`load_sweeps`), each must summarise its own
    seed's sweep (baselines, means over K, milestones, criteria); given `params`, agree with it."""
    expected = _implied(params)
    summaries = {}
    for seed in seeds:
        path = seed_summary_path(seed)
        if not path.exists():
            raise UserError(f"{path}: the summary of seed {seed} is missing; run its stages (dvc repro)")
        summary = read_json(path, "summary", "sweep_prune")
        sweep = sweeps[sweeps["seed"] == seed] if sweeps is not None else None
        check_summary(path, summary, sweep, expected)
        summaries[seed] = summary
    check_summaries_agree({seed: seed_summary_path(seed) for seed in seeds}, summaries)
    return summaries


def load_finetunes(seeds: list[int], params: Params | None = None) -> pd.DataFrame:
    """Every seed's fine-tuning table (criterion, point, k, acc, bacc, roc_auc) with a `seed` column."""
    expected = _implied(params)
    return per_seed_tables(
        seeds, finetune_path, "fine-tuning", "finetune",
        check=lambda path, text: check_finetune(path, text, expected),
    )  # fmt: skip


def load_sensitivity(seeds: list[int], params: Params | None = None) -> pd.DataFrame:
    """Every seed's sensitivity table (layer, criterion, fraction, k, scores) with a `seed` column."""
    expected = _implied(params)
    return per_seed_tables(
        seeds, sensitivity_path, "sensitivity", "sensitivity",
        check=lambda path, text: check_sensitivity(path, text, expected),
    )  # fmt: skip


def load_budgets(seeds: list[int], params: Params | None = None) -> pd.DataFrame:
    """Every seed's budget table (budget, strategy, criterion, channels, costs, scores) with a `seed` column."""
    expected = _implied(params)
    return per_seed_tables(
        seeds, budget_path, "budget", "budget",
        check=lambda path, text: check_budget(path, text, expected),
    )  # fmt: skip
