from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from prunelab import _speed
from tests.helpers import Grid, copy_repo, dvc, project_copy, run_grid


@pytest.fixture(autouse=True)
def speed_tricks_as_before() -> Iterator[None]:
    """Tests that run a stage in-process (`stage_main`) switch the speed tricks on, process-wide,
    as a stage process does; put the switch back so that later tests see a library user's default."""
    before = _speed._ENABLED
    yield
    _speed._ENABLED = before


@pytest.fixture(scope="session")
def tiny_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the project in a fresh git repo after one full `dvc repro` on the tiny config.

    Read-only for tests: a test that changes it must copy it first (shutil.copytree).
    """
    repo = project_copy(tmp_path_factory.mktemp("tiny") / "repo")
    dvc(repo, "repro")
    return repo


@pytest.fixture(scope="session")
def experiment_grid(tiny_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Grid:
    """tests/helpers.py's EXPERIMENTS, queued on a copy of `tiny_repo` and run two at a time: one queue run
    serves every test of a `dvc exp` variant (each applies its experiment to a copy of its own)."""
    return run_grid(copy_repo(tiny_repo, tmp_path_factory.mktemp("grid") / "repo"))
