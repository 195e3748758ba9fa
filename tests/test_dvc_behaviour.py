"""DVC reruns exactly what a change invalidates, and runs a grid of variants through its queue.

Each test changes a private copy of `tiny_repo` (one full `dvc repro` on the tiny config)
and reads which stages `dvc repro` ran from its "Running stage '<name>'" lines.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import copy_repo, dvc, run, running_stages, set_params

pytestmark = pytest.mark.integration

STAGES = ["prepare_data", "train", "collect_activations", "sweep_prune", "plot"]


@pytest.fixture
def repo(tiny_repo: Path, tmp_path: Path) -> Path:
    return copy_repo(tiny_repo, tmp_path / "repo")


def test_second_repro_runs_nothing(repo: Path) -> None:
    result = dvc(repo, "repro")
    assert running_stages(result.stdout) == []
    assert "Data and pipelines are up to date" in result.stdout


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        # plot.* is a param of plot alone.
        ({"plot.dpi": 41}, ["plot"]),
        # prune.k_step is not a param of plot: plot reruns because metrics/sweep.csv changed.
        ({"prune.k_step": 2}, ["sweep_prune", "plot"]),
        ({"train.epochs": 2}, ["train", "collect_activations", "sweep_prune", "plot"]),
        ({"data.same_fraction": 0.2}, STAGES),
    ],
    ids=["plot", "prune", "train.epochs", "data"],
)
def test_a_change_reruns_exactly_the_stages_it_invalidates(
    repo: Path, change: dict[str, Any], expected: list[str]
) -> None:
    set_params(repo / "params.yaml", change)
    result = dvc(repo, "repro")
    assert running_stages(result.stdout) == expected, result.stdout
    assert "up to date" in dvc(repo, "status").stdout


# --------------------------------------------------------------------------- the experiment queue
GRID = {"k2": "prune.k_step=2", "k4": "prune.k_step=4"}


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


def experiments(shown: list[dict]) -> dict[str, dict]:
    """{experiment name: its data} from `dvc exp show --json`."""
    found = {}
    for commit in shown:
        for exp in commit.get("experiments") or []:
            for rev in exp["revs"]:
                found[rev["name"]] = rev["data"]
    return found


def test_a_grid_runs_in_parallel_through_the_experiment_queue(repo: Path) -> None:
    """`dvc exp run --queue -S ...` per variant, then `dvc queue start -j 2`: both experiments
    are listed by `dvc exp show` with their params and metrics. Upstream stages come from the
    committed dvc.lock and the cache: each variant reruns only sweep_prune and plot."""
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "tiny run"], repo)
    try:
        for name, setting in GRID.items():
            dvc(repo, "exp", "run", "--queue", "-S", setting, "-n", name)
        dvc(repo, "queue", "start", "-j", "2")
        status = wait_for_queue(repo)
        for name in GRID:
            assert name in status and "Failed" not in status, status
            logs = dvc(repo, "queue", "logs", name).stdout
            assert running_stages(logs) == ["sweep_prune", "plot"], logs
    finally:
        dvc(repo, "queue", "stop", "--kill", check=False)

    found = experiments(json.loads(dvc(repo, "exp", "show", "--json").stdout))
    assert set(GRID) <= set(found)
    aucs = {}
    for name, setting in GRID.items():
        data = found[name]
        k_step = data["params"]["params.yaml"]["data"]["prune"]["k_step"]
        assert f"prune.k_step={k_step}" == setting
        metrics = data["metrics"]["metrics/metrics.json"]["data"]
        assert metrics["channels"] == 128 and "baseline_accuracy" in metrics
        aucs[name] = metrics["criteria"]["mean_activation"]["auc"]
    # The variants ran for real: sweeping every second vs every fourth K gives other summaries.
    assert aucs["k2"] != aucs["k4"]
