"""The project's one vocabulary of scores, and how each is computed. Everything is in percent.

The five scores every stage reports (sweep, fine-tuning, export alike), by name:

* `acc`, `bacc`: accuracy and balanced accuracy at the model's own decision (argmax of the
  logits). Balanced accuracy is the mean recall over the classes present in the true labels,
  so predicting the majority class always scores 100 / n_classes.
* `roc_auc`: ROC AUC, threshold-free (two classes: of the logit difference; C classes: the
  macro one-vs-rest AUC of the softmax probabilities). `auc` alone means nothing here.
* `recal_acc`, `recal_bacc`: accuracy and balanced accuracy with only the decision re-fitted
  on calibration data that is never the test split (two classes: the threshold on the logit
  difference that maximises balanced accuracy; C classes: the last layer's bias re-fitted by
  cross-entropy, minus the log class prior for balanced accuracy).

A pruned network can keep its ranking of the examples while its decision threshold drifts;
ROC AUC and the recalibrated scores separate the two. Every function works on arrays with
arbitrary leading batch dimensions (e.g. (order, K)) and one shared label vector, so a whole
sweep is scored in one call. NumPy + SciPy only: this module imports without torch (the
aggregation runs torch-free); `confusion` works on the tensors it is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from prunelab.scoring.names import SCORES as SCORES  # re-exported: it lives in the leaf
from prunelab.scoring.names import over_k as over_k

if TYPE_CHECKING:
    import torch

# Log-probability (at most) that `fit_bias` gives to a class absent from the calibration labels, on every
# calibration example. e^-50 ≈ 2e-22 is below float64 resolution next to 1, so the present classes' probabilities
# are unchanged, yet the bias stays finite (no inf/NaN downstream).
ABSENT_LOG_PROB = -50.0


# --------------------------------------------------------------------------- at the model's own decision
def confusion(labels: torch.Tensor, predictions: torch.Tensor, n_classes: int) -> torch.Tensor:
    """confusion[..., true, predicted] counts; `predictions` may have leading batch dims."""
    flat = labels * n_classes + predictions
    # Tensor methods rather than torch.* functions: this module is imported torch-free.
    counts = flat.new_zeros(*predictions.shape[:-1], n_classes * n_classes)
    counts.scatter_add_(-1, flat, flat.new_ones(flat.shape))
    return counts.view(*predictions.shape[:-1], n_classes, n_classes)


def confusion_counts(labels: np.ndarray, predictions: np.ndarray, n_classes: int) -> np.ndarray:
    """NumPy twin of `confusion`: counts[..., true, predicted] for predictions of shape (..., n)."""
    predictions = np.asarray(predictions, dtype=np.int64)
    flat = np.asarray(labels, dtype=np.int64) * n_classes + predictions  # (..., n)
    rows = flat.reshape(-1, flat.shape[-1])
    offsets = np.arange(len(rows))[:, None] * n_classes * n_classes
    counts = np.bincount((rows + offsets).ravel(), minlength=len(rows) * n_classes * n_classes)
    return counts.reshape(*flat.shape[:-1], n_classes, n_classes)


def accuracy(conf: np.ndarray) -> np.ndarray:
    conf = np.asarray(conf, dtype=np.float64)
    return 100.0 * np.trace(conf, axis1=-2, axis2=-1) / conf.sum(axis=(-2, -1))


def balanced_accuracy(conf: np.ndarray) -> np.ndarray:
    conf = np.asarray(conf, dtype=np.float64)
    support = conf.sum(axis=-1)  # per true class
    recall = np.diagonal(conf, axis1=-2, axis2=-1) / np.where(support > 0, support, 1)
    present = support > 0
    return 100.0 * (recall * present).sum(axis=-1) / present.sum(axis=-1)


def majority_floor(labels: torch.Tensor | np.ndarray) -> float:
    """Accuracy of always answering the most common class, in percent."""
    counts = np.bincount(np.asarray(labels))
    return float(100.0 * counts.max() / counts.sum())


def scores_from_predictions(labels: torch.Tensor, predictions: torch.Tensor, n_classes: int) -> tuple[float, float]:
    conf = confusion(labels, predictions, n_classes).cpu().numpy()
    return float(accuracy(conf)), float(balanced_accuracy(conf))


# --------------------------------------------------------------------------- threshold-free and recalibrated
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
    from scipy.special import logsumexp  # SciPy is imported where it is used: most stages never need it

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
        from scipy.stats import rankdata  # 0.4 s to import: a stage that only trains never pays it

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
    from scipy.stats import rankdata

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
    from scipy.special import logsumexp

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


# --------------------------------------------------------------------------- every score of one sweep
# The fast sweep computes fc1's pre-activation as "everything minus the removed contributions", so a
# pruned model whose outputs are exactly tied across samples (say, only dead channels left) shows
# ties broken by float64 rounding noise (~1e-14). Rankings and thresholds must not read that noise:
# values closer than this, relative to the row's scale, count as equal.
TIE_TOLERANCE = 1e-9


def snap_ties(values: np.ndarray, tolerance: float = TIE_TOLERANCE) -> np.ndarray:
    """`values` (...×n) with every run of sorted neighbours closer than tolerance·max(1, |max|)
    set to the run's smallest value, row by row: ties that rounding noise split are tied again."""
    order = np.argsort(values, axis=-1, kind="stable")
    ranked = np.take_along_axis(values, order, axis=-1)
    scale = np.maximum(1.0, np.abs(ranked).max(axis=-1, keepdims=True)) if ranked.size else 1.0
    new_run = np.diff(ranked, axis=-1, prepend=-np.inf) > tolerance * scale
    starts = np.where(new_run, np.arange(ranked.shape[-1]), 0)
    firsts = np.maximum.accumulate(starts, axis=-1)
    snapped = np.empty_like(values)
    np.put_along_axis(snapped, order, np.take_along_axis(ranked, firsts, axis=-1), axis=-1)
    return snapped


@dataclass(frozen=True)
class Decision:
    """A decision re-fitted on calibration data, per leading row. Two classes: `threshold` on the
    logit difference z1 − z0 (one decision serves both recalibrated scores). C classes: `bias`
    added to the logits for accuracy (cross-entropy fit), `balanced_bias` for balanced accuracy
    (the same minus the log class prior)."""

    threshold: np.ndarray | None = None  # (...)
    bias: np.ndarray | None = None  # (..., C)
    balanced_bias: np.ndarray | None = None  # (..., C)


def fit_decision(cal_logits: np.ndarray, cal_labels: np.ndarray, n_classes: int) -> Decision:
    """The recalibrated decision of every row of logits (...×n×C) on calibration data. Used by
    the sweep, by fine-tuning and by the export alike, so the shipped model decides exactly as
    the study scored it."""
    if n_classes == 2:
        return Decision(threshold=fit_threshold(snap_ties(cal_logits[..., 1] - cal_logits[..., 0]), cal_labels))
    bias = fit_bias(cal_logits, cal_labels, n_classes)
    return Decision(bias=bias, balanced_bias=prior_adjusted(bias, cal_labels, n_classes))


def recalibrated_predictions(test_logits: np.ndarray, decision: Decision) -> dict[str, np.ndarray]:
    """Test-split predictions (...×n) under a re-fitted decision: {"recal_acc": ..., "recal_bacc": ...}.
    No test label is an argument: the decision cannot depend on one."""
    if decision.threshold is not None:
        predicted = predict_with_threshold(snap_ties(test_logits[..., 1] - test_logits[..., 0]), decision.threshold)
        return {"recal_acc": predicted, "recal_bacc": predicted}
    assert decision.bias is not None and decision.balanced_bias is not None
    return {
        "recal_acc": (test_logits + decision.bias[..., None, :]).argmax(-1),
        "recal_bacc": (test_logits + decision.balanced_bias[..., None, :]).argmax(-1),
    }


def score_logits(
    test_logits: np.ndarray, test_labels: np.ndarray, cal_logits: np.ndarray, cal_labels: np.ndarray, n_classes: int
) -> dict[str, np.ndarray]:
    """Every score of SCORES, per leading row, from logits (...×n×C) on test and calibration data."""
    default = confusion_counts(test_labels, test_logits.argmax(-1), n_classes)
    out = {"acc": accuracy(default), "bacc": balanced_accuracy(default)}
    if n_classes == 2:
        out["roc_auc"] = roc_auc(snap_ties(test_logits[..., 1] - test_logits[..., 0]), test_labels, 2)
    else:
        probabilities = np.moveaxis(snap_ties(np.moveaxis(softmax(test_logits), -1, -2)), -2, -1)
        out["roc_auc"] = roc_auc(probabilities, test_labels, n_classes)
    recal = recalibrated_predictions(test_logits, fit_decision(cal_logits, cal_labels, n_classes))
    out["recal_acc"] = accuracy(confusion_counts(test_labels, recal["recal_acc"], n_classes))
    out["recal_bacc"] = balanced_accuracy(confusion_counts(test_labels, recal["recal_bacc"], n_classes))
    return {name: out[name] for name in SCORES}
