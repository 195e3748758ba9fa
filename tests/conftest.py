from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from filelock import FileLock

from prunelab import _speed
from prunelab.workers import cpu_cores
from tests.helpers import Grid, copy_repo, dvc, project_copy, run_grid


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (pyproject's addopts run `-n auto`), the workers split the cores: each worker and
    every stage it starts (OMP_NUM_THREADS is inherited) gets cores // workers torch threads. Two workers
    at two threads each on two cores spin-wait on each other: the fast tier took 146 s so against 48 s
    at one thread each (one process at two threads: 69 s)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        threads = max(1, cpu_cores() // workers)
        os.environ["OMP_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def speed_tricks_as_before() -> Iterator[None]:
    """Tests that run a stage in-process (`stage_main`) switch the speed tricks on, process-wide,
    as a stage process does; put the switch back so that later tests see a library user's default."""
    before = _speed._ENABLED
    yield
    _speed._ENABLED = before


def built_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    """The folder `name`, made by `build(folder)` once in the whole run: under pytest-xdist the first worker
    that asks builds it in the run's shared temporary folder while the others wait on a file lock (the
    pattern of xdist's docs), so a session fixture is not computed once per worker. A build that failed
    part-way is removed and made again by the next worker that asks."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent
    folder, done = shared / name, shared / f"{name}.done"
    with FileLock(shared / f"{name}.lock"):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            build(folder)
            done.touch()
    return folder


def private(tmp_path_factory: pytest.TempPathFactory, shared_repo: Path, name: str) -> Path:
    """This worker's own copy of a shared repo: two workers' `dvc` commands must not meet in one repo
    (its lock). Outside xdist the session owns the repo, and it is used as it is."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return shared_repo
    return copy_repo(shared_repo, tmp_path_factory.mktemp(name) / "repo")


@pytest.fixture(scope="session")
def tiny_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the project in a fresh git repo after one full `dvc repro` on the tiny config.

    Read-only for tests: a test that changes it must copy it first (shutil.copytree).
    """

    def build(folder: Path) -> None:
        dvc(project_copy(folder / "repo"), "repro")

    return private(tmp_path_factory, built_once(tmp_path_factory, "tiny", build) / "repo", "tiny")


@pytest.fixture(scope="session")
def experiment_grid(tiny_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Grid:
    """tests/helpers.py's EXPERIMENTS, queued on a copy of `tiny_repo` and run two at a time: one queue run
    serves every test of a `dvc exp` variant (each applies its experiment to a copy of its own)."""

    def build(folder: Path) -> None:
        grid = run_grid(copy_repo(tiny_repo, folder / "repo"))
        (folder / "grid.json").write_text(json.dumps({"status": grid.status, "logs": grid.logs}))

    folder = built_once(tmp_path_factory, "grid", build)
    found = json.loads((folder / "grid.json").read_text())
    return Grid(private(tmp_path_factory, folder / "repo", "grid"), found["status"], found["logs"])
