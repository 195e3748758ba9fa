"""The JSON files the stages read, and what must hold in them and against the files they summarise.

* a replicate's `summary.json` (sweep_prune) against its own sweep.csv: the baselines are the
  sweep's K=0 row, every mean over K and every milestone is the sweep's, the criteria are the
  sweep's, and the accuracies are whole test samples (`n_test`);
* the study's `metrics.json` (aggregate): every interval holds its mean and stays in its range
  ([0, 100] for a score, [0, 1] for a share, `clipped: 1` only where an end is a bound), every
  number is finite (`mde` may be infinite), the seeds, P, criteria and margins are params.yaml's;
* `efficiency.json` (export): its ratios are its own measurements' ratios, its study scores are
  the band table's (plot) and the unpruned one is the study's baseline (headline);
* a prepared folder's `info.json` (prepare_data): the source's registered class count,
  channels and normalisation.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prunelab.checks.implied import Implied
from prunelab.checks.text import refusal, shown
from prunelab.models.records import metric_key
from prunelab.prepare.sources import SOURCES
from prunelab.scoring.milestones import WITHIN_POINTS, max_k_within, milestone_ks
from prunelab.scoring.names import EXTRA_SCORES, SCORES, over_k
from prunelab.study.names import BUDGET_SCORES, PAIRED_SCORES, SENSITIVITY_SCORES, VERDICTS

if TYPE_CHECKING:
    import pandas as pd

# Older summaries name two means over K as the study did before the score vocabulary (rendered docs accept both).
OLD_NAMES = {over_k("acc"): "auc", over_k("bacc"): "bacc_auc"}
CSV_ROUNDING = 1e-6  # sweep.csv prints 6 decimals: a value read back is within 5e-7 of the summary's


class _Reader:
    """Typed access to one JSON document; every problem is a one-line refusal naming the key."""

    def __init__(self, path: Path | str, stage: str) -> None:
        self.path, self.stage = path, stage

    def refuse(self, problem: str) -> Exception:
        return refusal(self.path, problem, self.stage)

    def mapping(self, value: Any, where: str) -> dict:
        if not isinstance(value, dict):
            raise self.refuse(f"{where or 'the file'} is not a JSON object")
        return value

    def get(self, data: dict, key: str, where: str = "") -> Any:
        if key not in data:
            raise self.refuse(f"key {where}{key} is missing")
        return data[key]

    def number(
        self,
        data: dict,
        key: str,
        where: str = "",
        low: float | None = None,
        high: float | None = None,
        integer: bool = False,
        low_open: bool = False,
        infinite: bool = False,
    ) -> float:
        value = self.get(data, key, where)
        name = f"{where}{key}"
        if isinstance(value, bool) or not isinstance(value, int | float) or (integer and not isinstance(value, int)):
            raise self.refuse(f"{name}={shown(value)} is not {'an integer' if integer else 'a number'}")
        if math.isnan(value) or (math.isinf(value) and not infinite):
            raise self.refuse(f"{name}={value} is not a finite number")
        too_low = low is not None and (value <= low if low_open else value < low)
        if too_low or (high is not None and value > high):
            raise self.refuse(f"{name}={value} is outside {_range(low, high, low_open)}")
        return value


def _range(low: float | None, high: float | None, low_open: bool) -> str:
    if high is None:
        return f"{'>' if low_open else '>='} {low:g}"
    return f"{'(' if low_open else '['}{low:g}, {high:g}]"


def _close(a: float, b: float, tol: float) -> bool:
    return abs(a - b) <= tol


def _whole(value: float, n: int) -> bool:
    """Whether a percentage of `n` samples is a whole number of them (accuracy, majority share)."""
    count = value * n / 100.0
    return abs(count - round(count)) <= 1e-6


# --------------------------------------------------------------------------- summary.json
SUMMARY_KEYS = {
    "channels", "n_test", "baseline_accuracy", "baseline_balanced_accuracy", "majority_floor", "balanced_floor",
    "ranking_split_is_test", "n_calibration", "criteria", *(f"baseline_{s}" for s in EXTRA_SCORES),
}  # fmt: skip


def check_summary(
    path: Path | str, summary: Any, sweep: pd.DataFrame | None = None, implied: Implied | None = None
) -> None:
    """A replicate's summary.json, and (given its sweep table) that it summarises that sweep."""
    doc = _Reader(path, "sweep_prune")
    summary = doc.mapping(summary, "")
    _keys(doc, summary, SUMMARY_KEYS, "")
    channels = int(doc.number(summary, "channels", integer=True, low=1))
    if implied is not None and channels != implied.channels:
        raise doc.refuse(f"channels={channels}, but model.arch has P={implied.channels}")
    n_test = int(doc.number(summary, "n_test", integer=True, low=1))
    baselines = {score: doc.number(summary, f"baseline_{score}", low=0.0, high=100.0) for score in EXTRA_SCORES}
    baselines["acc"] = doc.number(summary, "baseline_accuracy", low=0.0, high=100.0)
    baselines["bacc"] = doc.number(summary, "baseline_balanced_accuracy", low=0.0, high=100.0)
    floor = doc.number(summary, "majority_floor", low=0.0, high=100.0)
    chance = doc.number(summary, "balanced_floor", low=0.0, high=100.0, low_open=True)
    if implied is not None and implied.n_classes and not _close(chance, 100.0 / implied.n_classes, 1e-9):
        raise doc.refuse(f"balanced_floor={chance}, but the data has {implied.n_classes} classes")
    for key, value in (("baseline_accuracy", baselines["acc"]), ("majority_floor", floor)):
        if not _whole(value, n_test):
            raise doc.refuse(f"{key}={value} is no whole number of the n_test={n_test} test samples")
    split_is_test = doc.number(summary, "ranking_split_is_test", integer=True, low=0, high=1)
    if implied is not None and bool(split_is_test) != implied.ranking_split_is_test:
        raise doc.refuse(f"ranking_split_is_test={split_is_test} disagrees with activations.split")
    n_calibration = doc.number(summary, "n_calibration", integer=True, low=1)
    if implied is not None and n_calibration > implied.max_calibration:
        raise doc.refuse(f"n_calibration={n_calibration} exceeds recalibrate.max_samples={implied.max_calibration}")
    criteria = doc.mapping(doc.get(summary, "criteria"), "criteria")
    if implied is not None and list(criteria) != list(implied.swept):
        raise doc.refuse(f"its criteria {', '.join(map(shown, criteria))} are not the ones params.yaml sweeps")
    for name, entry in criteria.items():
        _check_summary_entry(doc, name, entry, criteria, channels)
    if sweep is not None:
        _against_sweep(doc, summary, baselines, criteria, sweep, channels)


def _entry_keys(name: str, criteria: dict, channels: int) -> set[str]:
    keys = {over_k(score) for score in SCORES} | {"max_k_within_1pt", *milestone_ks(channels)}
    if "random" in criteria and name != "random":
        keys.add("beats_random_frac")
    return keys


def _check_summary_entry(doc: _Reader, name: str, entry: Any, criteria: dict, channels: int) -> None:
    where = f"criteria.{name}."
    entry = doc.mapping(entry, where.rstrip("."))
    expected = _entry_keys(name, criteria, channels)
    present = {next((new for new, old in OLD_NAMES.items() if old == key), key) for key in entry}
    if present != expected:
        missing, extra = sorted(expected - present), sorted(present - expected)
        detail = f"missing {', '.join(missing)}" if missing else f"unexpected {', '.join(map(shown, extra))}"
        raise doc.refuse(f"{where.rstrip('.')} is not a summary entry ({detail})")
    for key in entry:
        if key == "max_k_within_1pt":
            doc.number(entry, key, where, low=0, high=channels - 1, integer=True)
        elif key == "beats_random_frac":
            doc.number(entry, key, where, low=0.0, high=1.0)
        else:
            doc.number(entry, key, where, low=0.0, high=100.0)


def _against_sweep(
    doc: _Reader, summary: dict, baselines: dict, criteria: dict, sweep: pd.DataFrame, channels: int
) -> None:
    """The summary's numbers are its sweep's: baselines, means over K, milestones, max K within 1 point."""
    swept = list(dict.fromkeys(sweep["criterion"]))
    if list(criteria) != swept:
        raise doc.refuse("its criteria are not its sweep.csv's")
    groups = dict(tuple(sweep.groupby("criterion", sort=False)))
    first = groups[swept[0]]
    for score, value in baselines.items():
        if not _close(value, float(first[score].iloc[0]), CSV_ROUNDING):
            raise doc.refuse(f"the baseline {score} {value} is not its sweep's K=0 value {first[score].iloc[0]}")
    n_pruned = 0
    for name, entry in criteria.items():
        rows = groups[name]
        ks, acc = rows["k"].to_numpy(), rows["acc"].to_numpy()
        n_pruned = int((ks >= 1).sum())
        for key, value in entry.items():
            score = next((s for s in SCORES if key in (over_k(s), OLD_NAMES.get(over_k(s)))), None)
            if score is not None:
                expected = float(rows[score].mean())
            elif key.startswith("acc_at_"):
                k = milestone_ks(channels)[key]
                if k not in set(ks.tolist()):
                    raise doc.refuse(f"criteria.{name}.{key}: its sweep lacks K={k}")
                expected = float(acc[list(ks).index(k)])
            elif key == "max_k_within_1pt":
                # Within 1 point, decided on values printed with 6 decimals: either side of the edge.
                loose = max_k_within(ks, acc, baselines["acc"], WITHIN_POINTS + CSV_ROUNDING)
                strict = max_k_within(ks, acc, baselines["acc"], WITHIN_POINTS - CSV_ROUNDING)
                if not strict <= value <= loose:
                    raise doc.refuse(f"criteria.{name}.{key}={value} is not its sweep's")
                continue
            else:  # beats_random_frac: a share of the pruned K values
                if n_pruned and not _close(value * n_pruned, round(value * n_pruned), 1e-6):
                    raise doc.refuse(f"criteria.{name}.{key}={value} is no share of the {n_pruned} pruned K values")
                continue
            if not _close(value, expected, CSV_ROUNDING):
                raise doc.refuse(f"criteria.{name}.{key}={value} is not its sweep's ({expected:.6f})")


def check_summaries_agree(paths: dict[int, Path], summaries: dict[int, dict]) -> None:
    """Across seeds: the same P and the same criteria with the same keys (the study pairs them)."""
    seeds = list(summaries)
    first = summaries[seeds[0]]
    for seed in seeds[1:]:
        other = summaries[seed]
        same = other["channels"] == first["channels"] and list(other["criteria"]) == list(first["criteria"])
        same = same and all(set(other["criteria"][c]) == set(first["criteria"][c]) for c in first["criteria"])
        same = same and {k for k in other if k.startswith("baseline_")} == {
            k for k in first if k.startswith("baseline_")
        }
        if not same:
            raise refusal(paths[seed], f"its P, criteria or keys differ from seed {seeds[0]}'s summary", "sweep_prune")


# --------------------------------------------------------------------------- metrics.json
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


def _keys(doc: _Reader, data: dict, expected: set[str], where: str, optional: set[str] = frozenset()) -> None:
    """`data` has exactly the keys `expected` (and perhaps some of `optional`)."""
    missing, extra = sorted(expected - set(data)), sorted(set(data) - expected - optional)
    if missing or extra:
        detail = f"missing {', '.join(missing)}" if missing else f"unexpected {', '.join(map(shown, extra))}"
        raise doc.refuse(f"{where or 'the file'} is not as {doc.stage} writes it ({detail})")


def _entry(
    doc: _Reader, value: Any, where: str, bounds: tuple[float, float] | None, n_seeds: int, nan: bool = False
) -> None:
    """An interval entry (or, for a `<key>_vs_random`, a comparison with random): finite numbers,
    and an interval that holds the mean and stays inside `bounds` (a score's or a share's range;
    None: unbounded), `clipped: 1` only where an end is a bound. `nan`: all NaN is allowed (a
    fine-tuned K the sweep lacks)."""
    entry = doc.mapping(value, where)
    comparison = where.endswith(("_vs_random", "_vs_unpruned"))
    _keys(doc, entry, {"mean"}, where, (COMPARISON_KEYS if comparison else ENTRY_KEYS) - {"mean"})
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
               _entry_keys(name, criteria, channels)}  # fmt: skip
    paired = set()
    if "random" in criteria and name != "random":
        paired = {f"{over_k(s)}_vs_random" for s in PAIRED_SCORES if over_k(s) in scalars}
    return scalars | paired


def check_study_metrics(path: Path | str, metrics: Any, implied: Implied | None = None) -> None:
    """metrics/metrics.json as aggregate writes it (and as plot and headline read it): the keys,
    every interval holding its mean, finite numbers, and (given params) the seeds, P, criteria,
    margins and fine-tuned points params.yaml implies."""
    doc = _Reader(path, "aggregate")
    metrics = doc.mapping(metrics, "")
    _keys(doc, metrics, TOP_KEYS, "")
    n_seeds = int(doc.number(metrics, "n_seeds", integer=True, low=1))
    doc.number(metrics, "confidence", low=0.0, high=1.0, low_open=True)
    channels = int(doc.number(metrics, "channels", integer=True, low=1))
    doc.number(metrics, "n_test", integer=True, low=1)
    doc.number(metrics, "majority_floor", low=0.0, high=100.0)
    doc.number(metrics, "balanced_floor", low=0.0, high=100.0, low_open=True)
    doc.number(metrics, "ranking_split_is_test", integer=True, low=0, high=1)
    margins = doc.mapping(metrics["margins"], "margins")
    _keys(doc, margins, set(SCORES), "margins")
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
            _keys(doc, {k: None for k in points}, set(tuned), where)
        scalars = {k: v for k, v in entry.items() if k not in points}
        _keys(doc, scalars, _criterion_keys(name, criteria, channels, entry), where)
        for key, value in entry.items():
            if key in points:
                _finetune_point(doc, value, f"{where}.{key}", n_seeds, implied)
            else:
                _entry(doc, value, f"{where}.{key}", _bounds(key), n_seeds)
    _check_sensitivity(doc, metrics["sensitivity"], n_seeds, implied)
    _check_budget(doc, metrics["budget"], n_seeds, implied)


def _check_sensitivity(doc: _Reader, value: Any, n_seeds: int, implied: Implied | None) -> None:
    """metrics.json's `sensitivity`: per layer the unpruned scores, and per criterion each score's
    mean over the shares with (criteria other than random) its comparison with random."""
    layers = doc.mapping(value, "sensitivity")
    if implied is not None:
        _keys(doc, layers, {metric_key(name) for name in implied.layers}, "sensitivity")
    for layer, entry in layers.items():
        where = f"sensitivity.{layer}"
        entry = doc.mapping(entry, where)
        criteria = set(entry) - {"unpruned"}
        if implied is not None:
            _keys(doc, entry, {"unpruned", *implied.sensitivity_criteria}, where)
        unpruned = doc.mapping(entry.get("unpruned"), f"{where}.unpruned")
        _keys(doc, unpruned, set(SENSITIVITY_SCORES), f"{where}.unpruned")
        for score, scored in unpruned.items():
            _entry(doc, scored, f"{where}.unpruned.{score}", SCORE_BOUNDS, n_seeds)
        for name in criteria:
            scores = doc.mapping(entry[name], f"{where}.{name}")
            expected = {f"mean_{s}_over_shares" for s in SENSITIVITY_SCORES}
            if name != "random" and "random" in criteria:
                expected |= {f"{key}_vs_random" for key in expected}
            _keys(doc, scores, expected, f"{where}.{name}")
            for key, scored in scores.items():
                bounds = None if key.endswith("_vs_random") else SCORE_BOUNDS
                _entry(doc, scored, f"{where}.{name}.{key}", bounds, n_seeds)


def _check_budget(doc: _Reader, value: Any, n_seeds: int, implied: Implied | None) -> None:
    """metrics.json's `budget`: the unpruned model fine-tuned, and per strategy, criterion and
    FLOPs budget the shares kept, the scores and the paired comparisons."""
    from prunelab.network.choice import KEPT_SCORES, budget_key

    strategies = doc.mapping(value, "budget")
    if implied is not None:
        _keys(doc, strategies, {"unpruned", *implied.strategies}, "budget")
    unpruned = doc.mapping(strategies.get("unpruned"), "budget.unpruned")
    _keys(doc, unpruned, set(BUDGET_SCORES), "budget.unpruned")
    for score, scored in unpruned.items():
        _entry(doc, scored, f"budget.unpruned.{score}", SCORE_BOUNDS, n_seeds)
    for strategy, criteria in strategies.items():
        if strategy == "unpruned":
            continue
        criteria = doc.mapping(criteria, f"budget.{strategy}")
        if implied is not None:
            _keys(doc, criteria, set(implied.budget_criteria), f"budget.{strategy}")
        for criterion, budgets in criteria.items():
            where = f"budget.{strategy}.{criterion}"
            budgets = doc.mapping(budgets, where)
            if implied is not None:
                _keys(doc, budgets, {budget_key(b) for b in implied.budgets}, where)
            for key, entry in budgets.items():
                entry = doc.mapping(entry, f"{where}.{key}")
                expected = {"flops_kept", "params_kept", *BUDGET_SCORES, *(f"{s}_vs_unpruned" for s in KEPT_SCORES)}
                if criterion != "random" and "random" in criteria:
                    expected.add("finetuned_recal_bacc_vs_random")
                _keys(doc, entry, expected, f"{where}.{key}")
                for name, scored in entry.items():
                    bounds = SCORE_BOUNDS if name in BUDGET_SCORES else _bounds(name)
                    _entry(doc, scored, f"{where}.{key}.{name}", bounds, n_seeds)


def _finetune_point(doc: _Reader, value: Any, where: str, n_seeds: int, implied: Implied | None) -> None:
    """{k, the six scores, and (paired with fine-tuned random) finetuned_bacc_vs_random}."""
    point = doc.mapping(value, where)
    _keys(doc, point, {"k", *FINETUNED}, where, {"finetuned_bacc_vs_random"})
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


# --------------------------------------------------------------------------- efficiency.json
# ONNX Runtime's logits against torch's for the same shipped model (float32, BatchNorm folded): kernels
# sum in another order, so equal up to rounding; measured max differences are about 1e-6.
ONNX_TOLERANCE = 1e-3
RATIOS = {
    "params": ("params", "params"),
    "flops": ("flops_per_sample", "flops_per_sample"),
    "program_bytes": ("program_bytes", "program_bytes"),
    "speedup_batch1": ("latency_ms_batch1", "latency_ms_batch1"),
    "speedup_batch256": ("latency_ms_batch256", "latency_ms_batch256"),
    "speedup_batch256_eager": ("latency_ms_batch256_eager", "latency_ms_batch256_eager"),
    "speedup_batch256_onnxruntime": ("latency_ms_batch256_onnxruntime", "latency_ms_batch256_onnxruntime"),
}


def check_efficiency(
    path: Path | str,
    efficiency: Any,
    implied: Implied | None = None,
    band: pd.DataFrame | None = None,
    metrics: dict | None = None,
) -> None:
    """metrics/efficiency.json: its own ratios, and what it ships as params allow: the whole network
    (a budget, strategy and criterion; given `metrics`, the study's scores for them) or the
    single-layer model (criterion and K; given them, the study band's scores, `band`:
    recal_bacc.csv, and the study's baseline, `metrics`)."""
    doc = _Reader(path, "export")
    eff = doc.mapping(efficiency, "")
    seed = doc.number(eff, "seed", integer=True, low=0)
    chosen = [key.removeprefix("criterion_") for key in eff if key.startswith("criterion_")]
    if len(chosen) != 1 or eff[f"criterion_{chosen[0]}"] != 1:
        raise doc.refuse("it does not name one criterion (one criterion_<name> key set to 1)")
    criterion = chosen[0]
    loss = doc.number(eff, "score_loss_points", low=-100.0, high=100.0)
    if "budget" in eff:
        _check_network_export(doc, eff, criterion, loss, implied, metrics)
    else:
        _check_layer_export(doc, eff, criterion, loss, implied, band, metrics)
    doc.number(eff, "threads", integer=True, low=1)
    sides = {}
    for side in ("unpruned", "exported"):
        facts = doc.mapping(doc.get(eff, side), side)
        for key in ("params", "flops_per_sample", "program_bytes"):
            doc.number(facts, key, f"{side}.", low=0, low_open=True, integer=True)
        for key in facts:
            if key.startswith("test_"):
                doc.number(facts, key, f"{side}.", low=0.0, high=100.0)
            elif key.startswith("latency_"):
                doc.number(facts, key, f"{side}.", low=0.0, low_open=True)
        sides[side] = facts
    ratio = doc.mapping(doc.get(eff, "ratio"), "ratio")
    for key, (top, bottom) in RATIOS.items():
        value = doc.number(ratio, key, "ratio.", low=0.0, low_open=True)
        expected = doc.number(sides["unpruned"], top, "unpruned.") / doc.number(sides["exported"], bottom, "exported.")
        if not math.isclose(value, expected, rel_tol=1e-12):
            raise doc.refuse(f"ratio.{key}={value} is not its own measurements' ratio {expected}")
    vs_flops = doc.number(ratio, "speedup_batch256_vs_flops", "ratio.", low=0.0, low_open=True)
    if not math.isclose(vs_flops, ratio["speedup_batch256"] / ratio["flops"], rel_tol=1e-12):
        raise doc.refuse("ratio.speedup_batch256_vs_flops is not speedup_batch256 / flops")
    # The speed-ups' bootstrap intervals over paired rounds (prunelab.deploy.efficiency.speedup_interval).
    doc.number(ratio, "speedup_rounds", "ratio.", integer=True, low=2)
    for runtime in ("", "_onnxruntime"):
        low = doc.number(ratio, f"speedup_batch256{runtime}_low", "ratio.", low=0.0, low_open=True)
        doc.number(ratio, f"speedup_batch256{runtime}_high", "ratio.", low=low)
    doc.number(eff, "onnx_opset", integer=True, low=7)
    doc.number(eff, "onnxruntime_max_abs_logit_diff", low=0.0, high=ONNX_TOLERANCE)
    targets = [key.removeprefix("target_") for key in eff if key.startswith("target_")]
    if len(targets) != 1 or targets[0] not in ("flops", "latency") or eff[f"target_{targets[0]}"] != 1:
        raise doc.refuse("it does not name one budget target (one target_flops or target_latency key set to 1)")
    if implied is not None and targets[0] != implied.target:
        raise doc.refuse(f"target_{targets[0]}, but budget.target={implied.target}")
    _check_latency_prediction(doc, doc.mapping(doc.get(eff, "latency_prediction"), "latency_prediction"))
    if implied is not None and seed != implied.seeds[0]:
        raise doc.refuse(f"seed={seed}, but the model shipped is seeds[0]={implied.seeds[0]}'s")


def _check_latency_prediction(doc: _Reader, prediction: dict) -> None:
    """efficiency.json's `latency_prediction` (`stages/export.py`): each budget model's measured share of
    the unpruned model's latency against the table's and the FLOPs' prediction; every error is its
    prediction over the measurement, less 1 (in %), and the summaries are those errors' mean and largest over
    the distinct models (`configurations` of them: entries with the same channels are one model, measured once)."""
    where = "latency_prediction."
    n = doc.number(prediction, "configurations", where, integer=True, low=1)
    doc.number(prediction, "rounds", where, integer=True, low=1)
    doc.number(prediction, "unpruned_ms", where, low=0.0, low_open=True)
    errors: dict[str, dict[str, float]] = {"table": {}, "flops": {}}  # per distinct model (its channels)
    for budget, strategies in prediction.items():
        if not isinstance(strategies, dict):
            continue
        for strategy, criteria in doc.mapping(strategies, f"{where}{budget}").items():
            for criterion, entry in doc.mapping(criteria, f"{where}{budget}.{strategy}").items():
                at = f"{where}{budget}.{strategy}.{criterion}."
                entry = doc.mapping(entry, at)
                measured = doc.number(entry, "measured_share", at, low=0.0, low_open=True)
                channels = tuple(value for key, value in entry.items() if key.startswith("channels_"))
                if not channels or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in channels):
                    raise doc.refuse(f"{at}channels_<group> are not its kept counts (positive integers)")
                for source in errors:
                    share = doc.number(entry, f"{source}_share", at, low=0.0)
                    error = doc.number(entry, f"{source}_error_pct", at)
                    if not _close(error, 100 * (share - measured) / measured, 1e-6):
                        raise doc.refuse(f"{at}{source}_error_pct is not {source}_share over measured_share, less 1")
                    if errors[source].setdefault(channels, abs(error)) != abs(error):
                        raise doc.refuse(f"{at}{source}_error_pct differs from another model's with its channels")
    if len(errors["table"]) != n:
        raise doc.refuse(f"{where}configurations={n}, but it holds {len(errors['table'])} distinct models")
    for source, by_model in errors.items():
        values = list(by_model.values())
        for stat, expected in (("mean", sum(values) / len(values)), ("max", max(values))):
            key = f"{source}_{stat}_abs_error_pct"
            if not _close(doc.number(prediction, key, where, low=0.0), expected, 1e-6):
                raise doc.refuse(f"{where}{key} is not its models' {stat} absolute error")


def _check_layer_export(
    doc: _Reader,
    eff: dict,
    criterion: str,
    loss: float,
    implied: Implied | None,
    band: pd.DataFrame | None,
    metrics: dict | None,
) -> None:
    """The single-layer study's export (export.budget: none): K of P, the study's scores at K."""
    channels = int(doc.number(eff, "channels", integer=True, low=1))
    k = int(doc.number(eff, "k", integer=True, low=0, high=channels - 1))
    at_k = doc.number(eff, "study_recal_bacc_at_k", low=0.0, high=100.0)
    unpruned = doc.number(eff, "study_recal_bacc_unpruned", low=0.0, high=100.0)
    if not _close(loss, unpruned - at_k, 1e-9):
        raise doc.refuse(f"score_loss_points={loss} is not study_recal_bacc_unpruned - study_recal_bacc_at_k")
    if implied is not None:
        if implied.export_budget != "none":
            raise doc.refuse(f"it ships the single-layer model, but export.budget={implied.export_budget!r}")
        if channels != implied.channels:
            raise doc.refuse(f"channels={channels}, but model.arch has P={implied.channels}")
        if criterion not in implied.ranked or implied.export_criterion not in ("auto", criterion):
            raise doc.refuse(f"criterion {shown(criterion)} is not one export.criterion and prune.criteria allow")
        if implied.export_k not in ("auto", k) or k not in implied.ks:
            raise doc.refuse(f"k={k} is not one export.k and the sweep allow")
    if band is not None:
        rows = band[band["criterion"] == criterion].set_index("k")["mean"]
        for key, value, at in (("study_recal_bacc_at_k", at_k, k), ("study_recal_bacc_unpruned", unpruned, 0)):
            if at not in rows.index or not _close(value, float(rows[at]), 1e-9):
                raise doc.refuse(f"{key}={value} is not the study's recal_bacc.csv mean for {criterion} at K={at}")
    if metrics is not None:
        baseline = metrics["baseline_recal_bacc"]["mean"]
        # The band prints 4 decimals (5e-5) of means over 6-decimal sweep values (5e-7).
        if not _close(unpruned, baseline, 6e-5):
            raise doc.refuse(f"study_recal_bacc_unpruned={unpruned} is not the study's baseline {baseline:.4f}")


def _check_network_export(
    doc: _Reader, eff: dict, criterion: str, loss: float, implied: Implied | None, metrics: dict | None
) -> None:
    """The whole-network export: a budget and strategy of the study, each layer's kept channels,
    the study's fine-tuned scores whose difference is the loss."""
    budget = doc.number(eff, "budget", low=0.0, high=1.0, low_open=True)
    strategies = [key.removeprefix("strategy_") for key in eff if key.startswith("strategy_")]
    if len(strategies) != 1 or eff[f"strategy_{strategies[0]}"] != 1:
        raise doc.refuse("it does not name one strategy (one strategy_<name> key set to 1)")
    doc.number(eff, "within_points", integer=True, low=0, high=1)
    doc.number(eff, "slower_skipped", integer=True, low=0)
    doc.number(eff, "shipped_unpruned", integer=True, low=0, high=1)
    from prunelab.network.choice import KEPT_SCORES

    losses = doc.mapping(doc.get(eff, "study_loss"), "study_loss")
    _keys(doc, losses, set(KEPT_SCORES), "study_loss")
    for score in KEPT_SCORES:
        entry = doc.mapping(losses[score], f"study_loss.{score}")
        mean = doc.number(entry, "mean", f"study_loss.{score}.", low=-100.0, high=100.0)
        if "ci_low" in entry or "ci_high" in entry:  # one seed: no interval
            # a paired t interval, unclipped as in metrics.json's comparisons: with two seeds it can pass ±100
            doc.number(entry, "ci_low", f"study_loss.{score}.", high=mean)
            doc.number(entry, "ci_high", f"study_loss.{score}.", low=mean)
    shipped = doc.number(eff, "study_finetuned_recal_bacc", low=0.0, high=100.0)
    unpruned = doc.number(eff, "study_finetuned_recal_bacc_unpruned", low=0.0, high=100.0)
    if not _close(loss, unpruned - shipped, 1e-9):
        raise doc.refuse("score_loss_points is not study_finetuned_recal_bacc_unpruned - study_finetuned_recal_bacc")
    kept = {key.removeprefix("channels_"): eff[key] for key in eff if key.startswith("channels_")}
    for layer in kept:
        doc.number(eff, f"channels_{layer}", integer=True, low=1)
    if implied is not None:
        if implied.export_budget == "none":
            raise doc.refuse("it ships the whole-network model, but export.budget is none")
        if set(kept) != {metric_key(name) for name in implied.layers}:
            raise doc.refuse(f"its channels_<layer> keys are not model.arch's layers ({', '.join(implied.layers)})")
        if round(budget, 6) not in implied.budgets or implied.export_budget not in ("auto", budget):
            raise doc.refuse(f"budget={budget} is not one export.budget and budget.flops allow")
        if strategies[0] not in implied.strategies or implied.export_strategy not in ("auto", strategies[0]):
            raise doc.refuse(f"strategy {shown(strategies[0])} is not one export.strategy and budget.strategies allow")
        if criterion not in implied.budget_criteria or implied.export_criterion not in ("auto", criterion):
            raise doc.refuse(f"criterion {shown(criterion)} is not one export.criterion and budget.criteria allow")
    if metrics is not None:
        from prunelab.network.choice import budget_key

        study = metrics["budget"]
        entry = study.get(strategies[0], {}).get(criterion, {}).get(budget_key(budget))
        if entry is None or not _close(shipped, entry["finetuned_recal_bacc"]["mean"], 1e-9):
            raise doc.refuse(
                "study_finetuned_recal_bacc is not metrics.json's mean for its budget, strategy, criterion"
            )
        if not _close(unpruned, study["unpruned"]["finetuned_recal_bacc"]["mean"], 1e-9):
            raise doc.refuse("study_finetuned_recal_bacc_unpruned is not metrics.json's unpruned fine-tuned mean")


# --------------------------------------------------------------------------- info.json
def check_info(path: Path | str, raw: Any) -> None:
    """A prepared folder's info.json: a registered source and task, and the channels, classes
    and normalisation that source and task give (`prunelab.prepare.tasks.dataset_info`)."""
    doc = _Reader(path, "prepare_data")
    info = doc.mapping(raw, "")
    source, task = doc.get(info, "source"), doc.get(info, "task")
    if source not in SOURCES:
        raise doc.refuse(f"source={shown(source)} is not a registered source")
    if task not in ("pairs", "classification"):
        raise doc.refuse(f"task={shown(task)} is not pairs or classification")
    registered = SOURCES[source]
    copies = 2 if task == "pairs" else 1
    channels = doc.number(info, "channels", integer=True, low=1)
    doc.number(info, "size", integer=True, low=1)
    n_classes = doc.number(info, "n_classes", integer=True, low=2)
    if not registered.mean:  # a folder source: its classes, listing and train-split statistics
        _check_folder_info(doc, info, task, channels, n_classes, copies)
        return
    if channels != len(registered.mean) * copies or n_classes != (2 if task == "pairs" else registered.n_classes):
        raise doc.refuse(f"channels={channels} or n_classes={n_classes} is not what {source} {task} gives")
    for key, expected in (("mean", registered.mean * copies), ("std", registered.std * copies)):
        value = doc.get(info, key)
        if value != list(expected):
            raise doc.refuse(f"{key}={shown(value)} is not {source}'s normalisation {list(expected)}")


def _check_folder_info(doc: _Reader, info: dict, task: str, channels: int, n_classes: int, copies: int) -> None:
    """info.json of an image folder (`prunelab.prepare.imagefolder`): grey or RGB images, the class
    names (n_classes of them for classification), a sha256 listing, and a normalisation per channel
    from the train split (means in [0, 1], deviations in (0, 1])."""
    if channels not in (copies, 3 * copies):
        raise doc.refuse(f"channels={channels} is not grey or RGB images ({copies} or {3 * copies})")
    classes = doc.get(info, "classes")
    if not isinstance(classes, list) or len(classes) < 2 or len(set(map(str, classes))) != len(classes):
        raise doc.refuse(f"classes={shown(classes)} is not a list of at least 2 distinct names")
    if task == "classification" and n_classes != len(classes):
        raise doc.refuse(f"n_classes={n_classes} is not the {len(classes)} classes listed")
    listing = doc.get(info, "listing_sha256")
    if not isinstance(listing, str) or len(listing) != 64 or any(c not in "0123456789abcdef" for c in listing):
        raise doc.refuse(f"listing_sha256={shown(listing)} is not a sha256 hex digest")
    if doc.get(info, "normalisation") != "train split":
        raise doc.refuse("normalisation is not 'train split'")
    for key, low, low_open in (("mean", 0.0, False), ("std", 0.0, True)):
        values = doc.get(info, key)
        if not isinstance(values, list) or len(values) != channels:
            raise doc.refuse(f"{key}={shown(values)} is not one number per channel ({channels})")
        for value in values:
            ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
            if not ok or value > 1 or value < low or (low_open and value == low):
                raise doc.refuse(f"{key}={shown(values)} holds {shown(value)}, not a share of the pixel range")
