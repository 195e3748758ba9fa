"""From an image pool to train / val / test splits, for the two task kinds.

* `pairs`: the lab's task. The pool's images are first split into test / val / train
  images, then each split's images are paired within that split, so no image is in two
  splits. Each sample stacks two images as a 2·C-channel input; label 1 = same class.
* `classification`: plain labels. Sources with an official test split use it.

Pure NumPy, deterministic under the generator it is given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from prunelab.data.records import DatasetInfo, Split
from prunelab.data.spec import InputSpec
from prunelab.errors import UserError
from prunelab.prepare.imagefolder import stratified_split, train_statistics
from prunelab.prepare.sources import SOURCES, Pool

if TYPE_CHECKING:
    from prunelab.params.schema import DataParams


def split_pool_indices(
    n_images: int,
    official_test: np.ndarray | None,
    test_fraction: float,
    val_fraction: float,
    rng: np.random.Generator,
    stratify: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Disjoint test / val / train image indices. An official test split wins over test_fraction;
    with `stratify` (the labels) and no official split, each class is split alike."""
    if official_test is None and stratify is not None:
        return stratified_split(stratify, test_fraction, val_fraction, rng)
    if official_test is not None:
        test = np.flatnonzero(official_test)
        rest = rng.permutation(np.flatnonzero(~official_test))
    else:
        order = rng.permutation(n_images)
        n_test = round(n_images * test_fraction)
        test, rest = order[:n_test], order[n_test:]
    n_val = round(len(rest) * val_fraction)
    return {"test": np.sort(test), "val": np.sort(rest[:n_val]), "train": np.sort(rest[n_val:])}


def pair_counts(
    n_pairs: int, test_fraction: float, val_fraction: float, same_fraction: float
) -> dict[str, tuple[int, int]]:
    """(same, different) pair counts per split."""
    n_test = round(n_pairs * test_fraction)
    n_val = round((n_pairs - n_test) * val_fraction)
    totals = {"test": n_test, "val": n_val, "train": n_pairs - n_test - n_val}
    return {name: (round(n * same_fraction), n - round(n * same_fraction)) for name, n in totals.items()}


def pair_capacity(labels: np.ndarray) -> tuple[int, int]:
    """How many distinct unordered (same, different) pairs these images allow."""
    counts = np.bincount(labels).astype(np.int64)
    same = int((counts * (counts - 1) // 2).sum())
    total = len(labels) * (len(labels) - 1) // 2
    return same, total - same


def _draw_unique_pairs(
    candidates: Callable[[int], tuple[np.ndarray, np.ndarray]], n: int, n_images: int, rng: np.random.Generator
) -> np.ndarray:
    """Rejection-sample n distinct unordered pairs from `candidates`, deterministically."""
    chosen: dict[int, tuple[int, int]] = {}
    while len(chosen) < n:
        a, b = candidates(2 * (n - len(chosen)) + 16)
        for i, j in zip(a.tolist(), b.tolist(), strict=True):
            if i == j:
                continue
            lo, hi = (i, j) if i < j else (j, i)
            key = lo * n_images + hi
            if key not in chosen:
                chosen[key] = (i, j)
                if len(chosen) == n:
                    break
    return np.array(list(chosen.values()), dtype=np.int64).reshape(-1, 2)


def sample_pairs(
    labels: np.ndarray, n_same: int, n_diff: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct unordered pairs of local indices into `labels`, and their labels (1 = same).

    Uniform over the distinct same-class pairs and over the distinct different-class pairs.
    Falls back to enumerating every pair when the request is a large share of the capacity,
    where rejection sampling would slow down.
    """
    n = len(labels)
    cap_same, cap_diff = pair_capacity(labels)
    assert n_same <= cap_same and n_diff <= cap_diff, "capacity is checked by the caller"
    if n_same + n_diff == 0:
        return np.zeros((0, 2), np.int64), np.zeros(0, np.int64)
    if 2 * (n_same + n_diff) > cap_same + cap_diff or 2 * n_same > cap_same:
        i, j = np.triu_indices(n, k=1)
        same_mask = labels[i] == labels[j]
        same_all = np.stack([i[same_mask], j[same_mask]], 1)
        diff_all = np.stack([i[~same_mask], j[~same_mask]], 1)
        same = same_all[rng.choice(len(same_all), n_same, replace=False)]
        diff = diff_all[rng.choice(len(diff_all), n_diff, replace=False)]
    else:
        by_class = [np.flatnonzero(labels == c) for c in range(int(labels.max()) + 1)]
        class_weights = np.array([len(m) * (len(m) - 1) / 2 for m in by_class], dtype=float)
        class_weights /= class_weights.sum()

        def same_candidates(size: int) -> tuple[np.ndarray, np.ndarray]:
            classes = rng.choice(len(by_class), size, p=class_weights)
            a = np.array([rng.choice(by_class[c]) for c in classes], dtype=np.int64)
            b = np.array([rng.choice(by_class[c]) for c in classes], dtype=np.int64)
            return a, b

        def diff_candidates(size: int) -> tuple[np.ndarray, np.ndarray]:
            a, b = rng.integers(0, n, size), rng.integers(0, n, size)
            keep = labels[a] != labels[b]
            return a[keep], b[keep]

        same = _draw_unique_pairs(same_candidates, n_same, n, rng)
        diff = _draw_unique_pairs(diff_candidates, n_diff, n, rng)
    pairs = np.concatenate([same, diff])
    pair_labels = np.concatenate([np.ones(len(same), np.int64), np.zeros(len(diff), np.int64)])
    # Shuffle the samples, and which image goes in the first channel group.
    order = rng.permutation(len(pairs))
    pairs, pair_labels = pairs[order], pair_labels[order]
    swap = rng.random(len(pairs)) < 0.5
    pairs[swap] = pairs[swap][:, ::-1]
    return pairs, pair_labels


def make_pair_splits(pool: Pool, data: DataParams, rng: np.random.Generator) -> dict[str, Split]:
    # Pairs ignore an official split: the lab splits its own pool 1:9.
    stratify = pool.labels if pool.stratify else None
    image_splits = split_pool_indices(len(pool.labels), None, data.test_fraction, data.val_fraction, rng, stratify)
    counts = pair_counts(data.n_pairs, data.test_fraction, data.val_fraction, data.same_fraction)
    for name, (n_same, n_diff) in counts.items():
        cap_same, cap_diff = pair_capacity(pool.labels[image_splits[name]])
        if n_same > cap_same or n_diff > cap_diff:
            largest = _largest_n_pairs(pool, data, image_splits)
            raise UserError(
                f"params.yaml: data.n_pairs={data.n_pairs} is more than the {name} images of "
                f"data.source={data.source} can pair without repeats; allowed: at most {largest}"
            )
    splits = {}
    for name, (n_same, n_diff) in counts.items():
        members = image_splits[name]
        local, labels = sample_pairs(pool.labels[members], n_same, n_diff, rng)
        ids = members[local] if len(local) else local
        images = pool.images[ids.reshape(-1)].reshape(len(ids), 2 * pool.images.shape[1], *pool.images.shape[2:])
        splits[name] = Split(images, labels, ids)
    return splits


def _largest_n_pairs(pool: Pool, data: DataParams, image_splits: dict[str, np.ndarray]) -> int:
    """The largest data.n_pairs that every split can serve (found by bisection)."""

    def fits(n_pairs: int) -> bool:
        counts = pair_counts(n_pairs, data.test_fraction, data.val_fraction, data.same_fraction)
        return all(
            s <= cap[0] and d <= cap[1]
            for name, (s, d) in counts.items()
            for cap in [pair_capacity(pool.labels[image_splits[name]])]
        )

    low, high = 0, len(pool.labels) ** 2
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if fits(mid) else (low, mid - 1)
    return low


def make_classification_splits(pool: Pool, data: DataParams, rng: np.random.Generator) -> dict[str, Split]:
    stratify = pool.labels if pool.stratify else None
    image_splits = split_pool_indices(
        len(pool.labels), pool.official_test, data.test_fraction, data.val_fraction, rng, stratify
    )
    return {
        name: Split(pool.images[idx], pool.labels[idx], idx[:, None].astype(np.int64))
        for name, idx in image_splits.items()
    }


# Each takes params.yaml's `data` section (`params.data`): it reads nothing else.
TASKS: dict[str, Callable[[Pool, DataParams, np.random.Generator], dict[str, Split]]] = {
    "pairs": make_pair_splits,
    "classification": make_classification_splits,
}


def dataset_info(data: DataParams, pool: Pool, train: Split) -> DatasetInfo:
    """What the prepared data is (`data` is `params.data`): its source, task, input spec and normalisation
    (the source's constants, or, for a source without them, statistics of the `train` split's samples)."""
    source = SOURCES[data.source]
    pairs = data.task == "pairs"
    copies = 2 if pairs else 1
    channels = pool.images.shape[1] * copies
    # The source fixes the class count: a subset of the files that lacks the top class must not
    # shrink the model's output layer. A folder source's count is its class folders'.
    n_classes = 2 if pairs else (len(pool.classes) if pool.classes else source.n_classes)
    spec = InputSpec(channels=channels, size=pool.images.shape[-1], n_classes=n_classes)
    if source.mean:
        return DatasetInfo(data.source, data.task, spec, source.mean * copies, source.std * copies)
    mean, std = train_statistics(train.images)
    return DatasetInfo(data.source, data.task, spec, mean, std, classes=pool.classes, listing=pool.listing)


def split_summary(labels: np.ndarray, task: str) -> dict:
    summary: dict = {"count": len(labels)}
    if task == "pairs":
        summary["same_fraction"] = float(labels.mean()) if len(labels) else 0.0
    else:
        summary["classes"] = len(np.unique(labels))
    return summary


def check_not_empty(splits: dict, data: DataParams) -> None:
    """Every split a later stage reads must hold samples (train crashed on an empty test split).
    Checked before anything is written; val may be empty only when data.val_fraction is 0."""
    for name, split in splits.items():
        if len(split.labels) == 0 and (name != "val" or data.val_fraction > 0):
            size = f"data.n_pairs={data.n_pairs}" if data.task == "pairs" else f"data.source={data.source}"
            raise UserError(
                f"params.yaml: {size} with data.test_fraction={data.test_fraction} and "
                f"data.val_fraction={data.val_fraction} leaves the {name} split empty; "
                "allowed: values that give every split at least one sample"
            )
