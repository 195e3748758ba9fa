"""The handout's system: SimpleCNN on CIFAR-10, plain 10-class classification, same pipeline.

The end-to-end test runs the README's one command (`dvc exp run -S ...`, which reproduces
the pipeline with those params) in a temporary git repo, on CIFAR-10 batch files the test
writes in the real pickle format.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from prunelab.data.spec import InputSpec
from prunelab.errors import UserError
from prunelab.models.archs import ARCHS
from prunelab.models.groups import find_groups, group_named
from prunelab.models.nets import build_model, load_model
from prunelab.params import load_params, validate
from prunelab.prepare.sources import CHECKSUMS_ENV, Pool
from prunelab.prepare.tasks import dataset_info, make_classification_splits
from prunelab.pruning.surgery import channel_mask, remove_channels
from prunelab.pruning.sweep import block_outputs, seed_loop_confusions, sweep_confusions
from prunelab.pruning.views import GroupView
from prunelab.study.figures import grid_shape
from tests.helpers import ROOT, dvc, project_copy, stage, tiny_model, write_checksums, write_cifar10

CIFAR = InputSpec(channels=3, size=32, n_classes=10)
# SimpleCNN has no BatchNorm, so the default list minus bn_gamma.
CRITERIA = [
    *("mean_activation", "mean_conv_output", "abs_mean_conv_output", "apoz", "l1_norm", "taylor", "reconstruction"),
    *("random", "reverse"),
]
CIFAR_OVERRIDES = {
    "data.source": "cifar10",
    "data.task": "classification",
    "model.arch": "simple_cnn",
    "prune.criteria": CRITERIA,
}
README_COMMAND = (
    "dvc exp run -S data.source=cifar10 -S data.task=classification -S model.arch=simple_cnn "
    f"-S 'prune.criteria=[{','.join(CRITERIA)}]'"
)


# --------------------------------------------------------------------------- the model
def test_simple_cnn_is_the_handouts_network() -> None:
    model = build_model("simple_cnn", CIFAR).eval()
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.padding) for c in convs] == [
        (3, 16, (3, 3), (1, 1)),
        (16, 32, (3, 3), (1, 1)),
    ]
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [(fc.in_features, fc.out_features) for fc in linears] == [(2048, 256), (256, 10)]
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    # The handout's conv1 → ReLU → pool, run as conv1 → pool → ReLU: the same function and gradients
    # (tests/test_models.py::test_pooling_before_relu_is_the_literal_network_exactly).
    assert [type(m) for m in model.stem] == [torch.nn.Conv2d, torch.nn.MaxPool2d, torch.nn.ReLU]
    assert [type(m) for m in model.head.rest] == [torch.nn.ReLU, torch.nn.Linear]
    # conv2 (the pruned layer): P = 32 maps of M = N = 16; after its pool, 32×8×8 = 2048 into fc1.
    x = torch.randn(5, 3, 32, 32)
    conv_out = model.block.conv(model.stem(x))
    assert conv_out.shape == (5, 32, 16, 16)
    assert model.block(model.stem(x)).shape == (5, 32, 8, 8)
    assert model(x).shape == (5, 10)
    assert model.channels == ARCHS["simple_cnn"].channels == 32 and not ARCHS["simple_cnn"].batchnorm


def test_feature_map_grid_is_4_by_8() -> None:
    assert grid_shape(32) == (4, 8)


@pytest.mark.parametrize("k", [1, 2, 7, 16, 30, 31])
def test_simple_cnn_removal_equals_masking(k: int) -> None:
    model = tiny_model("simple_cnn", CIFAR, seed=k).double()
    x = torch.randn(8, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(k))
    removed = np.random.default_rng(k).permutation(32)[:k].tolist()
    groups = find_groups(model, x[:1])
    smaller = remove_channels(model, groups, {group_named(groups, "last").name: removed}, x[:1])
    assert smaller.block.conv.weight.shape == (32 - k, 16, 3, 3)
    assert smaller.head.fc1.weight.shape == (256, (32 - k) * 64)
    # Masking: conv2's channel maps multiplied by the mask where fc1 reads them (after its pool and ReLU).
    mask = channel_mask(32, removed).double().view(1, -1, 1, 1)
    hook = model.block.register_forward_hook(lambda _m, _i, out: out * mask)
    with torch.no_grad():
        try:
            expected = model(x)
        finally:
            hook.remove()
        actual = smaller(x)
        unpruned = model(x)
    torch.testing.assert_close(actual, expected, rtol=1e-10, atol=1e-10)
    assert not torch.allclose(actual, unpruned, atol=1e-6)  # the channels did matter


@pytest.mark.parametrize("mode", ["remove", "zero_weights"])
def test_fast_sweep_equals_the_seed_loop_with_10_classes(mode: str) -> None:
    model = tiny_model("simple_cnn", CIFAR, seed=3).double()
    gen = torch.Generator().manual_seed(3)
    images = torch.randn(60, 3, 32, 32, dtype=torch.float64, generator=gen)
    labels = torch.randint(0, 10, (60,), generator=gen)
    rng = np.random.default_rng(3)
    orders = np.stack([rng.permutation(32) for _ in range(2)])
    ks = [*range(0, 32, 2), 31]  # the handout's step of 2, and the last K
    groups = find_groups(model, images[:1])
    last = group_named(groups, "last")  # conv2, the handout's layer
    view = GroupView.of(model, last)
    fast = sweep_confusions(view, block_outputs(view, images, 50, torch.device("cpu")), labels, orders, ks, 10, mode)
    assert fast.shape == (2, len(ks), 10, 10)
    for r, order in enumerate(orders):
        reference = seed_loop_confusions(model, groups, last.name, images, labels, order, ks, 10, mode)
        np.testing.assert_array_equal(fast[r], reference)
    assert (fast[0, 0].sum(axis=0) > 0).sum() > 1, "the unpruned model should predict several classes"
    assert (fast.sum(axis=(-2, -1)) == 60).all()


def test_bn_gamma_is_refused_for_simple_cnn() -> None:
    raw = load_params(ROOT / "params.yaml").model_dump()
    with pytest.raises(UserError, match=r"prune\.criteria has bn_gamma, but model\.arch=simple_cnn"):
        validate({**raw, "model": {**raw["model"], "arch": "simple_cnn"}})


# --------------------------------------------------------------------------- the ignored params
def prepared_copy(dest: Path, overrides: dict) -> Path:
    """A project copy (no git) with a tiny CIFAR-10 written into its data/raw."""
    repo = project_copy(dest, overrides, git=False)
    write_cifar10(repo / "data/raw", per_batch=4, n_test=10)
    return repo


def trust_cifar_files(repo: Path, checksums: Path) -> Path:
    return write_checksums(checksums, sorted((repo / "data/raw/cifar-10-batches-py").iterdir()))


@pytest.mark.integration  # a fresh interpreter (imports torch): the whole suite's tier
def test_prepare_data_names_the_params_classification_ignores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = prepared_copy(tmp_path / "repo", CIFAR_OVERRIDES)
    monkeypatch.setenv(CHECKSUMS_ENV, str(trust_cifar_files(repo, tmp_path / "sums.json")))
    result = stage(repo, "prepare_data")
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if line.startswith("note:")]
    assert notes == [
        "note: this study ignores data.n_pairs",
        "note: this study ignores data.same_fraction",
        "note: this study ignores data.test_fraction (the source has an official test split)",
    ]
    info = json.loads((repo / "data/seeds/0/prepared/info.json").read_text())
    assert info == {
        "source": "cifar10",
        "task": "classification",
        "channels": 3,
        "size": 32,
        "n_classes": 10,
        "mean": [0.5, 0.5, 0.5],
        "std": [0.5, 0.5, 0.5],
    }


@pytest.mark.parametrize(
    ("source", "task", "ignored"),
    [
        ("mnist_5k", "pairs", []),
        ("cifar10", "pairs", []),
        ("mnist_5k", "classification", ["data.n_pairs", "data.same_fraction"]),
        (
            "mnist",
            "classification",
            ["data.n_pairs", "data.same_fraction", "data.test_fraction (the source has an official test split)"],
        ),
    ],
)
def test_ignored_params_depend_on_task_and_source(source: str, task: str, ignored: list[str]) -> None:
    raw = load_params(ROOT / "params.yaml").model_dump()
    params = validate({**raw, "data": {**raw["data"], "source": source, "task": task}})
    assert params.ignored_params() == ignored


def test_class_count_comes_from_the_source_not_the_files() -> None:
    """A CIFAR-10 subset without class 9 still gets a 10-way head (and a 10% balanced floor)."""
    raw = load_params(ROOT / "params.yaml").model_dump()
    params = validate({**raw, "data": {**raw["data"], "source": "cifar10", "task": "classification"}})
    labels = np.arange(40) % 9
    pool = Pool(np.zeros((40, 3, 32, 32), np.uint8), labels, np.arange(40) >= 30)
    splits = make_classification_splits(pool, params.data, np.random.default_rng(0))
    info = dataset_info(params.data, pool, splits["train"])
    assert info.input == CIFAR and info.mean == (0.5, 0.5, 0.5)
    assert splits["test"].image_ids.ravel().tolist() == list(range(30, 40))
    np.testing.assert_array_equal(splits["train"].labels, labels[:30])


# --------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def cifar_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The README's CIFAR-10 command, run once on 200 train + 100 test images (10 per class)."""
    base = tmp_path_factory.mktemp("cifar")
    # The tiny config (1 epoch, 3 random orders), one seed: what is asked here is the CIFAR system's, and the
    # seeds' aggregation is the pairs study's (tests/test_pipeline.py).
    repo = project_copy(base / "repo", {"seeds": [0]})
    write_cifar10(repo / "data/raw", per_batch=40, n_test=100)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CHECKSUMS_ENV, str(trust_cifar_files(repo, base / "sums.json")))
        result = dvc(repo, *shlex.split(README_COMMAND)[1:])
    return repo, result.stdout + result.stderr


@pytest.mark.integration
@pytest.mark.xdist_group("cifar")  # one worker builds `cifar_run` (module-scoped) for all three
def test_cifar10_run_uses_the_handouts_system(cifar_run: tuple[Path, str]) -> None:
    repo, output = cifar_run
    assert load_params(repo / "params.yaml").prune.criteria == tuple(CRITERIA)  # -S parsed the list
    summary = json.loads((repo / "metrics/seeds/0/data.json").read_text())
    assert summary["pool_images"] == 300
    assert summary["train"] == {"count": 200, "classes": 10} and summary["test"] == {"count": 100, "classes": 10}
    model = load_model(repo / "data/seeds/0/model.pt", "simple_cnn", CIFAR)
    assert model.block.conv.weight.shape == (32, 16, 3, 3) and model.head.fc1.in_features == 2048
    with np.load(repo / "data/seeds/0/activations.npz") as stats:
        assert stats["feature_maps"].shape == (32, 16, 16)
    assert "note: this study ignores data.same_fraction" in output


@pytest.mark.integration
@pytest.mark.xdist_group("cifar")  # one worker builds `cifar_run` (module-scoped) for all three
def test_cifar10_metrics_have_the_pairs_keys_and_a_10_percent_floor(cifar_run: tuple[Path, str]) -> None:
    repo, _ = cifar_run
    metrics = json.loads((repo / "metrics/metrics.json").read_text())
    pairs = json.loads((ROOT / "metrics/metrics.json").read_text())  # the default pipeline's tracked run
    assert set(metrics) == set(pairs)
    assert set(metrics["criteria"]) == {*CRITERIA, "mean_activation_zero_weights"}
    for name, entry in metrics["criteria"].items():
        assert set(entry) == set(pairs["criteria"][name]), name
    assert metrics["channels"] == 32 and metrics["n_test"] == 100
    assert metrics["majority_floor"] == pytest.approx(10.0)
    assert metrics["balanced_floor"] == pytest.approx(10.0)


@pytest.mark.integration
@pytest.mark.xdist_group("cifar")  # one worker builds `cifar_run` (module-scoped) for all three
def test_cifar10_sweep_covers_every_k_and_the_plots_exist(cifar_run: tuple[Path, str]) -> None:
    repo, _ = cifar_run
    table = pd.read_csv(repo / "metrics/seeds/0/sweep.csv")
    for name in CRITERIA:
        assert table[table["criterion"] == name]["k"].tolist() == list(range(32))
    assert "bn_gamma" not in set(table["criterion"])
    # K = 31 keeps one channel of 32; every score is a percentage.
    scores = table[["acc", "bacc"]].to_numpy()
    assert ((scores >= 0) & (scores <= 100)).all()
    report = (repo / "metrics/report.md").read_text()
    assert "model simple_cnn" in report and "| l1_norm |" in report
    for name in ("feature_maps", "accuracy_vs_k", "criteria", "vs_random"):
        assert (repo / f"metrics/plots/{name}.png").stat().st_size > 0
    assert "up to date" in dvc(repo, "status").stdout.lower()
