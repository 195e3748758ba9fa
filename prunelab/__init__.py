"""prunelab: activation-ranked channel pruning, as a library.

Subpackages by concern, in the order of the method:

* `prunelab.prepare`: data sources (registry) and tasks (pairs / classification): what prepare_data runs;
* `prunelab.data`: the prepared splits on disk and the input spec, which every later stage reads;
* `prunelab.models`: architectures (registry), channel groups (the one model interface, from Torch-Pruning's
  dependency graph), the traced forward pass, training, cost (params, FLOPs);
* `prunelab.pruning`: group views (where a group's channels are made, read and consumed), activation
  statistics, criteria (registry), surgery (removal, masking), the sweep, fine-tuning after pruning;
* `prunelab.network`: the whole network: per-layer sensitivity, FLOPs (or latency) budgets and their allocation
  strategies;
* `prunelab.scoring`: the five scores (acc, bacc, roc_auc, recal_acc, recal_bacc), per-K curves;
* `prunelab.study`: intervals over seeds, aggregation, the report, figures;
* `prunelab.deploy`: the exported model and what it buys, the latency table;
* at the top: `params` (typed, validated params.yaml), `checks` (every file a stage reads, checked on
  read), `paths`, `runtime` (stage entry, seeding, atomic writes, checked reads), `errors`; `_speed`
  holds the private speed tricks the stages switch on.

The public names below are importable from here (`from prunelab import build_model`) and resolved
on first use, so `import prunelab` (and `import prunelab.params`) loads no torch. Everything not in
`__all__` is private by convention.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    # preparing the data, and the prepared data
    "SOURCES": "prunelab.prepare.sources",
    "load_pool": "prunelab.prepare.sources",
    "TASKS": "prunelab.prepare.tasks",
    "dataset_info": "prunelab.prepare.tasks",
    "as_tensors": "prunelab.data.prepared",
    "load_split": "prunelab.data.prepared",
    "load_info": "prunelab.data.prepared",
    "InputSpec": "prunelab.data.spec",
    # models
    "ARCHS": "prunelab.models.archs",
    "build_model": "prunelab.models.nets",
    "ChannelGroup": "prunelab.models.records",
    "find_groups": "prunelab.models.groups",
    "group_named": "prunelab.models.groups",
    "example_input": "prunelab.models.groups",
    "load_model": "prunelab.models.nets",
    "train_model": "prunelab.models.training",
    "predict": "prunelab.models.training",
    # pruning
    "collect_stats": "prunelab.pruning.collect",
    "ActivationStats": "prunelab.pruning.records",
    "CRITERIA": "prunelab.pruning.criteria",
    "RankingContext": "prunelab.pruning.criteria",
    "removal_orders": "prunelab.pruning.criteria",
    "remove_channels": "prunelab.models.groups",
    "GroupView": "prunelab.pruning.views",
    "masked_net": "prunelab.pruning.views",
    "block_outputs": "prunelab.pruning.sweep",
    "sweep_confusions": "prunelab.pruning.sweep",
    "sweep_logits": "prunelab.pruning.sweep",
    # the whole network
    "rank_layer": "prunelab.network.sensitivity",
    "layer_sensitivity": "prunelab.network.sensitivity",
    "flops_model": "prunelab.network.budget",
    "cost_models": "prunelab.models.cost",
    "allocate": "prunelab.network.budget",
    "kept_counts": "prunelab.models.records",
    "LatencyModel": "prunelab.models.records",
    "latency_model": "prunelab.network.latency",
    "open_replicate": "prunelab.models.replicate",
    "STRATEGIES": "prunelab.network.budget",
    # scoring
    "SCORES": "prunelab.scoring.names",
    "accuracy": "prunelab.scoring.scores",
    "balanced_accuracy": "prunelab.scoring.scores",
    "majority_floor": "prunelab.scoring.scores",
    "roc_auc": "prunelab.scoring.scores",
    "fit_decision": "prunelab.scoring.scores",
    "evaluate_orders": "prunelab.scoring.evaluate",
    "every_score": "prunelab.scoring.evaluate",
    # study
    "t_interval": "prunelab.study.intervals",
    # deploy
    "latency_table": "prunelab.deploy.latency",
    "load_rebuildable": "prunelab.deploy.export",
    # params and running
    "load_params": "prunelab.params",
    "validate": "prunelab.params",
    "UserError": "prunelab.errors",
    "resolve_device": "prunelab.runtime",
    "seed_everything": "prunelab.runtime",
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
