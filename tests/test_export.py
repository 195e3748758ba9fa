"""The pruned model as the deliverable: the K chosen, the decision folded in, a program that
loads without this project, and costs that FlopCounterMode confirms."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import prunelab
from prunelab.data.spec import InputSpec
from prunelab.deploy.export import (
    choose_export,
    fold_recalibrated_decision,
    load_rebuildable,
    save_program,
    save_rebuildable,
    shipped_model,
)
from prunelab.models.cost import cost_models, flops_per_sample, kept_fractions, layer_flops, parameter_count
from prunelab.models.groups import ChannelGroup, example_input, find_groups, group_named
from prunelab.pruning.surgery import remove_channels
from prunelab.scoring.scores import fit_decision, recalibrated_predictions
from tests.helpers import run, tiny_model

SPECS = {"pair_cnn": InputSpec(2, 28, 2), "simple_cnn": InputSpec(3, 32, 10)}


def last_group(model: torch.nn.Module, arch: str) -> tuple[tuple[ChannelGroup, ...], ChannelGroup]:
    """The model's channel groups and the lab's layer among them (the last conv)."""
    groups = find_groups(model, example_input(SPECS[arch]))
    return groups, group_named(groups, "last")


def hand_flops(arch: str, k: int) -> int:
    """FLOPs per sample counted by hand from the layer shapes, 2 per multiply-add of every conv
    and Linear (FlopCounterMode's convention)."""
    if arch == "pair_cnn":  # 2×28×28 → conv 32 @28² → pool → conv 64 @14² → pool → conv 128−K @7² → pool 3²
        p = 128 - k
        macs = 2 * 9 * 32 * 28 * 28 + 32 * 9 * 64 * 14 * 14 + 64 * 9 * p * 7 * 7 + p * 3 * 3 * 256 + 256 * 2
    else:  # 3×32×32 → conv 16 @32² → pool → conv 32−K @16² → pool 8²
        p = 32 - k
        macs = 3 * 9 * 16 * 32 * 32 + 16 * 9 * p * 16 * 16 + p * 8 * 8 * 256 + 256 * 10
    return 2 * macs


@pytest.mark.parametrize(("arch", "ks"), [("pair_cnn", (0, 64, 100)), ("simple_cnn", (0, 8, 31))])
def test_flop_counter_matches_a_hand_count_and_the_analytic_fractions(arch: str, ks: tuple[int, ...]) -> None:
    model = tiny_model(arch)
    groups, last = last_group(model, arch)
    example = example_input(SPECS[arch])
    fractions = kept_fractions(*cost_models(model, groups, example), last.name, list(ks))
    for i, k in enumerate(ks):
        pruned = remove_channels(model, groups, {last.name: list(range(k))}, example)
        counted = flops_per_sample(pruned, SPECS[arch])
        assert counted == hand_flops(arch, k) == layer_flops(pruned, SPECS[arch])
        assert fractions["flops_kept"][i] == pytest.approx(counted / hand_flops(arch, 0))
        assert fractions["params_kept"][i] == pytest.approx(parameter_count(pruned) / parameter_count(model))


def band(rows: dict[str, list[float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"k": k, "criterion": name, "mean": value} for name, values in rows.items() for k, value in enumerate(values)]
    )


def test_auto_export_takes_the_largest_k_within_one_point() -> None:
    table = band(
        {
            "mean_activation": [80.0, 79.5, 78.5, 80.0],  # within 1 point up to K=1
            "reconstruction": [80.0, 79.8, 79.2, 77.0],  # up to K=2
            "mean_activation_zero_weights": [80.0, 80.0, 80.0, 80.0],  # never shipped
        }
    )
    assert choose_export(table) == ("reconstruction", 2)
    assert choose_export(table, criterion="mean_activation") == ("mean_activation", 1)
    assert choose_export(table, k=3) == ("mean_activation", 3)  # the higher score at the asked K
    assert choose_export(table, criterion="reconstruction", k=3) == ("reconstruction", 3)


def shipped(arch: str = "pair_cnn") -> tuple[torch.nn.Module, torch.Tensor, np.ndarray]:
    model = tiny_model(arch)
    gen = torch.Generator().manual_seed(3)
    spec = SPECS[arch]
    images = torch.randn(64, spec.channels, spec.size, spec.size, generator=gen)
    labels = torch.randint(0, spec.n_classes, (64,), generator=gen)
    _, last = last_group(model, arch)
    removed = np.random.default_rng(0).permutation(last.channels)[: last.channels // 2]
    return shipped_model(model, {last.name: removed.tolist()}, (images, labels), spec.n_classes), images, removed


@pytest.mark.parametrize("arch", ["pair_cnn", "simple_cnn"])
def test_the_folded_decision_is_the_recalibrated_decision(arch: str) -> None:
    spec = SPECS[arch]
    model = tiny_model(arch)
    groups, last = last_group(model, arch)
    model = remove_channels(model, groups, {last.name: list(range(5))}, example_input(spec))
    gen = torch.Generator().manual_seed(4)
    cal = torch.randn(80, spec.channels, spec.size, spec.size, generator=gen)
    cal_labels = torch.randint(0, spec.n_classes, (80,), generator=gen)
    test = torch.randn(40, spec.channels, spec.size, spec.size, generator=gen)
    with torch.no_grad():
        cal_logits, test_logits = model(cal).double().numpy(), model(test).double().numpy()
        folded = fold_recalibrated_decision(model, cal, cal_labels, spec.n_classes)(test).argmax(-1).numpy()
    expected = recalibrated_predictions(
        test_logits[None], fit_decision(cal_logits[None], cal_labels.numpy(), spec.n_classes)
    )
    np.testing.assert_array_equal(folded, expected["recal_bacc"][0])


@pytest.mark.integration  # a fresh interpreter (imports torch): the whole suite's tier
def test_the_program_runs_where_the_project_cannot_be_imported(tmp_path: Path) -> None:
    model, images, _ = shipped()
    save_program(model, images[:2], tmp_path / "model.pt2")
    # No trace of where the project lives: the same model gives the same bytes from any checkout.
    assert str(Path(prunelab.__file__).parent).encode() not in (tmp_path / "model.pt2").read_bytes()
    with torch.no_grad():
        expected = model(images)
    torch.save({"x": images, "expected": expected}, tmp_path / "batch.pt")
    probe = (
        "import sys\n"
        "sys.modules['prunelab'] = None  # any import of the project now fails\n"
        "import torch\n"
        "program = torch.export.load('model.pt2').module()\n"
        "batch = torch.load('batch.pt')\n"
        "logits = program(batch['x'])\n"
        "print(torch.allclose(logits, batch['expected'], atol=1e-5), tuple(logits.shape))\n"
        "try:\n"
        "    import prunelab\n"
        "except ImportError:\n"
        "    print('project not importable')\n"
    )
    out = run([sys.executable, "-c", probe], cwd=tmp_path).stdout.split("\n")
    assert out[0] == "True (64, 2)" and out[1] == "project not importable"


def test_the_state_dict_rebuilds_the_same_model(tmp_path: Path) -> None:
    model, images, removed = shipped()
    facts = {"arch": "pair_cnn", "input": {"channels": 2, "size": 28, "n_classes": 2}}
    save_rebuildable(model, tmp_path / "model.pt", {**facts, "removed": {"conv3": [int(c) for c in removed]}})
    rebuilt = load_rebuildable(tmp_path / "model.pt")
    with torch.no_grad():
        assert torch.equal(rebuilt(images), model(images))
    assert rebuilt.block.conv.out_channels == 64


def test_the_speedup_interval_is_a_bootstrap_of_paired_rounds() -> None:
    from prunelab.deploy.efficiency import speedup_interval

    rng = np.random.default_rng(0)
    fast = rng.uniform(0.9, 1.1, 30)
    slow = 2.0 * fast * rng.uniform(0.95, 1.05, 30)  # a 2× speed-up, paired round by round, with noise
    low, high = speedup_interval(list(slow), list(fast))
    assert low < float(np.median(slow / fast)) < high and 1.9 < low and high < 2.1
    assert speedup_interval(list(slow), list(fast)) == (low, high)  # a function of the timings
    assert speedup_interval([2.0] * 10, [1.0] * 10) == (2.0, 2.0)  # no spread, no width
    wide = speedup_interval(list(slow * rng.uniform(0.5, 1.5, 30)), list(fast))
    assert wide[1] - wide[0] > high - low  # noisier rounds, a wider interval


@pytest.mark.parametrize("arch", ["pair_cnn", "resnet20"])
def test_onnx_runtime_logits_equal_torchs(arch: str, tmp_path: Path) -> None:
    """The second deploy target: the shipped model (odd channel counts: pruned for real) exported with
    BatchNorm folded, run by ONNX Runtime's CPU provider at every graph optimisation, gives torch's
    logits to ONNX_TOLERANCE, at another batch size than it was exported with (the batch is dynamic)."""
    from prunelab.checks.efficiency import ONNX_TOLERANCE
    from prunelab.deploy.onnx import run_session, save_onnx, session

    spec = InputSpec(2, 28, 2) if arch == "pair_cnn" else InputSpec(3, 32, 10)
    model = tiny_model(arch, spec)
    example = example_input(spec)
    groups = find_groups(model, example)
    removed = {g.name: list(range(0, g.channels, 3)) for g in groups[:2]}  # a third of two groups' channels
    pruned = remove_channels(model, groups, removed, example).eval()
    path = tmp_path / "model.onnx"
    assert save_onnx(pruned, torch.randn(2, *example.shape[1:]), path) == path.stat().st_size > 0
    images = torch.randn(5, *example.shape[1:])
    with torch.no_grad():
        expected = pruned(images).numpy()
    difference = np.abs(run_session(session(path, threads=1), images) - expected).max()
    assert difference <= ONNX_TOLERANCE


def test_the_onnx_file_is_the_same_bytes_whatever_was_exported_before(tmp_path: Path) -> None:
    """The dynamo exporter writes stack traces (this clone's file paths) and symbol ranges named by what the
    process exported before; stripped, the file is a function of the model alone (DVC hashes it)."""
    from prunelab.deploy.onnx import save_onnx

    spec = InputSpec(2, 28, 2)
    model, example = tiny_model("pair_cnn", spec), example_input(spec)
    save_onnx(model, example, tmp_path / "first.onnx")
    save_onnx(tiny_model("simple_cnn", InputSpec(3, 32, 10)), torch.randn(2, 3, 32, 32), tmp_path / "other.onnx")
    save_onnx(model, example, tmp_path / "again.onnx")
    first = (tmp_path / "first.onnx").read_bytes()
    assert first == (tmp_path / "again.onnx").read_bytes()
    assert str(Path(__file__).resolve().parents[1]).encode() not in first  # no path of this clone
