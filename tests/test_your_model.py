"""Your model, your weights, your images: the README's "Prune your own model" example end to end,
and what DVC reruns when the builder or the image folder changes.

The example is the one the README gives: `examples/your_model/net.py` (a small residual network),
its weights and a three-class image folder written by `examples/your_model/make_example.py`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from PIL import Image

from prunelab.models.records import metric_key
from tests.helpers import SMALL_STUDY, dvc, project_copy, run

# The README's example, with small settings for CI (one seed, few shares, budgets and orders).
YOUR_MODEL = {
    "seeds": [0],
    "model.arch": "examples.your_model.net:build",
    "model.source": "examples/your_model",
    "model.weights": "examples/your_model/weights.pt",
    "data.source": "imagefolder",
    "data.path": "data/raw/shapes",
    "data.task": "classification",
    **SMALL_STUDY,
    "prune.criteria": ["mean_activation", "l1_norm", "random"],
    "finetune.epochs": 0.2,
    "recalibrate.max_samples": 60,
    "budget.finetune_epochs": 0.2,
    # the default budgets, as the README's command runs them: each must be reachable with round_to's counts
    "budget.flops": [0.75, 0.5, 0.25],
}
MODEL_STAGES = {
    "train@0",
    "collect_activations@0",
    "sweep_prune@0",
    "finetune@0",
    "sensitivity@0",
    "latency",  # it builds model.arch afresh to time it
    "budget@0",
    "export",
}


def changed_stages(repo: Path) -> set[str]:
    """The stages `dvc status` lists as changed (their own deps or params, not their inputs' stages)."""
    shown = json.loads(dvc(repo, "status", "--json").stdout or "{}")
    return {name.split(":")[-1] for name in shown}


@pytest.mark.integration
def test_your_model_weights_and_images_run_the_whole_study(tmp_path: Path) -> None:
    repo = project_copy(tmp_path / "repo", YOUR_MODEL)
    run([sys.executable, "examples/your_model/make_example.py", "--per-class", "40", "--epochs", "2"], repo)
    dvc(repo, "repro", timeout=900)

    info = json.loads((repo / "data/seeds/0/prepared/info.json").read_text())
    assert info["classes"] == ["circle", "square", "triangle"] and info["normalisation"] == "train split"
    groups = json.loads((repo / "metrics/seeds/0/groups.json").read_text())
    # the stem with the residual stream (both blocks' second convs), and each block's inner conv
    assert [g["name"] for g in groups] == ["stem.0", "blocks.0.conv1", "blocks.2.conv1"]
    assert groups[0]["producers"] == ["stem.0", "blocks.0.conv2", "blocks.2.conv2"]
    metrics = json.loads((repo / "metrics/metrics.json").read_text())
    assert set(metrics["sensitivity"]) == {metric_key(g["name"]) for g in groups}
    assert {"uniform", "global"} <= set(metrics["budget"])
    efficiency = json.loads((repo / "metrics/efficiency.json").read_text())
    assert efficiency["ratio"]["speedup_batch256"] > 0  # measured, in the deployed format
    assert efficiency["ratio"]["flops"] > 1.2 or efficiency["shipped_unpruned"] == 1
    curve = (repo / "metrics/seeds/0/train_curve.csv").read_text().splitlines()
    assert len(curve) == 2 and curve[1].startswith("0,")  # the loaded weights, as epoch 0: not trained
    assert "not training itself" in (repo / "metrics/report.md").read_text()
    assert changed_stages(repo) == set()

    # Editing the builder reruns exactly the stages that build the model; prepare_data stays.
    net = repo / "examples/your_model/net.py"
    original = net.read_text()
    net.write_text(original + "\n# a comment is a change DVC sees\n")
    assert changed_stages(repo) == MODEL_STAGES
    net.write_text(original)
    assert changed_stages(repo) == set()

    # A new image reruns prepare_data (and, through its outputs, what follows); nothing else directly.
    Image.new("RGB", (24, 24), (200, 30, 30)).save(repo / "data/raw/shapes/train/square/new.png")
    assert changed_stages(repo) == {"prepare_data@0"}
    result = dvc(repo, "repro", "prepare_data@0")
    assert result.returncode == 0
    info_after = json.loads((repo / "data/seeds/0/prepared/info.json").read_text())
    assert info_after["listing_sha256"] != info["listing_sha256"]


def test_the_example_builder_is_what_the_readme_names() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for key, value in YOUR_MODEL.items():
        if key.startswith(("model.", "data.")):
            assert f"{key}={value}" in readme, key
