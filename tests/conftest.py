from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import dvc, project_copy


@pytest.fixture(scope="session")
def tiny_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the project in a fresh git repo after one full `dvc repro` on the tiny config.

    Read-only for tests: a test that changes it must copy it first (shutil.copytree).
    """
    repo = project_copy(tmp_path_factory.mktemp("tiny") / "repo")
    dvc(repo, "repro")
    return repo
