"""Intervals across replicates: two-sided Student t intervals (`scipy.stats.t`, n − 1 degrees of
freedom). Each seed is one independent replicate of the whole lab (its own pairs, initialisation,
batch order and random orders)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from scipy import stats as scipy_stats

CONFIDENCE = 0.95


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
