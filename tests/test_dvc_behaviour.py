"""DVC reruns exactly what a change invalidates, and runs a grid of variants through its queue.

Each test changes a private copy of `tiny_repo` (one full `dvc repro` on the tiny config)
and reads which stages `dvc repro` ran from its "Running stage '<name>'" lines.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import copy_repo, dvc, experiments, run, running_stages, set_params, start_until

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
        # prune.k_step (only the sweeps and what reads them) and a new seed (only its own replicate) are
        # checked through the experiment queue below, which runs exactly those two variants.
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
    """Kill `dvc repro` while seed 3 trains: every stage that had finished (all of seeds 0–2
    that ran, prepare_data@3) is kept, and the next `dvc repro` runs only what is left."""
    set_params(repo / "params.yaml", {"seeds": [0, 1, 2, 3]})
    proc = start_until([str(Path(sys.executable).parent / "dvc"), "repro"], repo, "Running stage 'train@3'")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=120)
    result = dvc(repo, "repro")
    ran = running_stages(result.stdout)
    rest = per_seed("collect_activations", "sweep_prune", "finetune", "sensitivity", "budget", seeds=[2, 3])
    assert ran == ["train@3", *rest, *STUDY]
    assert "up to date" in dvc(repo, "status").stdout


# --------------------------------------------------------------------------- the experiment queue
GRID = {"k2": "prune.k_step=2", "s012": "seeds=[0,1,2]"}


def wait_for_queue(repo: Path, timeout: float = 540) -> str:
    """Poll `dvc queue status` until no task is queued or running; return the last status."""
    deadline = time.monotonic() + timeout
    while True:
        status = dvc(repo, "queue", "status").stdout
        if not any(word in status for word in ("Queued", "Running")):
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"the queue did not finish in {timeout:.0f} s:\n{status}")
        time.sleep(3)


def test_a_grid_runs_in_parallel_through_the_experiment_queue(repo: Path) -> None:
    """`dvc exp run --queue -S ...` per variant, then `dvc queue start -j 2`: both experiments
    are listed by `dvc exp show` with their params and metrics. Upstream stages come from the
    committed dvc.lock and the cache: a variant reruns only what it invalidates."""
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "tiny run"], repo)
    try:
        for name, setting in GRID.items():
            dvc(repo, "exp", "run", "--queue", "-S", setting, "-n", name)
        dvc(repo, "queue", "start", "-j", "2")
        status = wait_for_queue(repo)
        for name in GRID:
            assert name in status and "Failed" not in status, status
        expected = {
            "k2": [*per_seed("sweep_prune"), *STUDY],
            "s012": [*per_seed(*PER_SEED, seeds=[2]), *STUDY],
        }
        for name in GRID:
            logs = dvc(repo, "queue", "logs", name).stdout
            assert running_stages(logs) == expected[name], logs
    finally:
        dvc(repo, "queue", "stop", "--kill", check=False)

    found = experiments(json.loads(dvc(repo, "exp", "show", "--json").stdout))
    assert set(GRID) <= set(found)
    k_step = found["k2"]["params"]["params.yaml"]["data"]["prune"]["k_step"]
    assert k_step == 2
    assert found["s012"]["params"]["params.yaml"]["data"]["seeds"] == [0, 1, 2]
    n_seeds = {name: found[name]["metrics"]["metrics/headline.json"]["data"]["n_seeds"] for name in GRID}
    assert n_seeds == {"k2": 2, "s012": 3}


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
