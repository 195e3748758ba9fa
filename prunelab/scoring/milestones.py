"""Which K a replicate evaluates and reports a scalar at, with no project import (NumPy only):
what the sweep, the export and the checks share. `prunelab.scoring.curves` re-exports these."""

from __future__ import annotations

import numpy as np

WITHIN_POINTS = 1.0  # max_k_within_1pt: accuracy stays within this many points of baseline


def milestone_ks(channels: int) -> dict[str, int]:
    """K values whose accuracy is reported as a scalar; named by share, so every model has the same keys."""
    return {
        "acc_at_quarter": channels // 4,
        "acc_at_half": channels // 2,
        "acc_at_three_quarters": 3 * channels // 4,
        "acc_at_last": channels - 1,
    }


def resolve_ks(ks: str | list[int], k_step: int, channels: int) -> list[int]:
    """The K values to evaluate: the requested ones plus 0 (baseline) and the milestones."""
    requested = range(0, channels, k_step) if ks == "all" else ks
    return sorted({0, *requested, *milestone_ks(channels).values()})


def max_k_within(ks: np.ndarray, acc: np.ndarray, baseline: float, points: float = WITHIN_POINTS) -> int:
    """The largest K such that accuracy at every evaluated K' <= K stays within `points` of baseline."""
    ok = acc >= baseline - points
    first_bad = np.flatnonzero(~ok)
    last_ok = len(ks) - 1 if len(first_bad) == 0 else first_bad[0] - 1
    return int(ks[last_ok]) if last_ok >= 0 else 0
