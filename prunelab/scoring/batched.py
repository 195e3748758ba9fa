"""Every score of SCORES for a whole sweep at once, in torch, on the device the logits live on.

`prunelab.scoring.scores` is the reference: the same five scores in NumPy/SciPy, kept simple. Here they are
computed for logits (...×n×C) with any leading batch dims (orders × K) without leaving the device: ties are
snapped, ranks summed and thresholds fitted from one sort per row, and the multi-class bias is fitted by
batched Newton steps. Only per-row totals come back to the host (R×K×C×C confusion counts, R×K×C rank
sums), where the reference's own formulas turn them into percentages. So acc and bacc are the reference's
bit for bit, and so is the two-class AUC (rank sums of half-integers are exact); the two-class threshold is
too, as every step keeps the reference's arithmetic and dtypes (the sweep's calibration logits are float32,
and so are their differences when snapped). The multi-class AUC can differ only where exp rounds the
softmax differently right at a tie's tolerance, the bias only by how far each solver converged.
tests/test_batched_scores.py checks every score against the reference.
"""

from __future__ import annotations

import numpy as np
import torch

from prunelab.scoring.scores import (
    ABSENT_LOG_PROB,
    SCORES,
    TIE_TOLERANCE,
    _check_labels,
    accuracy,
    balanced_accuracy,
    confusion,
)

# Newton's method on the bias: a row stops once its largest step is below NEWTON_TOL (steps shrink
# quadratically, so that last step lands far closer than that to the optimum), or after NEWTON_ITERATIONS.
NEWTON_TOL = 1e-12
NEWTON_ITERATIONS = 100
# A step moves each class's bias by at most this much: far from the optimum, or where the curvature
# underflows, the quadratic model says little, and the line search then needs fewer halvings.
MAX_STEP = 8.0
# Armijo's sufficient decrease, and the halvings a line search may try before the row counts as converged
# (no representable step decreases the loss any more).
ARMIJO = 1e-4
HALVINGS = 40
# The stored probabilities are recomputed from the logits once the bias has moved this far (per class) from
# where they were computed (see `_newton_bias`).
REBASE = 4.0


# --------------------------------------------------------------------------- ties and ranks
def sort_rows(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sorted values, order) along the last axis. Not stable: everything here reads whole runs of equal
    values, never the order within one."""
    return torch.sort(values, dim=-1)


def _sort_in_place(keys: torch.Tensor) -> None:
    """Sort contiguous int64 keys along the last axis, in place. On the CPU NumPy's vectorised sort does it,
    several times faster than torch's there; integers sort to one result whatever the algorithm."""
    if keys.device.type == "cpu":
        keys.numpy().sort(axis=-1)
    else:
        keys.copy_(torch.sort(keys, dim=-1).values)


def joined(ranked: torch.Tensor, tolerance: float = TIE_TOLERANCE) -> torch.Tensor:
    """For sorted rows (...×n): whether each pair of neighbours (...×n−1) lies in one of `snap_ties`' runs
    (closer than tolerance·max(1, |max|)). As in `snap_ties`, a NaN makes the tolerance NaN and its whole
    row one run.

    The arithmetic is `snap_ties`', dtypes included: the gaps in float64 (NumPy's `diff` with a float64
    `prepend`), the threshold in the values' dtype. Distinct runs have strictly increasing snapped
    values, so the runs are exactly the ties of the snapped values.
    """
    # The largest |value| of a sorted row is at one of its ends (a NaN at either propagates, as in max).
    scale = torch.maximum(ranked[..., :1].abs(), ranked[..., -1:].abs()).clamp(min=1.0)
    threshold = (tolerance * scale).to(torch.float64)
    return ~(torch.diff(ranked.to(torch.float64), dim=-1) > threshold)


def run_starts(joined_pairs: torch.Tensor) -> torch.Tensor:
    """For sorted rows with `joined` neighbours: where the run of each position starts (int64, ...×n)."""
    new_run = torch.cat([torch.ones_like(joined_pairs[..., :1]), ~joined_pairs], dim=-1)
    positions = torch.arange(new_run.shape[-1], device=new_run.device)
    return torch.where(new_run, positions, 0).cummax(dim=-1).values


def snap_ties(values: torch.Tensor, tolerance: float = TIE_TOLERANCE) -> torch.Tensor:
    """Torch twin of `scores.snap_ties`: each value set to the smallest of its run, in the original order."""
    if values.shape[-1] == 0:
        return values.clone()
    ranked, order = sort_rows(values)
    snapped = ranked.gather(-1, run_starts(joined(ranked, tolerance)))
    return torch.empty_like(values).scatter_(-1, order, snapped)


def _tie_corrections(joined_pairs: torch.Tensor, members: torch.Tensor) -> torch.Tensor:
    """Per row (int64, ×2): Σ over runs of two or more of P·(a + b + 1) − 2·Σ_{members i in run} (i + 1),
    the run being [a, b) (0-based) and P its members: what average ranks add to plain positions.

    Works on the tied neighbours alone (few, as a rule), not on every position. Rows are flattened, so a
    position is row·n + i; a run is a chain of joined pairs whose left positions follow one another.
    """
    rows, n = members.shape
    corrections = torch.zeros(rows, dtype=torch.int64, device=members.device)
    left = joined_pairs.nonzero()  # (pairs, 2): row and left position of each joined pair, in order
    if len(left) == 0:
        return corrections
    pair_at = left[:, 0] * n + left[:, 1]
    chained = pair_at[1:] == pair_at[:-1] + 1  # the next pair continues the same run (never across rows)
    true = torch.ones(1, dtype=torch.bool, device=members.device)
    starts, ends = torch.cat([true, ~chained]), torch.cat([~chained, true])
    run_of_pair = starts.cumsum(0) - 1
    runs = int(starts.sum())
    # Each run's positions: the left ends of its pairs, then the right end of its last pair.
    in_run = torch.cat([pair_at, pair_at[ends] + 1])
    run_of = torch.cat([run_of_pair, torch.arange(runs, device=members.device)])
    flat = members.reshape(-1)[in_run]
    count = torch.zeros(runs, dtype=torch.int64, device=members.device).index_add_(0, run_of, flat)
    ranks = (in_run % n + 1) * flat
    member_ranks = torch.zeros_like(count).index_add_(0, run_of, ranks)
    first, last = left[starts, 1], left[ends, 1] + 1  # a and b − 1, within the row
    correction = count * (first + last + 2) - 2 * member_ranks
    return corrections.index_add_(0, left[starts, 0], correction)


def rank_sums(ranked: torch.Tensor, members: torch.Tensor) -> torch.Tensor:
    """Σ of the 1-based ranks of the positions of sorted rows (...×n) where `members` (int64 0/1, in the
    same sorted order) is 1, float64 (...). Values in one of `snap_ties`' runs share the mean of their
    ranks, as `scipy.stats.rankdata` gives them on snapped values (a row with a NaN is one run, as
    `snap_ties` leaves it; a row of NaNs sums to NaN, as `rankdata` gives it). Exact: sums of half-integers.

    The members' plain positions, plus a correction from the runs of ties alone.
    """
    n = ranked.shape[-1]
    batch = ranked.shape[:-1]
    if n == 0:
        return ranked.new_zeros(batch, dtype=torch.float64)
    positions = torch.arange(1, n + 1, dtype=torch.float64, device=ranked.device)
    sums = members.to(torch.float64) @ positions
    corrections = _tie_corrections(joined(ranked).reshape(-1, n - 1), members.reshape(-1, n)).view(batch)
    sums += corrections.to(torch.float64) / 2
    only_nan = ranked[..., 0].isnan() & ranked[..., -1].isnan()  # NaNs sort to one end
    return torch.where(only_nan, torch.nan, sums)


def one_vs_rest_rank_sums(probabilities: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Σ rank of class c's examples when column c of `probabilities` (...×n×C, float64) is ranked across the
    examples (snapped as `snap_ties` does), for every class: (...×C), float64.

    Probabilities lie in [0, 1], so their float64 bit patterns sort as the values do and leave the top bit
    free: keys 2·bits + (label == c) sort by value with the membership bit riding along, so no index and no
    gather are needed (a NaN's key sorts first; its row is one run all the same).
    """
    n, n_classes = probabilities.shape[-2:]
    classes = torch.arange(n_classes, device=labels.device)
    members = (labels == classes[:, None]).long()  # (C, n)
    keys = torch.empty(*probabilities.shape[:-2], n_classes, n, dtype=torch.int64, device=probabilities.device)
    torch.add(members, probabilities.view(torch.int64).transpose(-1, -2), alpha=2, out=keys)
    _sort_in_place(keys)
    return rank_sums((keys >> 1).view(torch.float64), keys & 1)


def auc_from_rank_sums(sums: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """ROC AUC in percent from rank sums, by `scores.roc_auc`'s own arithmetic. Two classes: `sums` (...)
    holds class 1's rank sum. C classes: (...×C), class c's rank sum in its own column, and the macro mean
    leaves out the classes absent from `labels`."""
    sums = np.asarray(sums, dtype=np.float64)
    y = _check_labels(labels, len(labels), n_classes)
    n = y.shape[0]
    if n_classes == 2:
        n_pos = int(y.sum())
        n_neg = n - n_pos
        if n_pos == 0 or n_neg == 0:
            return np.full(sums.shape, np.nan)
        return 100.0 * (sums - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)
    n_pos = np.bincount(y, minlength=n_classes).astype(np.float64)
    n_neg = n - n_pos
    defined = (n_pos > 0) & (n_neg > 0)
    per_class = (sums - n_pos * (n_pos + 1) / 2.0) / np.where(defined, n_pos * n_neg, 1.0)
    if not defined.any():
        return np.full(sums.shape[:-1], np.nan)
    return 100.0 * per_class[..., defined].mean(axis=-1)


def softmax(logits: torch.Tensor) -> torch.Tensor:
    """float64 probabilities over the last axis (torch's fused kernel: exp(z − max) / Σ, like
    `scores.softmax`, up to the rounding of exp and of the sum)."""
    return torch.softmax(logits.to(torch.float64), dim=-1)


def roc_auc(test_logits: torch.Tensor, labels: torch.Tensor, n_classes: int) -> np.ndarray:
    """ROC AUC (percent, per row) as `scores.score_logits` computes it from logits (...×n×C): two classes
    on the snapped logit difference, C classes macro one-vs-rest on the softmax snapped over the examples."""
    if n_classes == 2:
        ranked, order = sort_rows(test_logits[..., 1] - test_logits[..., 0])
        sums = rank_sums(ranked, labels[order])
    else:
        sums = one_vs_rest_rank_sums(softmax(test_logits), labels)
    return auc_from_rank_sums(sums.cpu().numpy(), labels.cpu().numpy(), n_classes)


# --------------------------------------------------------------------------- two classes: the threshold
def threshold_of_sorted(ds: torch.Tensor, positives: torch.Tensor, n_pos: int) -> torch.Tensor:
    """`scores.fit_threshold` of snapped scores already sorted per row: ds (...×n, float64, finite),
    `positives` (int64 0/1) their labels, n_pos per row, both classes present. Labels may come in any
    order within a run of equal scores: only cuts between distinct scores are realisable, and their
    gains count whole runs."""
    n = ds.shape[-1]
    n_neg = n - n_pos
    pos_below = torch.cat([torch.zeros_like(positives[..., :1]), positives.cumsum(dim=-1)], dim=-1)
    neg_below = torch.arange(n + 1, device=ds.device) - pos_below
    gain = (n_pos - pos_below) * n_neg + neg_below * n_pos  # balanced accuracy × 2·n_pos·n_neg: exact
    distinct = ds[..., 1:] > ds[..., :-1]
    true = torch.ones_like(distinct[..., :1])
    gain = torch.where(torch.cat([true, distinct, true], dim=-1), gain, -1)

    lo, hi = ds[..., :-1], ds[..., 1:]
    mid = lo / 2 + hi / 2  # halves first: no overflow near the float64 limits
    mid = torch.where((mid > lo) & (mid < hi), mid, lo)
    first, last = ds[..., :1], ds[..., -1:]
    below = torch.where(first > 0, 0.0, first - first.abs().clamp(min=1.0))
    above = torch.where(last < 0, 0.0, last + last.abs().clamp(min=1.0))
    candidates = torch.cat([below, mid, above], dim=-1)

    best = gain == gain.amax(dim=-1, keepdim=True)
    distance = torch.where(best, candidates.abs(), torch.inf)
    best &= distance == distance.amin(dim=-1, keepdim=True)
    return torch.where(best, candidates, torch.inf).amin(dim=-1)


def fit_threshold(diffs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Torch twin of `scores.fit_threshold(scores.snap_ties(diffs), labels)`: the per-row threshold (...),
    float64; 0 everywhere if a class is absent from `labels`."""
    n_pos = int(labels.sum())
    if n_pos == 0 or n_pos == labels.shape[0]:
        return torch.zeros(diffs.shape[:-1], dtype=torch.float64, device=diffs.device)
    ranked, order = sort_rows(diffs)
    ds = ranked.gather(-1, run_starts(joined(ranked))).to(torch.float64)
    if not bool(ds.isfinite().all()):
        raise ValueError("diffs must be finite")
    return threshold_of_sorted(ds, labels[order], n_pos)


# --------------------------------------------------------------------------- C classes: the bias
def _softmax_and_log_norm(shifted: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax over the last axis and logsumexp (one axis less), from one exp."""
    top = shifted.amax(dim=-1, keepdim=True)
    e = (shifted - top).exp_()
    total = e.sum(dim=-1, keepdim=True)
    return e.div_(total), (total.log_() + top)[..., 0]


def _reweighted(base_p: torch.Tensor, delta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For probabilities P = softmax(z + b₀) (r×n×m) and a bias b = b₀ + δ: (w, S, t) with w = e^(δ − t),
    t = max δ and S_i = Σ_c P_ic w_c, so that softmax(z + b) = P w / S and logsumexp(z + b) =
    logsumexp(z + b₀) + log S + t."""
    top = delta.amax(dim=-1, keepdim=True)
    w = (delta - top).exp()
    return w, (base_p @ w[..., None])[..., 0], top[..., 0]


def _newton_bias(logits: torch.Tensor, freq: torch.Tensor) -> torch.Tensor:
    """The bias (B×m) minimising the mean cross-entropy of softmax(logits + b), logits B×n×m, every class
    present (freq > 0). The last class's bias is held at 0 (softmax is shift-invariant), which leaves a
    strictly convex problem in the other m − 1.

    Per row: the loss is mean_n logsumexp(z + b) − freq·b (the cross-entropy up to a constant), its
    gradient mean p − freq, its Hessian mean(diag p − p pᵀ). The Newton step is capped at MAX_STEP per
    class, then halved until Armijo's condition holds, with a slack of a few ulps (near the optimum the
    loss changes below float64's resolution); a step below NEWTON_TOL is taken as it is, and ends the
    row. Where the Hessian is not numerically positive definite (probabilities that round to 0 or 1),
    the step is `scores.fit_bias`' fixed-point one (log freq − log mean p, in log space), taken whole:
    it always descends. Rows stop on their own, so a row's result does not depend on its batch mates.

    exp runs over the n×m logits only now and then: the probabilities at a base bias b₀ are stored, and
    those at b follow from them by `_reweighted` (matrix products). The base moves to b, and the
    probabilities are recomputed, once b − b₀ exceeds REBASE for some class, so e^(b − b₀) stays far
    inside float64's range.
    """
    rows, n, m = logits.shape
    bias = logits.new_zeros(rows, m)
    if m == 1:
        return bias
    log_freq = freq.log()
    base_b = bias.clone()
    base_p, base_log_norm = _softmax_and_log_norm(logits)
    active = torch.arange(rows, device=logits.device)
    for _ in range(NEWTON_ITERATIONS):
        tensors = (logits, bias, base_b, base_p, base_log_norm)
        z, b, b0, p0, log_norm0 = tensors if len(active) == rows else (x[active] for x in tensors)
        w, total, top = _reweighted(p0, b - b0)
        scaled = p0 / total[..., None]  # p / w
        mean_p = w * scaled.mean(dim=-2)
        gradient = mean_p - freq
        hessian = torch.diag_embed(mean_p) - w[:, :, None] * (scaled.transpose(-1, -2) @ scaled / n) * w[:, None, :]
        factor, info = torch.linalg.cholesky_ex(hessian[:, :-1, :-1])
        step = torch.cholesky_solve(-gradient[:, :-1, None], factor)[..., 0]
        usable = (info == 0) & step.isfinite().all(dim=-1) & ((step * gradient[:, :-1]).sum(dim=-1) < 0)
        step = step * (MAX_STEP / step.abs().amax(dim=-1, keepdim=True).clamp(min=MAX_STEP))
        step = torch.cat([step, torch.zeros_like(step[:, :1])], dim=-1)
        converged = usable & (step.abs().amax(dim=-1) < NEWTON_TOL)
        new_b = torch.where(converged[:, None], b + step, b)
        if not bool(usable.all()):
            # The fixed-point step, whole: it always descends, and may have far to go (a class whose
            # probabilities underflow everywhere); the base moves with it (below), so no reweighting spans it.
            log_norm = log_norm0 + total.log() + top[:, None]
            log_p = z + (b[:, None, :] - log_norm[..., None])
            fixed_point = log_freq - (torch.logsumexp(log_p, dim=-2) - np.log(n))
            fixed_point = fixed_point - fixed_point[:, -1:]  # the same update, the last bias held
            new_b = torch.where(usable[:, None], new_b, b + fixed_point)
            converged |= ~usable & (fixed_point.abs().amax(dim=-1) < NEWTON_TOL)

        # Newton steps: the line search. The loss less mean_n logsumexp(z + b₀), the same for every trial.
        loss = total.log().mean(dim=-1) + top - (freq * b).sum(dim=-1)
        slope = (gradient * step).sum(dim=-1)
        slack = 4 * torch.finfo(torch.float64).eps * (1 + (loss + log_norm0.mean(dim=-1)).abs())
        scale = torch.ones_like(loss)
        accepted = converged | ~usable
        for _ in range(HALVINGS):
            if bool(accepted.all()):
                break
            trial_b = b + scale[:, None] * step
            _, trial_total, trial_top = _reweighted(p0, trial_b - b0)
            trial = trial_total.log().mean(dim=-1) + trial_top - (freq * trial_b).sum(dim=-1)
            now = ~accepted & (trial <= loss + ARMIJO * scale * slope + slack)
            new_b = torch.where(now[:, None], trial_b, new_b)
            accepted |= now
            scale = torch.where(accepted, scale, scale / 2)
        bias[active] = new_b
        # A row that found no decrease is at its optimum up to rounding: it keeps its bias and stops.
        active = active[accepted & ~converged]
        far = active[(bias[active] - base_b[active]).abs().amax(dim=-1) > REBASE]
        if len(far):
            base_b[far] = bias[far]
            base_p[far], base_log_norm[far] = _softmax_and_log_norm(logits[far] + bias[far][:, None, :])
        if len(active) == 0:
            break
    return bias


def fit_bias(logits: torch.Tensor, labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Torch twin of `scores.fit_bias` (float64, (...×C)), by Newton's method instead of the fixed point.

    The same normalisation (mean zero over the classes present in `labels`) and the same rule for a class
    absent from them (fitted out, then the finite bias that keeps its probability at most e^ABSENT_LOG_PROB
    on every calibration example).
    """
    z = logits.to(torch.float64)
    if z.dim() < 2 or z.shape[-1] != n_classes:
        raise ValueError(f"logits must have shape (..., n, {n_classes}), got {tuple(z.shape)}")
    batch, n = z.shape[:-2], z.shape[-2]
    if n == 0:
        return z.new_zeros(*batch, n_classes)
    counts = torch.bincount(labels, minlength=n_classes)
    present = counts > 0
    zp = z[..., present]
    freq = counts[present].to(torch.float64) / n
    bias = _newton_bias(zp.reshape(-1, n, zp.shape[-1]), freq).reshape(*batch, -1)
    bias = bias - bias.mean(dim=-1, keepdim=True)

    full = z.new_empty(*batch, n_classes)
    full[..., present] = bias
    if not bool(present.all()):
        log_norm = torch.logsumexp(zp + bias[..., None, :], dim=-1, keepdim=True)
        full[..., ~present] = (log_norm - z[..., ~present]).amin(dim=-2) + ABSENT_LOG_PROB
    return full


def prior_adjusted(bias: torch.Tensor, labels: np.ndarray, n_classes: int) -> torch.Tensor:
    """Torch twin of `scores.prior_adjusted`: bias − log freq of `labels` (absent classes unchanged).
    The log prior is computed by NumPy as the reference computes it; only the subtraction runs here."""
    y = _check_labels(labels, len(labels), n_classes)
    counts = np.bincount(y, minlength=n_classes)
    present = counts > 0
    shift = np.zeros(n_classes)
    shift[present] = np.log(counts[present] / y.size)
    return bias - torch.as_tensor(shift, dtype=bias.dtype, device=bias.device)


# --------------------------------------------------------------------------- every score of one sweep
def _labels(labels: torch.Tensor | np.ndarray, n: int, n_classes: int, device: torch.device) -> torch.Tensor:
    """Labels checked as the reference checks them, as an int64 tensor on `device`."""
    host = labels.cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    return torch.as_tensor(_check_labels(host, n, n_classes), device=device)


def _scores_of(conf: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(accuracy, balanced accuracy) of confusion counts, by the reference's own formulas on the host."""
    counts = conf.cpu().numpy()
    return accuracy(counts), balanced_accuracy(counts)


def score_logits(
    test_logits: torch.Tensor,
    test_labels: torch.Tensor | np.ndarray,
    cal_logits: torch.Tensor,
    cal_labels: torch.Tensor | np.ndarray,
    n_classes: int,
) -> dict[str, np.ndarray]:
    """Every score of SCORES, per leading row, from logits (...×n×C) on test and calibration data: what
    `scores.score_logits` returns (float64 NumPy arrays (...)), computed where the logits are."""
    device = test_logits.device
    y_test = _labels(test_labels, test_logits.shape[-2], n_classes, device)
    y_cal = _labels(cal_labels, cal_logits.shape[-2], n_classes, device)
    out: dict[str, np.ndarray] = {}
    out["acc"], out["bacc"] = _scores_of(confusion(y_test, test_logits.argmax(-1), n_classes))

    if n_classes == 2:
        # One sort of the test diffs serves the AUC and the recalibrated predictions: confusion counts
        # do not depend on the order of the examples, so the predictions are made and counted sorted.
        ranked, order = sort_rows(test_logits[..., 1] - test_logits[..., 0])
        positives = y_test[order]
        out["roc_auc"] = auc_from_rank_sums(rank_sums(ranked, positives).cpu().numpy(), y_test.cpu().numpy(), 2)
        threshold = fit_threshold(cal_logits[..., 1] - cal_logits[..., 0], y_cal)
        snapped = ranked.gather(-1, run_starts(joined(ranked))).to(torch.float64)
        predicted = (snapped > threshold[..., None]).long()
        out["recal_acc"], out["recal_bacc"] = _scores_of(confusion(positives, predicted, 2))
    else:
        out["roc_auc"] = roc_auc(test_logits, y_test, n_classes)
        bias = fit_bias(cal_logits, y_cal, n_classes)
        balanced = prior_adjusted(bias, y_cal.cpu().numpy(), n_classes)
        test = test_logits.to(torch.float64)
        out["recal_acc"] = _scores_of(confusion(y_test, (test + bias[..., None, :]).argmax(-1), n_classes))[0]
        out["recal_bacc"] = _scores_of(confusion(y_test, (test + balanced[..., None, :]).argmax(-1), n_classes))[1]
    return {name: out[name] for name in SCORES}
