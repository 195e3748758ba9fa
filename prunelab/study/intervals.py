"""Intervals across replicates: two-sided Student t intervals (`scipy.stats.t`, n − 1 degrees of
freedom). Each seed is one independent replicate of the whole lab (its own pairs, initialisation,
batch order and random orders).

Scores live in [0, 100] and shares (`beats_random_frac`, the budget's `flops_kept` and
`params_kept`) in [0, 1]; with few, skewed seeds a t interval can leave that range (an accuracy
"up to 106 %", a share "from −0.08"). Intervals of scores and shares are therefore clipped to their
range (`bounded_interval`), and the entry says so (`clipped: 1`, `bounded_entry`); the figures'
bands use the same function. Clipping keeps the t interval's coverage where it matters (it only
removes impossible values) and stays equal to scipy's interval wherever that one is inside the
range (tested). Differences between scores live in [−100, 100] and are never near those bounds, so
they are not clipped.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from scipy import stats as scipy_stats

CONFIDENCE = 0.95
SCORE_RANGE = (0.0, 100.0)  # every score is in percent
SHARE_RANGE = (0.0, 1.0)  # a share: of the pruned K values (`*_frac`), of FLOPs or parameters kept


def t_interval(values: Iterable[float], confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(mean, low, high): the two-sided t interval for the mean of `values`.

    One value has no interval: (x, nan, nan). Equal values give a zero-width interval.
    """
    x = np.asarray(list(values), dtype=np.float64)
    mean = float(x.mean())
    if len(x) < 2:
        return mean, float("nan"), float("nan")
    sem = float(x.std(ddof=1) / np.sqrt(len(x)))
    if sem == 0.0:
        return mean, mean, mean
    low, high = scipy_stats.t.interval(confidence, df=len(x) - 1, loc=mean, scale=sem)
    return mean, float(low), float(high)


def interval_entry(values: Iterable[float]) -> dict[str, float]:
    """{mean, ci_low, ci_high} for metrics.json; the interval keys are left out for one seed
    (JSON has no NaN, and DVC shows a missing key as '-')."""
    mean, low, high = t_interval(values)
    entry = {"mean": mean}
    if not np.isnan(low):
        entry.update(ci_low=low, ci_high=high)
    return entry


def bounded_interval(
    values: Iterable[float], bounds: tuple[float, float] = SCORE_RANGE, confidence: float = CONFIDENCE
) -> tuple[float, float, float]:
    """`t_interval` clipped to `bounds` (one value: no interval, as there)."""
    mean, low, high = t_interval(values, confidence)
    if np.isnan(low):
        return mean, low, high
    return mean, max(low, bounds[0]), min(high, bounds[1])


def bounded_entry(values: Iterable[float], bounds: tuple[float, float]) -> dict[str, float]:
    """`interval_entry` for a quantity in `bounds`: the interval clipped to them (as
    `bounded_interval`), and `clipped: 1` when the t interval had left them."""
    entry = interval_entry(values)
    if "ci_low" in entry:
        low, high = max(entry["ci_low"], bounds[0]), min(entry["ci_high"], bounds[1])
        if (low, high) != (entry["ci_low"], entry["ci_high"]):
            entry.update(ci_low=low, ci_high=high, clipped=1)
    return entry


def score_entry(values: Iterable[float]) -> dict[str, float]:
    """`bounded_entry` for a score in [0, 100]."""
    return bounded_entry(values, SCORE_RANGE)


def share_entry(values: Iterable[float]) -> dict[str, float]:
    """`bounded_entry` for a share in [0, 1]."""
    return bounded_entry(values, SHARE_RANGE)
