"""The whole study on models the lab did not write: `dvc repro` end to end for a CIFAR ResNet-20 and
torchvision's MobileNetV2, one seed and small settings, on tiny CIFAR-10 batch files the test writes
in the real pickle format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prunelab.models.records import metric_key
from prunelab.prepare.sources import CHECKSUMS_ENV
from tests.helpers import SMALL_STUDY, dvc, project_copy, write_checksums, write_cifar10

SMALL = {
    "seeds": [0],
    "data.source": "cifar10",
    "data.task": "classification",
    "train.epochs": 1,
    **SMALL_STUDY,
    "prune.criteria": ["mean_activation", "l1_norm", "taylor", "reconstruction", "random"],
    "finetune.epochs": 0.1,
    "recalibrate.max_samples": 40,
    "budget.finetune_epochs": 0.1,
}


@pytest.mark.integration
# ResNet-20's residual groups run end to end in tests/test_your_model.py (a user's residual network, same
# paths: per-K stream groups, fast inner convs); its groups and sweeps are checked in tests/test_groups.py.
@pytest.mark.parametrize(("arch", "at_least"), [("torchvision:mobilenet_v2", 17)])
def test_the_study_runs_end_to_end_on_any_model(
    arch: str, at_least: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = project_copy(tmp_path / "repo", {**SMALL, "model.arch": arch})
    write_cifar10(repo / "data/raw", per_batch=20, n_test=40)
    sums = write_checksums(tmp_path / "sums.json", sorted((repo / "data/raw/cifar-10-batches-py").iterdir()))
    monkeypatch.setenv(CHECKSUMS_ENV, str(sums))
    dvc(repo, "repro", timeout=900)

    groups = json.loads((repo / "metrics/seeds/0/groups.json").read_text())
    assert len(groups) >= at_least
    metrics = json.loads((repo / "metrics/metrics.json").read_text())
    assert set(metrics["sensitivity"]) == {metric_key(g["name"]) for g in groups}  # an entry for every group
    assert {"uniform", "global"} <= set(metrics["budget"])
    efficiency = json.loads((repo / "metrics/efficiency.json").read_text())
    assert efficiency["budget"] == 0.5 and efficiency["ratio"]["flops"] > 1.5
    assert efficiency["ratio"]["speedup_batch256"] > 0  # measured, in the deployed format
    kept = {key: value for key, value in efficiency.items() if key.startswith("channels_")}
    assert len(kept) == len(groups)
    report = (repo / "metrics/report.md").read_text()
    assert f"**{groups[1]['name']}**" in report  # groups named as the model names them
    assert (repo / "metrics/plots/sensitivity.png").stat().st_size > 0
