"""prunelab: activation-ranked channel pruning, as a library.

The public API, importable from here (`from prunelab import build_model, train_model`):

* data: `SOURCES`, `load_pool`, `TASKS` (pairs / classification splits), `dataset_info`,
  `as_tensors`, `load_split`;
* models: `ARCHS`, `InputSpec`, `build_model`, `PrunableNet` (stem → pruned block → head);
* training: `train_model`, `predict`, `resolve_device`, `seed_everything`;
* ranking: `collect_stats`, `CRITERIA`, `RankingContext`, `removal_orders`;
* pruning: `remove_channels`, `block_outputs`, `sweep_confusions`, `evaluate_orders` (every K,
  at the default decision, threshold-free and recalibrated);
* scores: `accuracy`, `balanced_accuracy`, `majority_floor`, `roc_auc`;
* the study: `t_interval`; the deliverable: `load_rebuildable` (a model `dvc repro` exported);
* params: `load_params`, `validate`, `UserError`.

Names are resolved on first use, so `import prunelab` (and `import prunelab.params`) stays
free of torch; the stage scripts import the submodules directly. Everything not listed
in `__all__` is private by convention.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "SOURCES": "prunelab.sources",
    "load_pool": "prunelab.sources",
    "TASKS": "prunelab.pairing",
    "dataset_info": "prunelab.prepared",
    "as_tensors": "prunelab.prepared",
    "load_split": "prunelab.prepared",
    "ARCHS": "prunelab.archs",
    "InputSpec": "prunelab.specs",
    "PrunableNet": "prunelab.models",
    "build_model": "prunelab.models",
    "load_model": "prunelab.models",
    "train_model": "prunelab.training",
    "predict": "prunelab.training",
    "resolve_device": "prunelab.runtime",
    "seed_everything": "prunelab.runtime",
    "collect_stats": "prunelab.activations",
    "ActivationStats": "prunelab.stats",
    "CRITERIA": "prunelab.criteria",
    "RankingContext": "prunelab.criteria",
    "removal_orders": "prunelab.criteria",
    "remove_channels": "prunelab.pruning",
    "block_outputs": "prunelab.pruning",
    "sweep_confusions": "prunelab.pruning",
    "evaluate_orders": "prunelab.evaluation",
    "roc_auc": "prunelab.scores",
    "t_interval": "prunelab.study",
    "load_rebuildable": "prunelab.export",
    "accuracy": "prunelab.metrics",
    "balanced_accuracy": "prunelab.metrics",
    "majority_floor": "prunelab.metrics",
    "load_params": "prunelab.params",
    "validate": "prunelab.params",
    "UserError": "prunelab.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import the submodule that defines a public name on first access (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'prunelab' has no attribute {name!r}")
    value = getattr(import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
