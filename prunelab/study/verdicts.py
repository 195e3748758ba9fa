"""What a paired comparison with random supports: better, worse, equivalent or inconclusive.

A 95 % interval of the paired difference that contains 0 does not show that a criterion is as
good as random; it may only show that the seeds were too few. So every comparison gets one of
four verdicts, decided against a margin δ (in points of the score) fixed before the study
(params `study.margins`):

* **equivalent**: two one-sided t tests (TOST) at α = 0.05 reject both "difference ≤ −δ" and
  "difference ≥ δ"; the same as the 90 % t interval lying inside (−δ, δ). A difference smaller
  than the margin is, by the margin's definition, not worth telling apart, so this verdict wins
  even when the 95 % interval also excludes 0.
* **better** / **worse**: not equivalent, and the 95 % t interval lies above / below 0.
* **inconclusive**: none of these.

Power, in the study's own terms: the smallest difference a paired t test with these seeds would
detect at 80 % power, (t₁₋α/₂ + t₁₋β)·s/√n with n − 1 degrees of freedom (`mde`), and the
number of seeds at which that falls to the margin (`seeds_needed`), which would settle an
inconclusive verdict one way or the other. NumPy and scipy only.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from scipy import stats as scipy_stats

from prunelab.study.intervals import CONFIDENCE, t_interval
from prunelab.study.names import VERDICTS as VERDICTS  # re-exported: it lives in the leaf

ALPHA = 1.0 - CONFIDENCE  # two-sided level of the better / worse interval
POWER = 0.8
MAX_SEEDS = 10_000  # `seeds_needed` beyond this is reported as this: the margin is out of reach


def tost_p(diffs: Iterable[float], margin: float) -> float:
    """The TOST p-value for |mean difference| < margin: the larger of the two one-sided t tests'
    p-values (H0: mean ≤ −margin, and H0: mean ≥ margin), n − 1 degrees of freedom. 1.0 for fewer
    than two values; for equal values, 0.0 when they lie strictly inside the margin, else 1.0."""
    x = np.asarray(list(diffs), dtype=np.float64)
    if len(x) < 2:
        return 1.0
    mean, sem = float(x.mean()), float(x.std(ddof=1) / np.sqrt(len(x)))
    if sem == 0.0:
        return 0.0 if abs(mean) < margin else 1.0
    df = len(x) - 1
    above_lower = float(scipy_stats.t.sf((mean + margin) / sem, df))  # H0: mean <= -margin
    below_upper = float(scipy_stats.t.cdf((mean - margin) / sem, df))  # H0: mean >= +margin
    return max(above_lower, below_upper)


def mde(sd: float, n: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest true difference a two-sided paired t test at level `alpha` detects with
    probability `power`, for n seeds whose differences have standard deviation `sd`."""
    if n < 2:
        return float("inf")
    df = n - 1
    return float((scipy_stats.t.ppf(1 - alpha / 2, df) + scipy_stats.t.ppf(power, df)) * sd / np.sqrt(n))


def seeds_needed(sd: float, margin: float, alpha: float = ALPHA, power: float = POWER) -> int:
    """The fewest seeds (at least 2) whose `mde` is at most `margin`, for differences with
    standard deviation `sd`; MAX_SEEDS when even that many would not do."""
    if sd == 0.0:
        return 2
    low, high = 2, MAX_SEEDS
    if mde(sd, high, alpha, power) > margin:
        return MAX_SEEDS
    while low < high:  # mde falls as n grows: bisect for the first n that reaches the margin
        mid = (low + high) // 2
        low, high = (low, mid) if mde(sd, mid, alpha, power) <= margin else (mid + 1, high)
    return low


def _verdict(p_equivalent: float, low: float, high: float) -> str:
    """The verdict from the TOST p-value and the 95 % interval (NaN bounds: one seed)."""
    if np.isnan(low):
        return "inconclusive"
    if p_equivalent < ALPHA:
        return "equivalent"
    if low > 0:
        return "better"
    if high < 0:
        return "worse"
    return "inconclusive"


def verdict_of(diffs: Iterable[float], margin: float) -> str:
    """One of VERDICTS for paired differences (criterion minus random, one per seed)."""
    x = np.asarray(list(diffs), dtype=np.float64)
    _, low, high = t_interval(x)
    return _verdict(tost_p(x, margin), low, high)


def comparison(diffs: Iterable[float], margin: float) -> dict:
    """metrics.json's entry for one paired comparison: mean and 95 % interval (left out for one
    seed), wins, the verdict, the TOST p-value, the margin, and (from two seeds on) the minimum
    detectable effect and the seeds that would bring it down to the margin."""
    x = np.asarray(list(diffs), dtype=np.float64)
    mean, low, high = t_interval(x)
    entry: dict = {"mean": mean}
    if not np.isnan(low):
        entry.update(ci_low=low, ci_high=high)
    p_equivalent = tost_p(x, margin)
    entry.update(wins=int((x > 0).sum()), verdict=_verdict(p_equivalent, low, high), tost_p=p_equivalent, margin=margin)
    if len(x) >= 2:
        sd = float(x.std(ddof=1))
        entry.update(mde=mde(sd, len(x)), seeds_needed=seeds_needed(sd, margin))
    return entry


def sentence(entry: dict, n_seeds: int, score: str) -> str:
    """What one comparison supports, in words a reader can act on."""
    margin = f"±{entry['margin']:g} points"
    wins = f"above random in {entry['wins']} of {n_seeds} seeds"
    interval = f"{entry['mean']:+.1f}" + (
        f" [{entry['ci_low']:.1f}, {entry['ci_high']:.1f}]" if "ci_low" in entry else " (one seed: no interval)"
    )
    if entry["verdict"] == "equivalent":
        return f"equivalent to random within {margin} of {score} ({interval}; TOST p = {entry['tost_p']:.3f})"
    if entry["verdict"] in ("better", "worse"):
        return f"{entry['verdict']} than random on {score}: {interval}, the 95 % interval excludes 0 ({wins})"
    if "seeds_needed" not in entry:
        return f"inconclusive on {score} with one seed ({interval}): run at least 2 seeds"
    more = entry["seeds_needed"] - n_seeds
    if entry["seeds_needed"] >= MAX_SEEDS:
        reach = "no practical number of seeds would decide it at that margin"
    elif more > 0:
        reach = f"add {more} seed{'s' if more != 1 else ''} to decide it at that margin"
    else:
        reach = "the seeds are enough for that margin, and the difference sits close to it"
    return (
        f"inconclusive on {score} ({interval}, {wins}): neither different from random nor within {margin}; "
        f"{n_seeds} seeds detect {entry['mde']:.1f} points at 80 % power, so {reach}"
    )
