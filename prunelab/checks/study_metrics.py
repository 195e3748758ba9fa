"""The study's `metrics.json` (aggregate), as plot, export and headline read it: every interval holds its
mean and stays in its range ([0, 100] for a score, [0, 1] for a share, `clipped: 1` only where an end is a
bound), every number is finite (`mde` may be infinite), and the seeds, P, criteria, margins, layers,
strategies and budgets are params.yaml's."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from prunelab.checks.implied import Implied
from prunelab.checks.reader import DocumentReader, exact_keys
from prunelab.checks.summary import OLD_NAMES, summary_entry_keys
from prunelab.checks.text import shown
from prunelab.models.records import metric_key
from prunelab.scoring.names import EXTRA_SCORES, SCORES, over_k
from prunelab.study.names import BUDGET_SCORES, PAIRED_SCORES, SENSITIVITY_SCORES, VERDICTS

TOP_KEYS = {
    "n_seeds", "confidence", "channels", "n_test", "majority_floor", "balanced_floor", "ranking_split_is_test",
    "margins", "criteria", "sensitivity", "budget",
    *(f"baseline_{s}" for s in ("accuracy", "balanced_accuracy", *EXTRA_SCORES)),
}  # fmt: skip
ENTRY_KEYS = {"mean", "ci_low", "ci_high", "clipped"}  # an interval over seeds (`interval_entry`, `bounded_entry`)
SCORE_BOUNDS = (0.0, 100.0)  # a score, in percent: its mean and interval stay inside
SHARE_BOUNDS = (0.0, 1.0)  # a share (`beats_random_frac`, `flops_kept`, `params_kept`): the same
COMPARISON_KEYS = ENTRY_KEYS | {"wins", "verdict", "tost_p", "margin", "mde", "seeds_needed"}  # `comparison`
FINETUNED = ("plain_bacc", "recal_bacc", "finetuned_bacc", "plain_roc_auc", "finetuned_roc_auc", "finetuned_acc")


def _entry(
    doc: DocumentReader, value: Any, where: str, bounds: tuple[float, float] | None, n_seeds: int, nan: bool = False
) -> None:
    """An interval entry (or, for a `<key>_vs_random`, a comparison with random): finite numbers,
    and an interval that holds the mean and stays inside `bounds` (a score's or a share's range;
    None: unbounded), `clipped: 1` only where an end is a bound. `nan`: all NaN is allowed (a
    fine-tuned K the sweep lacks)."""
    entry = doc.mapping(value, where)
    comparison = where.endswith(("_vs_random", "_vs_unpruned"))
    exact_keys(doc, entry, {"mean"}, where, (COMPARISON_KEYS if comparison else ENTRY_KEYS) - {"mean"})
    prefix = f"{where}."
    mean = entry["mean"]
    if (
        nan
        and isinstance(mean, float)
        and math.isnan(mean)
        and all(isinstance(v, float) and math.isnan(v) for k, v in entry.items() if k != "clipped")
    ):
        return
    limits = bounds or (None, None)
    mean = doc.number(entry, "mean", prefix, *limits)
    if ("ci_low" in entry) != ("ci_high" in entry):
        raise doc.refuse(f"{where} has one end of its interval only")
    if "ci_low" in entry:
        low, high = doc.number(entry, "ci_low", prefix, *limits), doc.number(entry, "ci_high", prefix, *limits)
        if not low <= mean <= high:
            raise doc.refuse(f"{where}: the interval [{low}, {high}] does not hold the mean {mean}")
    if "clipped" in entry:
        doc.number(entry, "clipped", prefix, 1, 1, integer=True)
        if bounds is None or "ci_low" not in entry or not (low == bounds[0] or high == bounds[1]):
            raise doc.refuse(f"{where} says clipped, but no end of its interval is a bound of its range")
    if comparison:
        if entry.get("verdict") not in VERDICTS:
            raise doc.refuse(f"{where}.verdict={shown(entry.get('verdict'))} is not one of {', '.join(VERDICTS)}")
        doc.number(entry, "wins", prefix, 0, n_seeds, integer=True)
        doc.number(entry, "tost_p", prefix, 0.0, 1.0)
        doc.number(entry, "margin", prefix, 0.0, 100.0, low_open=True)
        if "mde" in entry or "seeds_needed" in entry:
            doc.number(entry, "mde", prefix, 0.0, infinite=True)
            doc.number(entry, "seeds_needed", prefix, 2, integer=True)


def _criterion_keys(name: str, criteria: dict, channels: int, entry: dict) -> set[str]:
    """What aggregate writes for a criterion: the summary's scalars (under the summaries' names),
    the comparisons with random it can pair, and (`finetune_<point>`) are checked separately."""
    scalars = {next((old for new, old in OLD_NAMES.items() if new == k and k not in entry), k) for k in
               summary_entry_keys(name, criteria, channels)}  # fmt: skip
    paired = set()
    if "random" in criteria and name != "random":
        paired = {f"{over_k(s)}_vs_random" for s in PAIRED_SCORES if over_k(s) in scalars}
    return scalars | paired


def check_study_metrics(path: Path | str, metrics: Any, implied: Implied | None = None) -> None:
    """metrics/metrics.json as aggregate writes it (and as plot and headline read it): the keys,
    every interval holding its mean, finite numbers, and (given params) the seeds, P, criteria,
    margins and fine-tuned points params.yaml implies."""
    doc = DocumentReader(path, "aggregate")
    metrics = doc.mapping(metrics, "")
    exact_keys(doc, metrics, TOP_KEYS, "")
    n_seeds = int(doc.number(metrics, "n_seeds", integer=True, low=1))
    doc.number(metrics, "confidence", low=0.0, high=1.0, low_open=True)
    channels = int(doc.number(metrics, "channels", integer=True, low=1))
    doc.number(metrics, "n_test", integer=True, low=1)
    doc.number(metrics, "majority_floor", low=0.0, high=100.0)
    doc.number(metrics, "balanced_floor", low=0.0, high=100.0, low_open=True)
    doc.number(metrics, "ranking_split_is_test", integer=True, low=0, high=1)
    margins = doc.mapping(metrics["margins"], "margins")
    exact_keys(doc, margins, set(SCORES), "margins")
    for key in margins:
        doc.number(margins, key, "margins.", low=0.0, high=100.0, low_open=True)
    for key in TOP_KEYS:
        if key.startswith("baseline_"):
            _entry(doc, metrics[key], key, SCORE_BOUNDS, n_seeds)
    criteria = doc.mapping(metrics["criteria"], "criteria")
    if implied is not None:
        if n_seeds != len(implied.seeds):
            raise doc.refuse(f"n_seeds={n_seeds}, but params.yaml has {len(implied.seeds)} seeds")
        if channels != implied.channels:
            raise doc.refuse(f"channels={channels}, but model.arch has P={implied.channels}")
        if list(criteria) != list(implied.swept):
            raise doc.refuse(f"its criteria {', '.join(map(shown, criteria))} are not the ones params.yaml sweeps")
        if margins != dict(implied.margins):
            raise doc.refuse("its margins are not study.margins")
    for name, entry in criteria.items():
        where = f"criteria.{name}"
        entry = doc.mapping(entry, where)
        points = {key for key in entry if key.startswith("finetune_")}
        if implied is not None:
            tuned = {f"finetune_{point}": k for c, point, k in implied.finetuned if c == name}
            exact_keys(doc, {k: None for k in points}, set(tuned), where)
        scalars = {k: v for k, v in entry.items() if k not in points}
        exact_keys(doc, scalars, _criterion_keys(name, criteria, channels, entry), where)
        for key, value in entry.items():
            if key in points:
                _finetune_point(doc, value, f"{where}.{key}", n_seeds, implied)
            else:
                _entry(doc, value, f"{where}.{key}", _bounds(key), n_seeds)
    _check_sensitivity(doc, metrics["sensitivity"], n_seeds, implied)
    _check_budget(doc, metrics["budget"], n_seeds, implied)


def _check_sensitivity(doc: DocumentReader, value: Any, n_seeds: int, implied: Implied | None) -> None:
    """metrics.json's `sensitivity`: per layer the unpruned scores, and per criterion each score's
    mean over the shares with (criteria other than random) its comparison with random."""
    layers = doc.mapping(value, "sensitivity")
    if implied is not None:
        exact_keys(doc, layers, {metric_key(name) for name in implied.layers}, "sensitivity")
    for layer, entry in layers.items():
        where = f"sensitivity.{layer}"
        entry = doc.mapping(entry, where)
        criteria = set(entry) - {"unpruned"}
        if implied is not None:
            exact_keys(doc, entry, {"unpruned", *implied.sensitivity_criteria}, where)
        unpruned = doc.mapping(entry.get("unpruned"), f"{where}.unpruned")
        exact_keys(doc, unpruned, set(SENSITIVITY_SCORES), f"{where}.unpruned")
        for score, scored in unpruned.items():
            _entry(doc, scored, f"{where}.unpruned.{score}", SCORE_BOUNDS, n_seeds)
        for name in criteria:
            scores = doc.mapping(entry[name], f"{where}.{name}")
            expected = {f"mean_{s}_over_shares" for s in SENSITIVITY_SCORES}
            if name != "random" and "random" in criteria:
                expected |= {f"{key}_vs_random" for key in expected}
            exact_keys(doc, scores, expected, f"{where}.{name}")
            for key, scored in scores.items():
                bounds = None if key.endswith("_vs_random") else SCORE_BOUNDS
                _entry(doc, scored, f"{where}.{name}.{key}", bounds, n_seeds)


def _check_budget(doc: DocumentReader, value: Any, n_seeds: int, implied: Implied | None) -> None:
    """metrics.json's `budget`: the unpruned model fine-tuned, and per strategy, criterion and
    FLOPs budget the shares kept, the scores and the paired comparisons."""
    from prunelab.network.choice import KEPT_SCORES, budget_key

    strategies = doc.mapping(value, "budget")
    if implied is not None:
        exact_keys(doc, strategies, {"unpruned", *implied.strategies}, "budget")
    unpruned = doc.mapping(strategies.get("unpruned"), "budget.unpruned")
    exact_keys(doc, unpruned, set(BUDGET_SCORES), "budget.unpruned")
    for score, scored in unpruned.items():
        _entry(doc, scored, f"budget.unpruned.{score}", SCORE_BOUNDS, n_seeds)
    for strategy, criteria in strategies.items():
        if strategy == "unpruned":
            continue
        criteria = doc.mapping(criteria, f"budget.{strategy}")
        if implied is not None:
            exact_keys(doc, criteria, set(implied.budget_criteria), f"budget.{strategy}")
        for criterion, budgets in criteria.items():
            where = f"budget.{strategy}.{criterion}"
            budgets = doc.mapping(budgets, where)
            if implied is not None:
                exact_keys(doc, budgets, {budget_key(b) for b in implied.budgets}, where)
            for key, entry in budgets.items():
                entry = doc.mapping(entry, f"{where}.{key}")
                expected = {"flops_kept", "params_kept", *BUDGET_SCORES, *(f"{s}_vs_unpruned" for s in KEPT_SCORES)}
                if criterion != "random" and "random" in criteria:
                    expected.add("finetuned_recal_bacc_vs_random")
                exact_keys(doc, entry, expected, f"{where}.{key}")
                for name, scored in entry.items():
                    bounds = SCORE_BOUNDS if name in BUDGET_SCORES else _bounds(name)
                    _entry(doc, scored, f"{where}.{key}.{name}", bounds, n_seeds)


def _finetune_point(doc: DocumentReader, value: Any, where: str, n_seeds: int, implied: Implied | None) -> None:
    """{k, the six scores, and (paired with fine-tuned random) finetuned_bacc_vs_random}."""
    point = doc.mapping(value, where)
    exact_keys(doc, point, {"k", *FINETUNED}, where, {"finetuned_bacc_vs_random"})
    k = doc.number(point, "k", f"{where}.", low=1, integer=True)
    unswept = implied is None or k not in implied.ks  # the as-pruned scores are NaN at a K the sweep lacks
    for key in FINETUNED:
        nan = unswept and not key.startswith("finetuned_")
        _entry(doc, point[key], f"{where}.{key}", SCORE_BOUNDS, n_seeds, nan=nan)
    if "finetuned_bacc_vs_random" in point:
        _entry(doc, point["finetuned_bacc_vs_random"], f"{where}.finetuned_bacc_vs_random", None, n_seeds)


def _is_score(key: str) -> bool:
    """Whether a metrics.json entry is a score in percent (as `prunelab.study.aggregate.is_score`);
    a paired difference, `max_k_within_1pt` and `beats_random_frac` are not."""
    if key.endswith("_vs_random"):
        return False
    return key.endswith("_over_k") or key in OLD_NAMES.values() or key.startswith(("acc_at_", "baseline_"))


def _bounds(key: str) -> tuple[float, float] | None:
    """The range a metrics.json entry's mean and interval keep (as `prunelab.study.aggregate`
    clips them): a score's [0, 100], a share's [0, 1] (`*_frac`, the budget's `flops_kept` and
    `params_kept`); None for a paired difference and `max_k_within_1pt`."""
    if key.endswith(("_vs_random", "_vs_unpruned")):
        return None
    if _is_score(key):
        return SCORE_BOUNDS
    return SHARE_BOUNDS if key.endswith("_frac") or key in ("flops_kept", "params_kept") else None
