"""Where every output of the study lives: one folder per replicate, and the study's results.

dvc.yaml names the same paths (with `${item.seed}` for the replicate); tests check that the
two agree, and that the stages write nothing else.
"""

from __future__ import annotations

from pathlib import Path

DATA = Path("data")
METRICS = Path("metrics")
STUDY = METRICS / "study"
PLOTS = METRICS / "plots"


def seed_data(seed: int) -> Path:
    """Large per-replicate outputs (DVC-cached, git-ignored)."""
    return DATA / "seeds" / str(seed)


def seed_metrics(seed: int) -> Path:
    """Small per-replicate outputs (in git)."""
    return METRICS / "seeds" / str(seed)


def prepared_dir(seed: int) -> Path:
    return seed_data(seed) / "prepared"


def model_path(seed: int) -> Path:
    return seed_data(seed) / "model.pt"


def stats_path(seed: int) -> Path:
    return seed_data(seed) / "activations.npz"


def data_summary_path(seed: int) -> Path:
    return seed_metrics(seed) / "data.json"


def groups_path(seed: int) -> Path:
    """The model's channel groups as traced (name, channels, modules): what torch-free stages read."""
    return seed_metrics(seed) / "groups.json"


def train_curve_path(seed: int) -> Path:
    return seed_metrics(seed) / "train_curve.csv"


def sweep_path(seed: int) -> Path:
    """Per K and criterion: acc, bacc (long format: one row per criterion and K)."""
    return seed_metrics(seed) / "sweep.csv"


def seed_summary_path(seed: int) -> Path:
    """The replicate's scalars (the study's metrics.json aggregates them)."""
    return seed_metrics(seed) / "summary.json"


def ranking_path(seed: int) -> Path:
    """Each ranking criterion's removal order (rank, channel) for this replicate."""
    return seed_metrics(seed) / "ranking.csv"


STUDY_METRICS = METRICS / "metrics.json"
REPORT = METRICS / "report.md"


def finetune_path(seed: int) -> Path:
    """Per fine-tuned (criterion, K): the test scores after fine-tuning."""
    return seed_metrics(seed) / "finetune.csv"


def sensitivity_path(seed: int) -> Path:
    """Per conv layer, criterion and share of its channels removed (that layer alone): every score."""
    return seed_metrics(seed) / "sensitivity.csv"


def layer_rankings_path(seed: int) -> Path:
    """Every conv layer's orders (and scores) by each sensitivity criterion, for the budget stage."""
    return seed_data(seed) / "layer_rankings.npz"


def budget_path(seed: int) -> Path:
    """Per FLOPs budget, strategy and criterion: the channels kept, costs and every score."""
    return seed_metrics(seed) / "budget.csv"


EXPORT = DATA / "export"
EXPORTED_PROGRAM = EXPORT / "model.pt2"  # torch.export: loads without this project
EXPORTED_ONNX = EXPORT / "model.onnx"  # ONNX (dynamo exporter), BatchNorm folded: for ONNX Runtime
EXPORTED_STATE = EXPORT / "model.pt"  # state_dict + what prunelab.export.load_rebuildable needs
EFFICIENCY = METRICS / "efficiency.json"
# Measured on this machine (stages/latency.py), so in git like efficiency.json: each group's latency per count kept.
COST = METRICS / "cost"  # what a budget is a share of, per budget.target: the budget stage's dependency
LATENCY_TABLE = COST / "latency" / "table.csv"
LATENCY_REPORT = METRICS / "latency.md"  # export: the table's prediction for each budget model against its measurement
HEADLINE = METRICS / "headline.json"  # the few numbers `dvc exp show` compares
