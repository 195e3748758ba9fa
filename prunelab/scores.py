"""Threshold-free scores and post-hoc calibration of a classifier's decision, batched over many (order, K) rows.

A pruned network can keep its ranking of the examples while its decision threshold drifts, so plain accuracy
at the default threshold conflates "the features are gone" with "the bias is off". These functions separate the
two: ROC AUC does not depend on any threshold, and `fit_threshold` / `fit_bias` refit only the decision (a
scalar threshold for two classes, a per-class bias for C classes) on calibration data, leaving the ranking as is.

Every function works on arrays with arbitrary leading batch dimensions (e.g. (order, K)) and one shared label
vector, so a whole sweep is scored in one call. Scores are in percent (0–100) like the rest of the project.
Pure NumPy + SciPy: this module must import without torch (the aggregation stages run torch-free).
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp
from scipy.stats import rankdata

# Log-probability (at most) that `fit_bias` gives to a class absent from the calibration labels, on every
# calibration example. e^-50 ≈ 2e-22 is below float64 resolution next to 1, so the present classes' probabilities
# are unchanged, yet the bias stays finite (no inf/NaN downstream).
ABSENT_LOG_PROB = -50.0


def _check_labels(labels: np.ndarray, n: int, n_classes: int) -> np.ndarray:
    """Labels as a 1-D int64 array of length `n` with values in 0..n_classes-1; fail early rather than mis-score."""
    y = np.asarray(labels)
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"labels must have shape ({n},), got {y.shape}")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {y.dtype}")
    y = y.astype(np.int64, copy=False)
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"labels must lie in 0..{n_classes - 1}")
    return y


def _two_class_rows(values: np.ndarray, labels: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray, int, int]:
    """values (..., n) as float64, labels checked as {0, 1}, and the class counts (n_pos, n_neg)."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim < 1:
        raise ValueError(f"{what} must have shape (..., n)")
    y = _check_labels(labels, v.shape[-1], 2)
    n_pos = int(y.sum())
    return v, y, n_pos, v.shape[-1] - n_pos


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Probabilities from logits along `axis`; the max is subtracted first so large logits cannot overflow."""
    z = np.asarray(logits, dtype=np.float64)
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _log_softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    return z - logsumexp(z, axis=axis, keepdims=True)


def roc_auc(scores: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """ROC AUC in percent, per row, from ranks (Mann–Whitney U) so that ties count one half, as in scikit-learn.

    `n_classes` decides the layout explicitly (a 2-column probability array and a batch of 2 rows would
    otherwise be indistinguishable):

    * ``n_classes == 2``: `scores` has shape (..., n), the score of class 1 (e.g. the logit difference z1 − z0,
      or p1); `labels` has shape (n,) in {0, 1}. Returns shape (...), equal to
      ``100 * sklearn.metrics.roc_auc_score(labels, row)`` for every row. If one class is absent from `labels`
      the AUC is undefined and every row is NaN (scikit-learn also returns NaN, with a warning).
    * ``n_classes > 2``: `scores` has shape (..., n, C), class *probabilities* (use `softmax` on logits: one-vs-rest
      AUC ranks each column across examples, and a column of raw logits ranks differently from its softmax).
      Returns shape (...), the macro one-vs-rest AUC, equal to
      ``100 * roc_auc_score(labels, row, multi_class="ovr", average="macro")`` when every class occurs in
      `labels`. Classes absent from `labels` have no AUC and are left out of the macro mean (scikit-learn raises,
      or returns NaN when given ``labels=range(C)``); NaN only if no class has both positives and negatives.

    Ties get average ranks (`scipy.stats.rankdata`), which is exactly the trapezoidal area scikit-learn computes.
    NaN scores propagate to NaN for their row.
    """
    if n_classes < 2:
        raise ValueError(f"n_classes must be at least 2, got {n_classes}")
    s = np.asarray(scores)
    if n_classes == 2:
        s, y, n_pos, n_neg = _two_class_rows(s, labels, "two-class scores")
        if n_pos == 0 or n_neg == 0:
            return np.full(s.shape[:-1], np.nan)
        ranks = rankdata(s, axis=-1)
        # Rank sums are sums of half-integers: exact in float64, so the only rounding is the final division.
        u = ranks @ y.astype(np.float64) - n_pos * (n_pos + 1) / 2.0
        return 100.0 * u / (n_pos * n_neg)

    if s.ndim < 2 or s.shape[-1] != n_classes:
        raise ValueError(f"{n_classes}-class scores must have shape (..., n, {n_classes}), got {s.shape}")
    n = s.shape[-2]
    y = _check_labels(labels, n, n_classes)
    onehot = np.zeros((n, n_classes))
    onehot[np.arange(n), y] = 1.0
    n_pos = onehot.sum(axis=0)
    n_neg = n - n_pos
    defined = (n_pos > 0) & (n_neg > 0)
    ranks = rankdata(s, axis=-2)  # each class's column ranked across the examples
    u = np.einsum("...nc,nc->...c", ranks, onehot) - n_pos * (n_pos + 1) / 2.0
    per_class = u / np.where(defined, n_pos * n_neg, 1.0)
    if not defined.any():
        return np.full(s.shape[:-2], np.nan)
    return 100.0 * per_class[..., defined].mean(axis=-1)


def fit_threshold(diffs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-row threshold t maximising the balanced accuracy of "class 1 iff diff > t" on calibration data.

    `diffs` has shape (..., n) (logit differences z1 − z0, finite), `labels` shape (n,) in {0, 1}; returns shape
    (...). The search is exact: every distinct cut of the sorted scores is a candidate, represented by the midpoint
    between consecutive distinct values, plus one threshold below the minimum (all predicted 1) and one above the
    maximum (all predicted 0). The edge thresholds are 0.0 when 0 already lies beyond the data (so the default
    decision is kept), else min − max(1, |min|) and max + max(1, |max|). Balanced accuracy is compared in exact
    integer arithmetic, and ties between equally good cuts go to the threshold closest to 0 (the default
    decision), then to the smaller one, so the result is deterministic and moves off the default only when that
    strictly helps on the calibration data.

    If a class is absent from `labels`, balanced accuracy cannot be fitted and every row gets 0.0.
    Vectorised with a sort and cumulative sums: O(n log n) per row, no Python loop over n.
    """
    d, y, n_pos, n_neg = _two_class_rows(diffs, labels, "diffs")
    n = d.shape[-1]
    if n_pos == 0 or n_neg == 0:
        return np.zeros(d.shape[:-1])
    if not np.isfinite(d).all():
        raise ValueError("diffs must be finite")

    order = np.argsort(d, axis=-1, kind="stable")
    ds = np.take_along_axis(d, order, axis=-1)
    ys = y[order]
    # Cut i (0..n): the i smallest scores are predicted 0, the rest 1.
    zero = np.zeros((*d.shape[:-1], 1), dtype=np.int64)
    pos_below = np.concatenate([zero, np.cumsum(ys, axis=-1)], axis=-1)
    neg_below = np.arange(n + 1) - pos_below
    # balanced accuracy = (tp / n_pos + tn / n_neg) / 2, scaled by 2·n_pos·n_neg to stay integer (exact ties).
    gain = (n_pos - pos_below) * n_neg + neg_below * n_pos
    distinct = ds[..., 1:] > ds[..., :-1]  # a cut between equal scores cannot be realised by a threshold
    true = np.ones((*d.shape[:-1], 1), dtype=bool)
    realisable = np.concatenate([true, distinct, true], axis=-1)
    gain = np.where(realisable, gain, -1)

    lo, hi = ds[..., :-1], ds[..., 1:]
    mid = lo / 2 + hi / 2  # halves first: no overflow near the float64 limits
    # Between adjacent floats the midpoint may round onto an endpoint; `lo` then still separates lo from hi.
    mid = np.where((mid > lo) & (mid < hi), mid, lo)
    with np.errstate(over="ignore"):
        first, last = ds[..., :1], ds[..., -1:]
        below = np.where(first > 0, 0.0, first - np.maximum(1.0, np.abs(first)))
        above = np.where(last < 0, 0.0, last + np.maximum(1.0, np.abs(last)))
    candidates = np.concatenate([below, mid, above], axis=-1)

    best = gain == gain.max(axis=-1, keepdims=True)
    distance = np.where(best, np.abs(candidates), np.inf)
    best &= distance == distance.min(axis=-1, keepdims=True)
    return np.where(best, candidates, np.inf).min(axis=-1)


def predict_with_threshold(diffs: np.ndarray, thresholds: np.ndarray | float) -> np.ndarray:
    """Int64 predictions (1 iff diff > t) of shape (..., n); `thresholds` has shape (...) or is a scalar."""
    d = np.asarray(diffs)
    t = np.asarray(thresholds, dtype=np.float64)
    return (d > t[..., None]).astype(np.int64)


def fit_bias(
    logits: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    iterations: int = 100,
    tol: float = 1e-10,
) -> np.ndarray:
    """Per-row bias b of shape (..., C) minimising the mean cross-entropy of softmax(logits + b) on calibration data.

    `logits` has shape (..., n, C), `labels` shape (n,) in 0..C-1. Only the bias is fitted, a convex problem whose
    optimum is where the mean predicted probability of each class equals its frequency (the gradient
    mean_n softmax − freq vanishes). It is reached by the fixed-point update
    b_c ← b_c + log freq_c − log mean_n softmax(logits + b)_c, which is generalised iterative scaling for one-hot
    features and so converges monotonically. Each row stops on its own once its largest update is below `tol`
    (so a row's result does not depend on its batch mates), or after `iterations` updates, whichever comes first;
    the last iterate is returned in both cases.

    Softmax is shift-invariant, so the bias is normalised to sum to 0 over the classes present in `labels` (all
    classes, when all occur). A class absent from `labels` has frequency 0 and its optimal bias is −∞; instead it is
    fitted out (the others are fitted as if it did not exist, which is the limit) and given the finite bias that
    puts its probability at most e^ABSENT_LOG_PROB (≈ 2e-22) on every calibration example, so no inf/NaN escapes.
    """
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim < 2 or z.shape[-1] != n_classes:
        raise ValueError(f"logits must have shape (..., n, {n_classes}), got {z.shape}")
    n = z.shape[-2]
    y = _check_labels(labels, n, n_classes)
    batch = z.shape[:-2]
    if n == 0:
        return np.zeros((*batch, n_classes))
    counts = np.bincount(y, minlength=n_classes)
    present = counts > 0
    zp = z[..., present]
    log_freq = np.log(counts[present] / n)

    bias = np.zeros((*batch, int(present.sum())))
    active = np.ones(batch, dtype=bool)
    for _ in range(iterations):
        log_mean = logsumexp(_log_softmax(zp + bias[..., None, :]), axis=-2) - np.log(n)
        step = log_freq - log_mean
        bias = np.where(active[..., None], bias + step, bias)
        active &= np.abs(step).max(axis=-1) >= tol
        if not active.any():
            break
    bias -= bias.mean(axis=-1, keepdims=True)

    full = np.empty((*batch, n_classes))
    full[..., present] = bias
    if not present.all():
        log_norm = logsumexp(zp + bias[..., None, :], axis=-1, keepdims=True)  # (..., n, 1)
        full[..., ~present] = (log_norm - z[..., ~present]).min(axis=-2) + ABSENT_LOG_PROB
    return full


def prior_adjusted(bias: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """bias − log freq: the logit adjustment that turns a cross-entropy fit into a balanced-accuracy decision.

    Subtracting the log class prior of `labels` makes argmax(logits + result) act as if classes were equally
    likely, which is what balanced accuracy rewards. `bias` has shape (..., C); returns the same shape. A class
    absent from `labels` has log freq = −∞ and would get +∞ (always predicted), so its bias is returned unchanged
    instead (from `fit_bias` it is already very negative: a class never seen in calibration is not predicted).
    """
    b = np.asarray(bias, dtype=np.float64)
    if b.ndim < 1 or b.shape[-1] != n_classes:
        raise ValueError(f"bias must have shape (..., {n_classes}), got {b.shape}")
    y = np.asarray(labels)
    y = _check_labels(y, y.shape[0] if y.ndim == 1 else -1, n_classes)
    counts = np.bincount(y, minlength=n_classes)
    present = counts > 0
    shift = np.zeros(n_classes)
    shift[present] = np.log(counts[present] / y.size)
    return b - shift
