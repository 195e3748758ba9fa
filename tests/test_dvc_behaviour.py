"""DVC reruns exactly what a change invalidates, and runs a grid of variants through its queue.

Each test changes a private copy of `tiny_repo` (one full `dvc repro` on the tiny config)
and reads which stages `dvc repro` ran from its "Running stage '<name>'" lines.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import (
    EXPERIMENTS,
    Grid,
    copy_repo,
    dvc,
    experiments,
    running_stages,
    set_params,
    start_until,
)

pytestmark = pytest.mark.integration

SEEDS = [0, 1]  # tiny_repo's
PER_SEED = ["prepare_data", "train", "collect_activations", "sweep_prune", "finetune", "sensitivity", "budget"]
STUDY = ["aggregate", "export", "plot", "headline"]  # what reads every replicate (export: the first seed's model)


def per_seed(*names: str, seeds: list[int] = SEEDS) -> list[str]:
    return [f"{name}@{seed}" for name in names for seed in seeds]


@pytest.fixture
def repo(tiny_repo: Path, tmp_path: Path) -> Path:
    return copy_repo(tiny_repo, tmp_path / "repo")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        # plot.* is a param of plot alone.
        ({"plot.dpi": 41}, ["plot"]),
        # A prune.* change (only the sweeps and what reads them) is checked through the experiment queue
        # below, and a new seed (only its own replicate) by the interrupted study.
        # A change upstream reruns everything after it, but not what comes before (prepare_data stays cached).
        ({"train.epochs": 2}, [*per_seed(*PER_SEED[1:]), *STUDY]),
        # The ranking does not change with the decision's calibration data: fine-tuning stays cached.
        # (The whole-network stages score with the re-fitted decision too.)
        ({"recalibrate.max_samples": 50}, [*per_seed("sweep_prune", "sensitivity", "budget"), *STUDY]),
        # Fine-tuning after single-layer pruning changes no sweep and no budget row; the export re-reads the
        # study's metrics.json (it picks the whole-network configuration there), so it reruns.
        ({"finetune.epochs": 0.5}, [*per_seed("finetune"), *STUDY]),
        ({"export.k": 3}, ["export", "plot", "headline"]),
        # Dropping a seed reruns only what reads every replicate, and (seed 0 was the first) the latency table,
        # which times the first seed's test images.
        ({"seeds": [1]}, ["latency", *STUDY]),
    ],
    ids=["plot", "train.epochs", "recalibrate", "finetune", "export", "drop-seed"],
)
def test_a_change_reruns_exactly_the_stages_it_invalidates(
    repo: Path, change: dict[str, Any], expected: list[str]
) -> None:
    set_params(repo / "params.yaml", change)
    result = dvc(repo, "repro")
    assert running_stages(result.stdout) == expected, result.stdout
    assert "up to date" in dvc(repo, "status").stdout
    if change.get("seeds") == [1]:
        assert json.loads((repo / "metrics/metrics.json").read_text())["n_seeds"] == 1


def test_an_interrupted_study_resumes_where_it_stopped(repo: Path) -> None:
    """Add a seed, and kill `dvc repro` while it trains: the new seed's stages alone start (seeds 0 and 1 stay
    cached), every stage that had finished (prepare_data@2) is kept, and the next `dvc repro` runs only what
    is left of seed 2, then what reads every replicate."""
    set_params(repo / "params.yaml", {"seeds": [0, 1, 2]})
    proc = start_until([str(Path(sys.executable).parent / "dvc"), "repro"], repo, "Running stage 'train@2'")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=120)
    assert running_stages(proc.seen) == ["prepare_data@2", "train@2"], proc.seen
    result = dvc(repo, "repro")
    assert running_stages(result.stdout) == [*per_seed(*PER_SEED[1:], seeds=[2]), *STUDY], result.stdout
    assert "up to date" in dvc(repo, "status").stdout
    assert json.loads((repo / "metrics/metrics.json").read_text())["n_seeds"] == 3


# --------------------------------------------------------------------------- the experiment queue
def test_a_grid_runs_in_parallel_through_the_experiment_queue(experiment_grid: Grid) -> None:
    """`dvc exp run --queue -S ...` per variant, then `dvc queue start -j 2`: every experiment is listed by
    `dvc exp show` with its params and metrics. Upstream stages come from the committed dvc.lock and the
    cache: a variant reruns only what it invalidates."""
    for name in EXPERIMENTS:
        assert name in experiment_grid.status and "Failed" not in experiment_grid.status, experiment_grid.status
    expected = {
        # Another layer and other criteria: the layer's statistics, sweeps and fine-tuning, and the sensitivity
        # stage, which reads the headline criterion (prune.criteria's first); the models stay cached, and so do
        # the budgets (their inputs come out the same).
        "conv2": [*per_seed("collect_activations", "sweep_prune", "finetune", "sensitivity"), *STUDY],
        # A latency target: the budgets, against the latency table already measured.
        "latency": [*per_seed("budget"), *STUDY],
    }
    ran = {name: running_stages(log) for name, log in experiment_grid.logs.items()}
    assert ran == expected, experiment_grid.logs

    found = experiments(json.loads(dvc(experiment_grid.repo, "exp", "show", "--json").stdout))
    assert set(EXPERIMENTS) <= set(found)
    params = {name: found[name]["params"]["params.yaml"]["data"] for name in EXPERIMENTS}
    assert params["conv2"]["prune"]["layer"] == "conv2" and params["conv2"]["export"]["budget"] == "none"
    assert params["conv2"]["prune"]["criteria"] == ["l1_norm", "taylor", "random"]
    assert params["latency"]["budget"]["target"] == "latency"
    headlines = {name: found[name]["metrics"]["metrics/headline.json"]["data"] for name in EXPERIMENTS}
    assert set(headlines["conv2"]["vs_random"]) == {"l1_norm", "taylor", "l1_norm_zero_weights"}
    assert "k" in headlines["conv2"]["shipped"] and "budget" in headlines["latency"]["shipped"]


# --------------------------------------------------------------------------- code changes
@pytest.mark.parametrize(
    ("module", "expected"),
    [
        # A new data source: prepare_data reruns; its splits come out the same, so nothing after it does.
        ("prunelab/prepare/sources.py", per_seed("prepare_data")),
        # Validation and the error type are no stage's dep.
        ("prunelab/params/__init__.py", []),
        ("prunelab/errors.py", []),
        # The checks of the files the stages read only refuse: a stricter check reruns nothing.
        ("prunelab/checks/tables.py", []),
        # The study's code: the stages that read every replicate and import it.
        ("prunelab/study/report.py", ["aggregate", "plot", "headline"]),
    ],
    ids=["source", "params", "errors", "checks", "study"],
)
def test_a_code_change_reruns_the_stages_that_import_it(repo: Path, module: str, expected: list[str]) -> None:
    """The rerun scope the README states: a stage reruns when a subpackage or top-level module it
    imports changes, and DVC stops at the first stage whose outputs come out unchanged."""
    path = repo / module
    path.write_text(path.read_text() + "\n# an edit that changes no behaviour\n")
    result = dvc(repo, "repro")
    assert running_stages(result.stdout) == expected, result.stdout
    assert "up to date" in dvc(repo, "status").stdout
