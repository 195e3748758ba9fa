"""The CSV tables the stages read, each declared once, and their checks.

Per table: the columns as the writer prints them (`text.Column`), the rows params.yaml implies
(when the reader is given params), and what must hold across rows: in a sweep every criterion
scores the unpruned model alike at K=0 and keeps the same share of parameters and FLOPs at a
given K (the cost is per channel, whichever channel goes); in a ranking every criterion's order
is a permutation of the P channels; in a band table the interval holds the mean.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from prunelab.checks.implied import Implied
from prunelab.checks.text import Column, Parsed, TableFormat, check_rows, check_unique_rows, parse_table, refusal
from prunelab.scoring.names import EXTRA_SCORES

if TYPE_CHECKING:
    import pandas as pd


def _scores(names: list[str], decimals: int, nullable: bool = False) -> tuple[Column, ...]:
    """Scores in percent."""
    return tuple(Column(n, "float", decimals, 0.0, 100.0, nullable=nullable) for n in names)


def _kept(decimals: int) -> tuple[Column, ...]:
    """Shares of parameters and FLOPs kept: pruning never removes everything."""
    return tuple(Column(n, "float", decimals, 0.0, 1.0, low_open=True) for n in ("params_kept", "flops_kept"))


CRITERION = Column("criterion", "text")
K = Column("k", "int", low=0)

# metrics/seeds/<s>/sweep.csv (stages/sweep_prune.py: long_table, "%.6f")
SWEEP = TableFormat(
    "sweep table",
    "sweep_prune",
    (K, CRITERION, *_scores(["acc", "bacc", *EXTRA_SCORES], 6), *_kept(6)),
    ("k", "criterion"),
)
# metrics/seeds/<s>/ranking.csv (ranking_table)
RANKING = TableFormat(
    "ranking table",
    "sweep_prune",
    (CRITERION, Column("rank", "int", low=0), Column("channel", "int", low=0)),
    ("criterion", "rank"),
)
# metrics/seeds/<s>/finetune.csv (stages/finetune.py, "%.4f")
FINETUNE = TableFormat(
    "fine-tuning table",
    "finetune",
    (CRITERION, Column("point", "text"), Column("k", "int", low=1), *_scores(["acc", "bacc", "roc_auc"], 4)),
    ("criterion", "point", "k"),
)
# metrics/seeds/<s>/train_curve.csv (stages/train.py: EpochLog, "%.4f")
TRAIN_CURVE = TableFormat(
    "training curve",
    "train",
    (Column("epoch", "int", low=0), Column("train_loss", "float", 4, low=0.0), *_scores(["test_acc", "test_bacc"], 4)),
    ("epoch",),
)
# metrics/study/<score>.csv (aggregate: band_table, "%.4f"); one seed has no interval (empty fields)
BAND = TableFormat(
    "study band table",
    "aggregate",
    (K, CRITERION, *_scores(["mean"], 4), *_scores(["ci_low", "ci_high"], 4, nullable=True), *_kept(4)),
    ("k", "criterion"),
)
# metrics/study/finetune.csv (aggregate: finetune_table, "%.4f"); the as-pruned scores are empty at a K not swept
STUDY_FINETUNE = TableFormat(
    "study fine-tuning table",
    "aggregate",
    (
        CRITERION,
        Column("point", "text"),
        Column("k", "int", low=1),
        *_scores(["finetuned_acc", "finetuned_bacc", "finetuned_roc_auc"], 4),
        Column("seed", "int", low=0),
        *_scores(["plain_acc", "plain_bacc", "plain_roc_auc", "recal_bacc"], 4, nullable=True),
    ),
    ("criterion", "point", "k", "seed"),
)
SWEEP_SCORES = ["acc", "bacc", *EXTRA_SCORES]
LAYER = Column("layer", "text")
# metrics/seeds/<s>/sensitivity.csv (stages/sensitivity.py: layer_sensitivity, "%.6f"); fraction 0 is the unpruned model
SENSITIVITY = TableFormat(
    "sensitivity table",
    "sensitivity",
    (LAYER, CRITERION, Column("fraction", "float", 6, 0.0, 1.0), K, *_scores(SWEEP_SCORES, 6)),
    ("layer", "criterion", "fraction"),
)
# metrics/seeds/<s>/budget.csv (stages/budget.py, "%.6f"); the first row is the unpruned model, fine-tuned alike
BUDGET = TableFormat(
    "budget table",
    "budget",
    (
        Column("budget", "float", 6, 0.0, 1.0, low_open=True),
        Column("strategy", "text"),
        CRITERION,
        Column("channels", "counts"),
        Column("flops_kept", "float", 6, 0.0, 1.0, low_open=True),
        Column("params_kept", "float", 6, 0.0, 1.0, low_open=True),
        *_scores(SWEEP_SCORES, 6),
        *_scores([f"finetuned_{s}" for s in SWEEP_SCORES], 6),
    ),
    ("budget", "strategy", "criterion"),
)


def _by_criterion(parsed: Parsed) -> dict[str, np.ndarray]:
    """Row indices of each criterion, in the table's order."""
    names = np.asarray(parsed.columns["criterion"], dtype=object)
    return {c: np.flatnonzero(names == c) for c in dict.fromkeys(parsed.columns["criterion"])}


def _same_ks(path: Path | str, parsed: Parsed, fmt: TableFormat) -> dict[str, np.ndarray]:
    """Without params: every criterion has the same K values, ascending from 0, once each."""
    check_unique_rows(path, parsed, fmt)
    groups = _by_criterion(parsed)
    ks = parsed.columns["k"]
    first_name, first = next(iter(groups.items()), ("", np.array([], dtype=np.int64)))
    for name, rows in groups.items():
        if not np.array_equal(ks[rows], ks[first]):
            raise refusal(path, f"criterion {name} has other K values than {first_name}", fmt.stage)
    if len(first) and (ks[first][0] != 0 or np.any(np.diff(ks[first]) <= 0)):
        raise refusal(path, "the K values do not ascend from 0", fmt.stage)
    return groups


def _kept_consistent(path: Path | str, parsed: Parsed, fmt: TableFormat, groups: dict[str, np.ndarray]) -> None:
    """The shares kept depend on K only (the same for every criterion), are 1 at K=0, and fall with K."""
    rows = next(iter(groups.values()), None)
    if rows is None:
        return
    for column in ("params_kept", "flops_kept"):
        values = parsed.columns[column]
        first = values[rows]
        for name, other in groups.items():
            if not np.array_equal(values[other], first):
                k = parsed.columns["k"][other][np.flatnonzero(values[other] != first)[0]]
                raise refusal(path, f"{column} of {name} at K={k} differs from the other criteria's", fmt.stage)
        if first[0] != 1.0 or np.any(np.diff(first) > 0):
            raise refusal(path, f"{column} is not 1 at K=0 falling with K", fmt.stage)


def _unpruned_alike(
    path: Path | str, parsed: Parsed, fmt: TableFormat, groups: dict[str, np.ndarray], columns: list[str], tol: float
) -> None:
    """At K=0 nothing is removed: every criterion scores the same unpruned model."""
    at_zero = [rows[0] for rows in groups.values() if len(rows)]
    for column in columns:
        values = parsed.columns[column][at_zero]
        if len(values) and np.ptp(values) > tol:
            raise refusal(path, f"{column} at K=0 differs between criteria (the same unpruned model)", fmt.stage)


def check_sweep(path: Path | str, text: str, implied: Implied | None = None) -> None:
    """A replicate's sweep.csv: the declared columns, every (K, criterion) params implies, and
    agreement between its rows."""
    parsed = parse_table(path, text, SWEEP)
    if implied is not None:
        check_rows(path, parsed, SWEEP, implied.sweep_rows())
    groups = _same_ks(path, parsed, SWEEP)
    _kept_consistent(path, parsed, SWEEP, groups)
    # Printed with 6 decimals; the random criterion's mean over orders may round one unit apart.
    _unpruned_alike(path, parsed, SWEEP, groups, SWEEP_SCORES, tol=1.5e-6)


def check_sweeps_agree(paths: dict[int, Path], sweeps: pd.DataFrame) -> None:
    """Across seeds (`sweeps` stacked with a `seed` column): the same (K, criterion) rows, and,
    the model being the same architecture, the same shares kept at each K."""
    seeds = list(paths)
    first = sweeps[sweeps["seed"] == seeds[0]]
    for seed in seeds[1:]:
        table = sweeps[sweeps["seed"] == seed]
        for columns in (["k", "criterion"], ["params_kept"], ["flops_kept"]):
            if not table[columns].reset_index(drop=True).equals(first[columns].reset_index(drop=True)):
                what = "(K, criterion) rows" if len(columns) == 2 else columns[0]
                problem = f"its {what} differ from seed {seeds[0]}'s (the same model and K)"
                raise refusal(paths[seed], problem, SWEEP.stage)


def check_ranking(path: Path | str, text: str, channels: int | None = None, implied: Implied | None = None) -> None:
    """ranking.csv: each criterion's ranks 0..P-1 in order, and its channels a permutation of 0..P-1."""
    parsed = parse_table(path, text, RANKING)
    if implied is not None:
        check_rows(path, parsed, RANKING, implied.ranking_rows())
        channels = implied.channels
    check_unique_rows(path, parsed, RANKING)
    for name, rows in _by_criterion(parsed).items():
        p = channels if channels is not None else len(rows)
        if not np.array_equal(parsed.columns["rank"][rows], np.arange(len(rows))) or len(rows) != p:
            raise refusal(path, f"the ranks of {name} are not 0 to {p - 1} in order", RANKING.stage)
        if not np.array_equal(np.sort(parsed.columns["channel"][rows]), np.arange(p)):
            raise refusal(path, f"the order of {name} is not a permutation of the {p} channels", RANKING.stage)


def check_finetune(path: Path | str, text: str, implied: Implied | None = None) -> None:
    """A replicate's finetune.csv: one row per fine-tuned (criterion, point, K) params imply."""
    parsed = parse_table(path, text, FINETUNE)
    if implied is not None:
        check_rows(path, parsed, FINETUNE, implied.finetune_rows())
    check_unique_rows(path, parsed, FINETUNE)


def check_train_curve(path: Path | str, text: str, implied: Implied | None = None) -> None:
    """A replicate's train_curve.csv: epochs 1..train.epochs (1..N without params), or epoch 0 alone
    for loaded weights (model.weights)."""
    parsed = parse_table(path, text, TRAIN_CURVE)
    first = 0 if parsed.n_rows and parsed.columns["epoch"][0] == 0 else 1
    expected = implied.train_rows() if implied is not None else [(e,) for e in range(first, first + parsed.n_rows)]
    check_rows(path, parsed, TRAIN_CURVE, expected)


def check_band(path: Path | str, text: str, implied: Implied | None = None) -> None:
    """A study band table (metrics/study/<score>.csv): every (K, criterion), the interval
    around the mean (none with one seed), and the shares kept as in the sweeps."""
    parsed = parse_table(path, text, BAND)
    if implied is not None:
        check_rows(path, parsed, BAND, implied.sweep_rows())
    groups = _same_ks(path, parsed, BAND)
    _kept_consistent(path, parsed, BAND, groups)
    _unpruned_alike(path, parsed, BAND, groups, ["mean"], tol=1.5e-4)
    mean, low, high = (parsed.columns[c] for c in ("mean", "ci_low", "ci_high"))
    one_seed = implied is not None and len(implied.seeds) == 1
    empty = np.isnan(low) | np.isnan(high)
    if implied is not None and np.any(empty != one_seed):
        row = int(np.flatnonzero(empty != one_seed)[0])
        problem = (
            f"line {row + 2}: the interval is {'given' if one_seed else 'empty'} with {len(implied.seeds)} seed(s)"
        )
        raise refusal(path, problem, BAND.stage)
    with np.errstate(invalid="ignore"):
        outside = ~empty & ((low > mean) | (mean > high))
    if np.any(outside):
        raise refusal(
            path, f"line {int(np.flatnonzero(outside)[0]) + 2}: the interval does not hold the mean", BAND.stage
        )


def check_study_finetune(path: Path | str, text: str, implied: Implied | None = None) -> None:
    """metrics/study/finetune.csv: per seed the fine-tuned rows params imply; the as-pruned
    scores present exactly where the sweep has the K."""
    parsed = parse_table(path, text, STUDY_FINETUNE)
    check_unique_rows(path, parsed, STUDY_FINETUNE)
    if implied is None:
        return
    check_rows(path, parsed, STUDY_FINETUNE, implied.study_finetune_rows())
    swept = np.isin(parsed.columns["k"], implied.ks)
    for column in ("plain_acc", "plain_bacc", "plain_roc_auc", "recal_bacc"):
        wrong = np.isnan(parsed.columns[column]) == swept
        if np.any(wrong):
            row = int(np.flatnonzero(wrong)[0])
            state = "empty at a swept K" if swept[row] else "given at a K the sweep lacks"
            raise refusal(path, f"line {row + 2}: {column} is {state}", STUDY_FINETUNE.stage)


def check_sensitivity(path: Path | str, text: str, implied: Implied | None = None) -> None:
    """A replicate's sensitivity.csv: (given params) every layer × criterion × share params imply,
    share 0 first with K = 0, and every criterion scoring the unpruned model alike per layer."""
    parsed = parse_table(path, text, SENSITIVITY)
    if implied is not None:
        check_rows(path, parsed, SENSITIVITY, implied.sensitivity_rows())
    check_unique_rows(path, parsed, SENSITIVITY)
    unpruned = parsed.columns["fraction"] == 0
    if np.any((parsed.columns["k"] == 0) != unpruned):
        row = int(np.flatnonzero((parsed.columns["k"] == 0) != unpruned)[0])
        raise refusal(path, f"line {row + 2}: K is 0 exactly where the share removed is 0, not here", SENSITIVITY.stage)
    layers = np.asarray(parsed.columns["layer"], dtype=object)
    for layer in dict.fromkeys(parsed.columns["layer"]):
        rows = np.flatnonzero(unpruned & (layers == layer))
        for score in SWEEP_SCORES:
            values = parsed.columns[score][rows]
            if len(values) and np.ptp(values) > 1.5e-6:
                raise refusal(
                    path, f"the criteria score {layer}'s unpruned model differently ({score})", SENSITIVITY.stage
                )


def check_budget(path: Path | str, text: str, implied: Implied | None = None) -> None:
    """A replicate's budget.csv: (given params) the unpruned row, then every budget × strategy ×
    criterion params imply, each group keeping a multiple of budget.round_to or all its channels;
    every pruned model within its budget's FLOPs, the unpruned one whole."""
    parsed = parse_table(path, text, BUDGET)
    if implied is not None:
        check_rows(path, parsed, BUDGET, implied.budget_rows())
        counts = [[int(n) for n in c.split("/")] for c in parsed.columns["channels"]]
        wrong = [i for i, c in enumerate(counts) if len(c) != len(implied.layers) or min(c) < 1]
        if wrong:
            problem = (
                f"line {wrong[0] + 2}: channels is not one kept count of at least 1 per layer ({len(implied.layers)})"
            )
            raise refusal(path, problem, BUDGET.stage)
        # Against the unpruned row (check_rows put it first): each count is all of the group's
        # channels or a multiple of budget.round_to below them.
        whole, step = counts[0], implied.round_to

        def off(row: list[int]) -> bool:
            return any(n != p and (n > p or n % step) for n, p in zip(row, whole, strict=True))

        wrong = [i for i, c in enumerate(counts) if off(c)]
        if wrong:
            problem = (
                f"line {wrong[0] + 2}: channels {parsed.columns['channels'][wrong[0]]} are not, per group, all of "
                f"the unpruned model's ({parsed.columns['channels'][0]}) or a multiple of budget.round_to={step}"
            )
            raise refusal(path, problem, BUDGET.stage)
    check_unique_rows(path, parsed, BUDGET)
    budget, flops = parsed.columns["budget"], parsed.columns["flops_kept"]
    # With budget.target: latency a budget is a share of the predicted latency, not of the FLOPs.
    over = (budget < 1) & (flops > budget + 1e-6) & (implied is None or implied.target == "flops")
    if np.any(over):
        raise refusal(path, f"line {int(np.flatnonzero(over)[0]) + 2}: flops_kept is over its budget", BUDGET.stage)
    whole = (budget == 1) & (flops != 1)
    if np.any(whole):
        raise refusal(
            path,
            f"line {int(np.flatnonzero(whole)[0]) + 2}: the unpruned model keeps less than all its FLOPs",
            BUDGET.stage,
        )


# metrics/cost/latency/table.csv (stages/latency.py: prunelab.deploy.latency.latency_table, "%.6f"); measured, so
# machine-dependent; a saving can be negative (noise, or a count the kernels like less).
LATENCY_TABLE = TableFormat(
    "latency table",
    "latency",
    (
        Column("group", "text"),
        Column("channels", "int", low=1),
        Column("kept", "int", low=1),
        *(Column(n, "float", 6, 0.0, None, low_open=True) for n in ("latency_ms", "latency_ms_q25", "latency_ms_q75")),
        *(Column(n, "float", 6) for n in ("saved_ms", "saved_ms_q25", "saved_ms_q75")),
    ),
    ("group", "kept"),
)


def check_latency_table(path: Path | str, text: str, channels: dict[str, int], round_to: int) -> None:
    """metrics/cost/latency/table.csv: per channel group (`channels`: name → P, forward order) rows for
    ascending counts it may keep under budget.round_to (`kept_counts`), from the smallest to all P of
    them (`latency.counts` may leave some out between: they are interpolated), its channels P; quartiles
    around each median; at P, the unpruned model: nothing saved."""
    from prunelab.models.records import kept_counts

    parsed = parse_table(path, text, LATENCY_TABLE)
    check_unique_rows(path, parsed, LATENCY_TABLE)
    columns = parsed.columns
    names, kept = columns["group"], columns["kept"].tolist()  # per row
    order = list(dict.fromkeys(names))
    if order != list(channels):
        problem = f"its groups ({', '.join(order)}) are not model.arch's channel groups ({', '.join(channels)})"
        raise refusal(path, problem, LATENCY_TABLE.stage)
    if names != sorted(names, key=order.index):
        raise refusal(path, "the rows are not grouped by channel group, in forward order", LATENCY_TABLE.stage)
    for name, p in channels.items():
        counts = [k for g, k in zip(names, kept, strict=True) if g == name]
        allowed = kept_counts(p, round_to)
        wrong = [k for k in counts if k not in allowed]
        if wrong or counts != sorted(counts) or counts[0] != allowed[0] or counts[-1] != p:
            problem = (
                f"group {name!r}'s counts ({', '.join(map(str, counts))}) are not ascending counts of budget.round_to="
                f"{round_to} from {allowed[0]} to its {p} channels"
            )
            raise refusal(path, problem, LATENCY_TABLE.stage)
    wrong_p = np.flatnonzero(columns["channels"] != np.array([channels[name] for name in names]))
    if wrong_p.size:
        line = int(wrong_p[0]) + 2
        raise refusal(path, f"line {line}: channels is not group {names[wrong_p[0]]!r}'s", LATENCY_TABLE.stage)
    for stat in ("latency_ms", "saved_ms"):
        low, mid, high = columns[f"{stat}_q25"], columns[stat], columns[f"{stat}_q75"]
        outside = np.flatnonzero((low > mid + 1e-6) | (mid > high + 1e-6))
        if outside.size:
            problem = f"line {int(outside[0]) + 2}: {stat} is not between {stat}_q25 and {stat}_q75"
            raise refusal(path, problem, LATENCY_TABLE.stage)
    whole = np.flatnonzero((columns["kept"] == columns["channels"]) & (columns["saved_ms"] != 0))
    if whole.size:
        problem = f"line {int(whole[0]) + 2}: the unpruned model (kept = channels) saves something"
        raise refusal(path, problem, LATENCY_TABLE.stage)
