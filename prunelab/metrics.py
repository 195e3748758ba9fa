"""Scores that do not hide class imbalance, computed from confusion matrices.

Everything is in percent. Balanced accuracy is the mean recall over the classes present in
the true labels, so predicting the majority class always scores 100 / n_classes.
NumPy at import (the aggregation and plots use it without torch); `confusion` works on the
tensors it is given.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


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
