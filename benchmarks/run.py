"""Benchmarks for the fast paths, each measured side by side with the lab's way of doing it.

    python benchmarks/run.py                 # CPU (default); about 2 minutes on 2 idle cores
    python benchmarks/run.py --device cuda   # or --device auto

Prints a table of measured times, then one line per ratio, exactly `ratio <name>: <value>`.
Every pair of methods runs in this one process, on the same model and the same data:

* Models have random weights (BatchNorm statistics and affine terms randomised too). The
  cost of a forward pass or a sweep does not depend on what the weights are.
* Data are random: 600 pairs (2×28×28) for the pairs model, 10,000 CIFAR-sized images
  (3×32×32) for SimpleCNN, 500 for ResNet-20, drawn as uint8 pixels and normalised as
  `prunelab.prepared` does. ResNet-20's output layer is rescaled and centred on other random
  images (`spread_logits`), so that its predictions are spread over every class and the
  confusion matrices compared below check something.
* Every model is seen through its channel groups (`prunelab.models.groups.find_groups`, found
  on the CPU as a stage finds them) and one fx trace shared by every `GroupView`.
* Our sides and single forward passes are timed as the median of `--repeats` runs after a
  warm-up call. The seed loops run once each: each is already 32 or 128 full passes. The
  two training epochs (10,000 images by default) alternate, `--train-repeats` times each,
  and each side's fastest counts.
* Ratios use wall-clock time. The table also shows the CPU seconds of this process and of
  the workers it forked (both threads together): when other work shares the machine, wall
  time stretches, CPU time much less.
* Speedup = baseline time / our time. For the `*_vs_one_forward_*` ratios the "baseline"
  is one forward pass over the test set. Ours is the sweep alone for the pairs ratios (the
  block outputs are already computed), so ≥ 0.5 means the sweep costs at most two forward
  passes; for `scoring_vs_one_forward_cifar` it is what `evaluate_orders` does for
  sweep_prune on CIFAR: the sweep's logits on the test and calibration splits and every
  score of them (30 orders × 32 K, 2,000 calibration images; `--only scoring` runs it
  alone). Like the seed loops, that path runs once: it is several forward passes' worth of
  work, so first-call costs weigh little.
* `layer_sweep_vs_seed_loop_*` (`--only layers`): the fast sweep of each group of the lab's CNNs
  that feeds another conv (conv1, conv2: the maps at its read point computed once, then every K
  of one order), against pruning that group and evaluating per K. What follows the next conv
  still runs per K, so the gain is bounded by what the network up to that conv costs.
* `resnet20_*` (`--only groups`): ResNet-20 (random weights and BN statistics), 500 images,
  every K = 0 … P − 1 of one order, `block_outputs` + `sweep_confusions` against the lab's loop
  (`seed_loop_confusions`: remove with Torch-Pruning, then a full pass, per K). The last block's inner
  conv (`layer3.2.conv1`) takes the fast path; what follows its consumer still runs per K, so the
  gain shrinks for earlier blocks (`layer2.1.conv1`: about 2.7× on one thread, everything from
  `layer2.1.conv2` on running per K), as for the lab's earlier layers above. A stage's
  residual stream (`layer2.0.conv2`: four producers meeting in adds) takes the per-K path, the
  whole model masked, several K per pass; its goal is to be no slower than pruning and
  evaluating. Both must give the loop's confusion matrices at every K, or the benchmark stops.
  `resnet20_trace_and_group_seconds` is what finding the groups, one trace and every group's
  view cost a stage, in seconds, timed in a fresh process (Torch-Pruning's import included).
* `network_stages_seconds_per_seed` (`--only network`): one seed's work of the sensitivity and
  budget stages with params.yaml's settings, in seconds (not a ratio; lower is better).
* The process first switches on the speed tricks the stages run with (`prunelab._speed.enable`:
  fused Adam, the allocator setting), so that baselines and our sides run under the same
  malloc behaviour whichever of them happens to run first.
* `collector_memory_growth` runs the collector in a fresh subprocess per sample count and
  reads that process's own peak memory; see `collector_peak_bytes`.
"""

from __future__ import annotations

import argparse
import copy
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python benchmarks/run.py` from a checkout that is not installed
    sys.path.insert(0, str(ROOT))

from prunelab import _speed  # noqa: E402
from prunelab.data.spec import InputSpec  # noqa: E402
from prunelab.models.graph import trace  # noqa: E402
from prunelab.models.groups import ChannelGroup, example_input, find_groups, group_named, output_layer  # noqa: E402
from prunelab.models.nets import build_model  # noqa: E402
from prunelab.models.training import predict, train_model  # noqa: E402
from prunelab.pruning.collect import collect_stats  # noqa: E402
from prunelab.pruning.criteria import CRITERIA, RankingContext, removal_orders  # noqa: E402
from prunelab.pruning.sweep import CPU_BATCH, block_outputs, seed_loop_confusions, sweep_confusions  # noqa: E402
from prunelab.pruning.views import GroupView  # noqa: E402
from prunelab.runtime import resolve_device  # noqa: E402
from prunelab.scoring.curves import resolve_ks  # noqa: E402
from prunelab.scoring.evaluate import SplitOutputs, evaluate_orders  # noqa: E402
from prunelab.workers import map_jobs  # noqa: E402
from tools.machine import cpu_model  # noqa: E402

T = TypeVar("T")

PAIRS = InputSpec(2, 28, 2)
CIFAR = InputSpec(3, 32, 10)
BLOCK_BATCH = 500  # params.yaml activations.batch_size: what sweep_prune uses for block_outputs
# The evaluation batch of the baseline passes (the seed loops and the one forward pass): on
# the CPU the handout's test_loader batch of 64, which is also the fastest we measured there
# (batch 1,000 was up to 1.2× slower on SimpleCNN); on a GPU 1,000, as predict() defaults to.
EVAL_BATCH = {"cpu": 64, "cuda": 1000}
TRAIN_TEST = 256  # test images train_model evaluates after its epoch (the handout's epoch evaluates none)
CALIBRATION_IMAGES = 2_000  # params.yaml recalibrate.max_samples
SCORED_ORDERS = 30  # sweep_prune on CIFAR: 9 criteria, 20 random orders, the headline again with zero_weights
RESNET_IMAGES = 500  # CIFAR-sized test images of the channel-group part (ResNet-20)
# ResNet-20 groups, by the sweep path each takes: a block's inner conv (one producer, one conv
# consumer) and stage 2's residual stream (four producers meeting in adds, four consumers).
RESNET_GROUPS = {"fast": "layer3.2.conv1", "per_k": "layer2.0.conv2"}
GOALS = {  # name: (goal, True when higher is better)
    "sweep_vs_seed_loop_pairs": (50.0, True),
    "sweep_vs_seed_loop_simplecnn": (20.0, True),
    "sweep_vs_one_forward_pairs": (0.5, True),
    "comparison_vs_one_forward_pairs": (0.1, True),
    "scoring_vs_one_forward_cifar": (0.2, True),
    # Each earlier layer's sweep against pruning and evaluating per K (issue: at least 10×).
    "layer_sweep_vs_seed_loop_pairs_conv1": (10.0, True),
    "layer_sweep_vs_seed_loop_pairs_conv2": (10.0, True),
    "layer_sweep_vs_seed_loop_simplecnn_conv1": (10.0, True),
    # Channel groups on ResNet-20: a block's inner conv swept against the lab's loop, a residual
    # stream's per-K path no slower than that loop, and finding the groups (seconds, per stage).
    "resnet20_fast_sweep_vs_per_k_loop": (10.0, True),
    "resnet20_per_k_path_vs_prune_loop": (1.0, True),
    "resnet20_trace_and_group_seconds": (2.0, False),
    # The sensitivity and budget stages' work per seed, in seconds (issue: at most 60 on 2 cores).
    "network_stages_seconds_per_seed": (60.0, False),
    "train_epoch_vs_seed_loader": (2.5, True),
    "collector_memory_growth": (1.2, False),
}


# --------------------------------------------------------------------------- timing
def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Seconds(float):
    """Wall-clock seconds (what the ratios use), carrying the CPU seconds along (`cpu_seconds`):
    other work on the machine stretches wall time far more than CPU time, so the two
    together show whether a run was disturbed."""

    cpu: float

    def __new__(cls, wall: float, cpu: float) -> Seconds:
        value = super().__new__(cls, wall)
        value.cpu = cpu
        return value


def cpu_seconds() -> float:
    """This process's CPU seconds, and those of its children that have ended: the budgets' fine-tunes run
    in forked workers (`map_jobs`), which their pool joins before it returns."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def timed_once(fn: Callable[[], T], device: torch.device) -> tuple[Seconds, T]:
    synchronize(device)
    start, start_cpu = time.perf_counter(), cpu_seconds()
    out = fn()
    synchronize(device)
    return Seconds(time.perf_counter() - start, cpu_seconds() - start_cpu), out


def timed(fn: Callable[[], T], device: torch.device, repeats: int) -> tuple[Seconds, T]:
    """Median of `repeats` runs after one warm-up run (first-call costs: kernels, caches)."""
    out = fn()
    runs = []
    for _ in range(repeats):
        seconds, out = timed_once(fn, device)
        runs.append(seconds)
    return sorted(runs)[(len(runs) - 1) // 2], out


@dataclass
class Row:
    name: str
    seconds: float
    note: str


# --------------------------------------------------------------------------- data and models
def random_model(arch: str, spec: InputSpec, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    model = build_model(arch, spec)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                n = module.num_features
                module.running_mean.copy_(torch.randn(n, generator=gen) * 0.3)
                module.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
                module.weight.copy_(torch.randn(n, generator=gen))
                module.bias.copy_(torch.randn(n, generator=gen) * 0.5)
    return model.eval()


def spread_logits(model: nn.Module, spec: InputSpec, seed: int) -> nn.Module:
    """Random weights on random images give every image nearly the same logits (ResNet-20: the
    pooled features' constant part dominates, and one class wins on every image), so confusion
    matrices would check little. Scale the output layer so that each logit varies by about 1 from
    image to image and move each class's mean to 0 on 200 other random images (`seed`): then
    every class is predicted. The cost of a forward pass or a sweep does not change."""
    last = model.get_submodule(output_layer(model, example_input(spec)))
    pixels, _ = random_pixels(200, spec, seed)
    device = last.weight.device
    images = normalised(pixels).to(device)
    with torch.no_grad():
        scale = model.eval()(images).std(dim=0).mean()
        last.weight /= scale
        last.bias /= scale
        last.bias -= model(images).mean(dim=0)
    return model


def random_pixels(n: int, spec: InputSpec, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images N×H×W×C (as torchvision's CIFAR10 holds them) and labels."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, spec.size, spec.size, spec.channels), dtype=np.uint8)
    return images, rng.integers(0, spec.n_classes, size=n).astype(np.int64)


def normalised(images: np.ndarray) -> torch.Tensor:
    """N×C×H×W float32, (x/255 − 0.5)/0.5: what `prunelab.prepared.load_split` returns."""
    return (torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().float() / 255.0 - 0.5) / 0.5


# --------------------------------------------------------------------------- sweeps
def block_note(device: torch.device) -> str:
    if device.type == "cpu":
        return f"batch_size {BLOCK_BATCH}; runs {CPU_BATCH} at a time, channels-last"
    return f"batch {BLOCK_BATCH}"


@dataclass
class Case:
    """A random model with its channel groups and one traced graph (shared by every view), the view of
    the lab's group (the last), random images and labels, every K of that group and one random order."""

    model: nn.Module
    groups: tuple[ChannelGroup, ...]
    gm: torch.fx.GraphModule
    view: GroupView
    images: torch.Tensor
    labels: torch.Tensor
    ks: list[int]
    order: np.ndarray

    def view_of(self, name: str) -> GroupView:
        return GroupView.of(self.model, group_named(self.groups, name), self.gm)


def sweep_inputs(arch: str, spec: InputSpec, n_images: int, seed: int, device: torch.device) -> Case:
    """A random model, random images and labels, every K of the last group, and one random removal
    order (seeds `seed`, `seed` + 1 and `seed` + 2). Groups are found on the CPU, as a stage finds
    them on the model it loads, before the model moves to `device`."""
    model = random_model(arch, spec, seed=seed)
    groups = find_groups(model, example_input(spec))
    model = model.to(device)
    gm = trace(model)
    view = GroupView.of(model, group_named(groups, "last"), gm)
    pixels, labels = random_pixels(n_images, spec, seed=seed + 1)
    channels = view.group.channels
    ks = resolve_ks("all", 1, channels)
    order = np.random.default_rng(seed + 2).permutation(channels)
    return Case(model, groups, gm, view, normalised(pixels), torch.from_numpy(labels), ks, order)


def sweep_benchmarks(device: torch.device, repeats: int) -> tuple[list[Row], dict[str, float]]:
    rows: list[Row] = []
    ratios: dict[str, float] = {}
    eval_batch = EVAL_BATCH[device.type]

    # Pairs model, 600 test pairs, K = 0 … 127.
    case = sweep_inputs("pair_cnn", PAIRS, 600, seed=0, device=device)
    model, view, images, labels, ks, order = case.model, case.view, case.images, case.labels, case.ks, case.order

    t_forward, _ = timed(lambda: predict(model, images, eval_batch), device, repeats)
    t_block, outputs = timed(lambda: block_outputs(view, images, BLOCK_BATCH, device), device, repeats)
    t_sweep, fast = timed(
        lambda: sweep_confusions(view, outputs, labels, order[None], ks, PAIRS.n_classes), device, repeats
    )
    t_seed, slow = timed_once(
        lambda: seed_loop_confusions(
            model, case.groups, view.group.name, images, labels, order, ks, PAIRS.n_classes, batch_size=eval_batch
        ),
        device,
    )
    same = int((fast[0] == slow).all(axis=(1, 2)).sum())
    rows += [
        Row("pairs: one forward pass (600 pairs)", t_forward, f"predict(), batch {eval_batch}"),
        Row("pairs: block_outputs (stem + block once)", t_block, block_note(device)),
        Row("pairs: sweep K=0..127, one order", t_sweep, f"float64; {same}/{len(ks)} confusions = seed loop's"),
        Row("pairs: seed loop K=0..127 (baseline)", t_seed, "prune + full pass per K, float32"),
    ]

    # The full comparison as sweep_prune runs it: every criterion (+20 random orders) in one
    # sweep_confusions call, then the headline criterion again with zero_weights.
    stats = collect_stats(view, images, labels, BLOCK_BATCH, device)
    ctx = RankingContext(stats, model, "mean_activation", 0, 20, view.group, view.fast)

    def comparison() -> tuple[np.ndarray, np.ndarray]:
        stacked = np.concatenate([removal_orders(name, ctx) for name in CRITERIA])
        confusions = sweep_confusions(view, outputs, labels, stacked, ks, PAIRS.n_classes, "remove")
        zeroed = sweep_confusions(
            view, outputs, labels, removal_orders("mean_activation", ctx), ks, PAIRS.n_classes, "zero_weights"
        )
        return confusions, zeroed

    t_comparison, (confusions, _) = timed(comparison, device, repeats)
    rows.append(
        Row(
            f"pairs: comparison, {len(confusions)} orders + zero_weights",
            t_comparison,
            f"{len(CRITERIA)} criteria incl. 20 random orders",
        )
    )
    ratios["sweep_vs_seed_loop_pairs"] = t_seed / (t_block + t_sweep)
    ratios["sweep_vs_one_forward_pairs"] = t_forward / t_sweep
    ratios["comparison_vs_one_forward_pairs"] = t_forward / t_comparison

    # SimpleCNN, 10,000 CIFAR-sized images, K = 0 … 31.
    case = sweep_inputs("simple_cnn", CIFAR, 10_000, seed=3, device=device)
    model, view, images, labels, ks, order = case.model, case.view, case.images, case.labels, case.ks, case.order
    t_forward, _ = timed(lambda: predict(model, images, eval_batch), device, repeats)
    t_block, outputs = timed(lambda: block_outputs(view, images, BLOCK_BATCH, device), device, repeats)
    sweeps = {}
    for dtype in (torch.float64, torch.float32):
        sweeps[dtype] = timed(
            lambda dtype=dtype: sweep_confusions(view, outputs, labels, order[None], ks, CIFAR.n_classes, dtype=dtype),
            device,
            repeats,
        )
    t_seed, slow = timed_once(
        lambda: seed_loop_confusions(
            model, case.groups, view.group.name, images, labels, order, ks, CIFAR.n_classes, batch_size=eval_batch
        ),
        device,
    )
    t_sweep = sweeps[torch.float64][0]
    rows += [
        Row("simplecnn: one forward pass (10,000 images)", t_forward, f"predict(), batch {eval_batch}"),
        Row("simplecnn: block_outputs", t_block, block_note(device)),
    ]
    for dtype, (seconds, fast) in sweeps.items():
        same = int((fast[0] == slow).all(axis=(1, 2)).sum())
        speedup = t_seed / (t_block + seconds)
        name = str(dtype).removeprefix("torch.")
        rows.append(
            Row(
                f"simplecnn: sweep K=0..31, {name}",
                seconds,
                f"{same}/{len(ks)} confusions = seed loop's; with block_outputs {speedup:.1f}× the seed loop",
            )
        )
    rows.append(Row("simplecnn: seed loop K=0..31 (baseline)", t_seed, "prune + full pass per K, float32"))
    ratios["sweep_vs_seed_loop_simplecnn"] = t_seed / (t_block + t_sweep)
    return rows, ratios


# --------------------------------------------------------------------------- scoring
def scoring_benchmark(device: torch.device, repeats: int) -> tuple[list[Row], dict[str, float]]:
    """Every score of SCORES, recalibration included, for SCORED_ORDERS random orders at every K of
    SimpleCNN on 10,000 CIFAR-sized test images, as `evaluate_orders` computes them in sweep_prune:
    the sweep's logits stay on the device and are scored there, all orders and K at once."""
    case = sweep_inputs("simple_cnn", CIFAR, 10_000, seed=3, device=device)
    model, view, images, labels, ks = case.model, case.view, case.images, case.labels, case.ks
    t_forward, _ = timed(lambda: predict(model, images, EVAL_BATCH[device.type]), device, repeats)
    pixels, cal_labels = random_pixels(CALIBRATION_IMAGES, CIFAR, seed=9)
    test = SplitOutputs(block_outputs(view, images, BLOCK_BATCH, device), labels)
    calibration = SplitOutputs(
        block_outputs(view, normalised(pixels), BLOCK_BATCH, device), torch.from_numpy(cal_labels)
    )
    channels = view.group.channels
    orders = np.stack([np.random.default_rng(10 + i).permutation(channels) for i in range(SCORED_ORDERS)])
    t_scoring, _ = timed_once(lambda: evaluate_orders(view, test, calibration, orders, ks, CIFAR.n_classes), device)
    rows = [
        Row("scoring: one forward pass (10,000 images)", t_forward, f"predict(), batch {EVAL_BATCH[device.type]}"),
        Row(
            f"scoring: every score, {SCORED_ORDERS} orders × K=0..31",
            t_scoring,
            f"sweep logits + batched scores, {CALIBRATION_IMAGES:,} calibration images",
        ),
    ]
    return rows, {"scoring_vs_one_forward_cifar": t_forward / t_scoring}


# --------------------------------------------------------------------------- every layer
def layer_case(
    case: Case, spec: InputSpec, layer: str, device: torch.device, repeats: int, label: str
) -> tuple[list[Row], float]:
    """One group whose consumer is a conv: its fast sweep (the maps at its read point computed once,
    then every K of one order; both in our time) against pruning it and evaluating per K."""
    view = case.view_of(layer)
    p = view.group.channels
    ks = resolve_ks("all", 1, p)
    order = np.random.default_rng(6).permutation(p)
    images, labels = case.images, case.labels

    def ours() -> np.ndarray:
        outputs = block_outputs(view, images, BLOCK_BATCH, device)
        return sweep_confusions(view, outputs, labels, order[None], ks, spec.n_classes)

    def per_k() -> np.ndarray:
        batch = EVAL_BATCH[device.type]
        return seed_loop_confusions(
            case.model, case.groups, layer, images, labels, order, ks, spec.n_classes, batch_size=batch
        )

    t_ours, fast = timed(ours, device, repeats)
    t_seed, slow = timed_once(per_k, device)
    same = int((fast[0] == slow).all(axis=(1, 2)).sum())
    rows = [
        Row(f"{label}: {layer} sweep K=0..{p - 1} ({len(images):,} images)", t_ours,
            f"{view.path} path: maps + sweep; {same}/{len(ks)} confusions = seed loop's"),
        Row(f"{label}: {layer} seed loop K=0..{p - 1} (baseline)", t_seed, "prune + full pass per K, float32"),
    ]  # fmt: skip
    return rows, t_seed / t_ours


def layer_benchmarks(device: torch.device, repeats: int) -> tuple[list[Row], dict[str, float]]:
    """The fast sweep of every group before the last (the lab's CNNs: each conv feeding a conv)
    against the per-K loop."""
    rows: list[Row] = []
    ratios: dict[str, float] = {}
    for arch, spec, n_images, label in [("pair_cnn", PAIRS, 600, "pairs"), ("simple_cnn", CIFAR, 2_000, "simplecnn")]:
        case = sweep_inputs(arch, spec, n_images, seed=5, device=device)
        for group in case.groups[:-1]:
            new_rows, ratio = layer_case(case, spec, group.name, device, repeats, label)
            rows += new_rows
            ratios[f"layer_sweep_vs_seed_loop_{label}_{group.name}"] = ratio
    return rows, ratios


# --------------------------------------------------------------------------- channel groups (ResNet-20)
def same_as_loop(fast: np.ndarray, slow: np.ndarray, what: str) -> int:
    """How many K the sweep's confusion matrices (1×K×C×C) match the loop's (K×C×C) at; a
    mismatch stops the benchmark: a fast path that is not the loop's result has no speed to report."""
    same = int((fast[0] == slow).all(axis=(1, 2)).sum())
    if same != len(slow):
        raise AssertionError(f"{what}: only {same}/{len(slow)} confusion matrices equal the seed loop's")
    return same


def resnet_sweep_case(case: Case, name: str, path: str, device: torch.device, repeats: int) -> tuple[list[Row], float]:
    """One ResNet-20 group: `block_outputs` + `sweep_confusions` for one order at every K = 0 … P − 1,
    against the lab's loop (`seed_loop_confusions`: remove, then a full pass, per K)."""
    view = case.view_of(name)
    if view.path != path:
        raise AssertionError(f"resnet20 {name}: expected the {path} path, got {view.path} ({view.fast_reason})")
    p = view.group.channels
    ks = list(range(p))
    order = np.random.default_rng(13).permutation(p)
    images, labels, n_classes = case.images, case.labels, CIFAR.n_classes
    batch = EVAL_BATCH[device.type]
    t_block, outputs = timed(lambda: block_outputs(view, images, BLOCK_BATCH, device), device, repeats)
    t_sweep, fast = timed(lambda: sweep_confusions(view, outputs, labels, order[None], ks, n_classes), device, repeats)
    t_seed, slow = timed_once(
        lambda: seed_loop_confusions(case.model, case.groups, name, images, labels, order, ks, n_classes,
                                     batch_size=batch),
        device,
    )  # fmt: skip
    same = same_as_loop(fast, slow, f"resnet20 {name} ({path} path)")
    predicted = int((slow[0].sum(axis=0) > 0).sum())  # classes the unpruned model predicts: a non-trivial check
    what = "maps at the read point + skip tensor" if path == "fast" else "the images (the whole model runs per K)"
    rows = [
        Row(f"resnet20: {name} block_outputs ({path} path)", t_block, f"{what}; {block_note(device)}"),
        Row(f"resnet20: {name} sweep K=0..{p - 1}, one order", t_sweep,
            f"{same}/{len(ks)} confusions = seed loop's; {predicted}/{n_classes} classes predicted at K=0"),
        Row(f"resnet20: {name} seed loop K=0..{p - 1} (baseline)", t_seed,
            f"remove (Torch-Pruning) + full pass per K, batch {batch}"),
    ]  # fmt: skip
    return rows, t_seed / (t_block + t_sweep)


def group_setup_seconds(repeats: int) -> tuple[Seconds, Seconds, int, int]:
    """What a stage adds before any statistics or sweep: `find_groups` on ResNet-20 (Torch-Pruning's
    dependency graph), one fx trace and a `GroupView` of every group. (first call, median of
    `repeats` later calls, groups, groups on the fast path). Run in a fresh process (`groups_setup`),
    so the first call pays what a stage pays: importing Torch-Pruning, first traces."""
    cpu = torch.device("cpu")  # a stage finds groups on the model it loads, on the CPU
    model = random_model("resnet20", CIFAR, seed=11)
    example = example_input(CIFAR)

    def setup() -> list[GroupView]:
        groups = find_groups(model, example)
        gm = trace(model)
        return [GroupView.of(model, group, gm) for group in groups]

    first, views = timed_once(setup, cpu)
    later, _ = timed(setup, cpu, repeats)
    return first, later, len(views), sum(view.fast for view in views)


def groups_setup(repeats: int) -> tuple[list[Row], dict[str, float]]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--repeats", str(repeats), "--groups-child"]
    result = subprocess.run(cmd, env={**os.environ, "TQDM_DISABLE": "1"}, capture_output=True, text=True, check=True)
    first_wall, first_cpu, later_wall, later_cpu, n_groups, n_fast = result.stdout.split()[-6:]
    first, later = Seconds(float(first_wall), float(first_cpu)), Seconds(float(later_wall), float(later_cpu))
    note = f"{n_groups} groups ({n_fast} fast path), one shared trace"
    rows = [
        Row("resnet20: find_groups + trace + every GroupView", first, f"{note}; fresh process, first call"),
        Row("resnet20: the same again", later, f"median of {repeats} later calls, Torch-Pruning imported"),
    ]
    return rows, {"resnet20_trace_and_group_seconds": float(first)}


def groups_benchmark(device: torch.device, repeats: int) -> tuple[list[Row], dict[str, float]]:
    """ResNet-20 (random weights and BN statistics) on RESNET_IMAGES CIFAR-sized random images: a
    block's inner conv (fast path) and a stage's residual stream (per-K path) against the lab's
    prune-then-evaluate loop, and what finding the groups costs a stage."""
    case = sweep_inputs("resnet20", CIFAR, RESNET_IMAGES, seed=11, device=device)
    spread_logits(case.model, CIFAR, seed=14)  # in place: the views share its modules
    batch = EVAL_BATCH[device.type]
    t_forward, _ = timed(lambda: predict(case.model, case.images, batch), device, repeats)
    rows = [Row(f"resnet20: one forward pass ({RESNET_IMAGES:,} images)", t_forward, f"predict(), batch {batch}")]
    ratios = {}
    for (path, name), key in zip(RESNET_GROUPS.items(), ("resnet20_fast_sweep_vs_per_k_loop",
                                                       "resnet20_per_k_path_vs_prune_loop"), strict=True):  # fmt: skip
        new_rows, ratios[key] = resnet_sweep_case(case, name, path, device, repeats)
        rows += new_rows
    setup_rows, setup_ratios = groups_setup(repeats)
    return rows + setup_rows, ratios | setup_ratios


# --------------------------------------------------------------------------- the whole network
def network_benchmark(device: torch.device) -> tuple[list[Row], dict[str, float]]:
    """One seed's work of the sensitivity and budget stages, with params.yaml's sensitivity and
    budget sections, on the default pairs sizes (600 test, 2,000 calibration, 5,400 train pairs):
    each stage's channel groups and trace, every group's statistics, rankings and sensitivity sweep,
    then every budget × strategy × criterion allocated, removed, fine-tuned and scored, and the
    unpruned model fine-tuned alike. What the stages do besides (start-up, reading and writing
    files) is not in it."""
    from prunelab.models.groups import remove_channels
    from prunelab.network.budget import allocate, flops_model, recipe, sensitivity_plans
    from prunelab.network.sensitivity import layer_sensitivity, rank_layer
    from prunelab.params import load_params
    from prunelab.pruning.finetune import finetune_pruned
    from prunelab.scoring.evaluate import every_score

    params = load_params(ROOT / "params.yaml")
    sens, budget = params.sensitivity, params.budget
    model = random_model("pair_cnn", PAIRS, seed=7)  # on the CPU, as a stage loads it
    example = example_input(PAIRS)
    splits = {}
    for name, n, seed in (("test", 600, 8), ("calibration", CALIBRATION_IMAGES, 9), ("train", 5_400, 10)):
        pixels, labels = random_pixels(n, PAIRS, seed)
        splits[name] = normalised(pixels), torch.from_numpy(labels)

    def sensitivity() -> tuple[tuple[ChannelGroup, ...], dict, pd.DataFrame]:
        groups = find_groups(model, example)
        graph = trace(model)
        rankings, tables = {}, []
        for group in groups:
            view = GroupView.of(model, group, graph)
            stats = collect_stats(view, *splits["test"], BLOCK_BATCH, device, label=group.name)
            ranked = rank_layer(model, stats, sens.criteria, headline=params.prune.criteria[0], seed=0,
                                random_orders=sens.random_orders, group=group, fast=view.fast)  # fmt: skip
            outputs = {name: SplitOutputs(block_outputs(view, splits[name][0], BLOCK_BATCH, device),
                                          splits[name][1].to(device)) for name in ("test", "calibration")}  # fmt: skip
            tables.append(layer_sensitivity(view, ranked, outputs["test"], outputs["calibration"],
                                            sens.fractions, PAIRS.n_classes))  # fmt: skip
            rankings[group.name] = ranked
        return groups, rankings, pd.concat(tables, ignore_index=True)

    def budgets(rankings: dict, curves: pd.DataFrame) -> int:
        groups = find_groups(model.cpu(), example)  # the budget stage finds them again
        flops = flops_model(model, groups, example)
        plans = {criterion: sensitivity_plans(rankings, curves, criterion) for criterion in budget.criteria}
        jobs = [({}, None)] + [(b, s, c) for b in budget.flops for s in budget.strategies for c in budget.criteria]
        removals = [{} if job[0] == {} else allocate(job[1], plans[job[2]], flops, job[0], budget.round_to)
                    for job in jobs]  # fmt: skip

        def one(removed: dict) -> None:
            tuned, _ = finetune_pruned(model, groups, removed, splits["train"], splits["test"], n_classes=2,
                                       device=device, seed=0, **recipe(params))  # fmt: skip
            pruned = remove_channels(model.cpu(), groups, removed, example).to(device)
            every_score(pruned, splits["test"], splits["calibration"], 2)
            every_score(tuned, splits["test"], splits["calibration"], 2)

        # As the budget stage runs them: one fine-tune per core, each at one torch thread (prunelab.workers).
        map_jobs(one, removals, device, desc="budgets")
        return len(removals)

    t_sens, (groups, rankings, curves) = timed_once(sensitivity, device)
    t_budget, models = timed_once(lambda: budgets(rankings, curves), device)
    orders = sum(len(r.orders) for r in next(iter(rankings.values())).values())
    rows = [
        Row("network: sensitivity, one seed", t_sens,
            f"{len(groups)} groups × {orders} orders × {len(sens.fractions)} shares, statistics included"),
        Row("network: budgets, one seed", t_budget,
            f"{models} models fine-tuned {budget.finetune_epochs:g} epoch and scored, the unpruned one included"),
    ]  # fmt: skip
    return rows, {"network_stages_seconds_per_seed": float(t_sens + t_budget)}


# --------------------------------------------------------------------------- training
class HandoutCIFAR(torch.utils.data.Dataset):
    """What torchvision.datasets.CIFAR10 does per sample: uint8 HWC array → PIL → transform."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: Callable[[Any], torch.Tensor]):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        return self.transform(Image.fromarray(self.images[index])), int(self.labels[index])


def handout_epoch(model: nn.Module, images: np.ndarray, labels: np.ndarray, device: torch.device) -> float:
    """One epoch of the handout's code: per-sample PIL + ToTensor + Normalize, Adam, batch 64."""
    from torchvision import transforms

    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])
    loader = torch.utils.data.DataLoader(HandoutCIFAR(images, labels, transform), batch_size=64, shuffle=True)
    model = model.to(device)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
    model.train()
    for batch, targets in loader:
        # The handout runs on the CPU; on a GPU its batches have to be moved there.
        outputs = model(batch.to(device))
        loss = criterion(outputs, targets.to(device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return loss.item()


def train_benchmark(device: torch.device, n_images: int, repeats: int) -> tuple[list[Row], dict[str, float]]:
    torch.manual_seed(6)
    initial = build_model("simple_cnn", CIFAR)
    pixels, labels_np = random_pixels(n_images, CIFAR, seed=7)
    images, labels = normalised(pixels), torch.from_numpy(labels_np)
    test = (images[:TRAIN_TEST], labels[:TRAIN_TEST])

    def ours() -> Any:
        return train_model(
            copy.deepcopy(initial),
            (images, labels),
            test,
            n_classes=CIFAR.n_classes,
            epochs=1,
            batch_size=64,
            lr=0.001,
            class_weight="none",
            device=device,
            seed=0,
        )

    # Alternate the two sides so that a burst of load on the machine hits both alike.
    base_times, our_times = [], []
    for _ in range(repeats):
        base_times.append(
            timed_once(lambda: handout_epoch(copy.deepcopy(initial), pixels, labels_np, device), device)[0]
        )
        our_times.append(timed_once(ours, device)[0])
    t_base, t_ours = min(base_times), min(our_times)  # min keeps the Seconds (and its CPU time)
    rows = [
        Row(f"train: handout epoch, {n_images:,} images (baseline)", t_base, "PIL + ToTensor + Normalize, batch 64"),
        Row(
            f"train: train_model epoch, {n_images:,} images",
            t_ours,
            f"in-memory tensors, batch 64; includes its eval of {TRAIN_TEST} test images",
        ),
    ]
    return rows, {"train_epoch_vs_seed_loader": t_base / t_ours}


# --------------------------------------------------------------------------- collector memory
def collector_peak_bytes(n_samples: int, device: torch.device) -> int:
    """The collector's own peak extra memory for `n_samples` pairs, measured in this process.

    Runs in a fresh subprocess per size (see `collector_memory`), so nothing from another
    measurement is cached or counted. Model and input tensor exist before measuring; a
    warm-up call on one batch takes the one-time costs (oneDNN primitives, autograd
    buffers) out. Then:

    * CPU: torch's CPU allocator has no statistics and tracemalloc does not see it, so we
      read the kernel's count: the peak resident set (VmHWM) is reset by writing 5 to
      /proc/self/clear_refs, and the peak after the call minus the resident set before it
      is the collector's own peak. The parent starts this process with a fixed glibc mmap
      threshold, so every tensor above 64 KiB is its own mapping, returned to the kernel
      when freed: the resident set then follows the live tensors instead of glibc's
      retained heap. (Checked: a collector that keeps every batch's conv output measures
      119 MiB at 1,000 pairs and 335 MiB at 10,000 this way.) Linux only.
    * CUDA: torch.cuda.max_memory_allocated after a peak reset, minus what was allocated
      before.
    """
    model = random_model("pair_cnn", PAIRS, seed=0)
    view = GroupView.of(model, group_named(find_groups(model, example_input(PAIRS)), "last"))
    gen = torch.Generator().manual_seed(8)
    images = torch.randn(n_samples, PAIRS.channels, PAIRS.size, PAIRS.size, generator=gen)
    labels = torch.randint(0, PAIRS.n_classes, (n_samples,), generator=gen)
    collect_stats(view, images[:BLOCK_BATCH], labels[:BLOCK_BATCH], BLOCK_BATCH, device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        collect_stats(view, images, labels, BLOCK_BATCH, device)
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    before = _status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")
    collect_stats(view, images, labels, BLOCK_BATCH, device)
    return (_status_kib("VmHWM") - before) * 1024


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def collector_memory(device: torch.device) -> tuple[list[Row], dict[str, float]]:
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "TQDM_DISABLE": "1"}
    peaks = {}
    for n in (1_000, 10_000):
        cmd = [sys.executable, str(Path(__file__).resolve()), "--device", str(device), "--collector-child", str(n)]
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        peaks[n] = int(result.stdout.split()[-1])
    rows = [
        Row(
            f"collector: peak extra memory, {n:,} pairs",
            float("nan"),
            f"{peaks[n] / 2**20:.1f} MiB, batch {BLOCK_BATCH}",
        )
        for n in peaks
    ]
    return rows, {"collector_memory_growth": peaks[10_000] / peaks[1_000]}


# --------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per fast measurement (median)")
    parser.add_argument("--train-images", type=int, default=10_000, help="CIFAR-sized images in the training epoch")
    parser.add_argument("--train-repeats", type=int, default=3, help="epochs per side (best is reported)")
    parser.add_argument(
        "--only",
        choices=["sweeps", "scoring", "layers", "groups", "network", "train", "memory"],
        help="run one part (the ratios it gives)",
    )
    parser.add_argument("--save", metavar="PATH", help="also write the report to PATH (e.g. metrics/benchmark.log)")
    parser.add_argument("--collector-child", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--groups-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    device = resolve_device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available here")
    if args.collector_child:
        print(collector_peak_bytes(args.collector_child, device))
        return
    if args.groups_child:
        _speed.enable()  # as a stage does
        first, later, n_groups, n_fast = group_setup_seconds(args.repeats)
        print(float(first), first.cpu, float(later), later.cpu, n_groups, n_fast)
        return

    os.environ.setdefault("TQDM_DISABLE", "1")  # the collector's and the training loop's progress bars
    _speed.enable()  # as every stage does (stage_main)
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    rows: list[Row] = []
    ratios: dict[str, float] = {}
    parts = {
        "sweeps": lambda: sweep_benchmarks(device, args.repeats),
        "scoring": lambda: scoring_benchmark(device, args.repeats),
        "layers": lambda: layer_benchmarks(device, args.repeats),
        "groups": lambda: groups_benchmark(device, args.repeats),
        "network": lambda: network_benchmark(device),
        "train": lambda: train_benchmark(device, args.train_images, args.train_repeats),
        "memory": lambda: collector_memory(device),
    }
    for name, part in parts.items():
        if args.only and name != args.only:
            continue
        new_rows, new_ratios = part()
        rows += new_rows
        ratios.update(new_ratios)

    cpu = f"{os.cpu_count()} CPU cores, {cpu_model() or 'unknown CPU'}"
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu
    lines = [
        f"{time.strftime('%Y-%m-%d %H:%M')}  device: {device} ({name}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads",
        # Other work on the machine slows the many small ops of our sides more than the baselines'.
        f"load average (1 min) before: {load_before:.2f}, after: {os.getloadavg()[0]:.2f}",
    ]
    width = max(len(row.name) for row in rows)
    lines.append(f"{'measurement':<{width}}  {'seconds':>8}  {'cpu s':>8}  note")
    for row in rows:
        seconds = "" if np.isnan(row.seconds) else f"{row.seconds:8.3f}"
        cpu = f"{row.seconds.cpu:8.2f}" if isinstance(row.seconds, Seconds) else ""
        lines.append(f"{row.name:<{width}}  {seconds:>8}  {cpu:>8}  {row.note}")
    lines += ["", f"{'ratio':<{width}}  {'value':>8}  {'':>8}  goal"]
    for key, value in ratios.items():
        goal, higher = GOALS[key]
        met = value >= goal if higher else value <= goal
        lines.append(
            f"{key:<{width}}  {value:8.2f}  {'':>8}  {'≥' if higher else '≤'} {goal:g} {'met' if met else 'NOT MET'}"
        )
    lines += [f"total benchmark time: {time.perf_counter() - started:.0f} s", ""]
    lines += [f"ratio {key}: {ratios[key]:.2f}" for key in GOALS if key in ratios]
    print("\n".join(lines))
    if args.save:  # e.g. metrics/benchmark.log, which tools/render_docs.py quotes in docs/performance.md
        Path(args.save).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
