"""The pruned model as the deliverable: pick the K to ship, build the physically smaller model
with its re-fitted decision folded in, and write it as a self-contained program
(`torch.export`, a .pt2 file) and as a state_dict the project's classes rebuild.
"""

from __future__ import annotations

import io
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from prunelab.comparison import max_k_within
from prunelab.efficiency import flops_per_sample, median_latencies, parameter_count
from prunelab.errors import UserError
from prunelab.evaluation import model_scores, snap_ties
from prunelab.models import PrunableNet, build_model
from prunelab.pruning import remove_channels
from prunelab.runtime import atomic_path, load_torch, save_torch
from prunelab.scores import fit_bias, fit_threshold, prior_adjusted
from prunelab.specs import InputSpec

WITHIN_POINTS = 1.0  # the shipped K keeps the study's mean score within this many points of K = 0


def choose_export(band: pd.DataFrame, criterion: str = "auto", k: str | int = "auto") -> tuple[str, int]:
    """(criterion, K) to ship. `band` is a study table (k, criterion, mean) of one score.

    auto K: for each criterion, the largest K such that the mean score at every K' <= K stays
    within WITHIN_POINTS of the unpruned model's; auto criterion: the one whose such K is
    largest (ties: the higher mean score there, then the order of the table). Zero-weights
    variants are not pruning and never shipped.
    """
    band = band[~band["criterion"].str.endswith("_zero_weights")]
    candidates = [criterion] if criterion != "auto" else list(dict.fromkeys(band["criterion"]))
    best: tuple[int, float, int, str] | None = None
    for position, name in enumerate(candidates):
        rows = band[band["criterion"] == name].sort_values("k")
        if rows.empty:
            raise UserError(f"params.yaml: export.criterion={name!r} has no results; allowed: a criterion of the study")
        ks, means = rows["k"].to_numpy(), rows["mean"].to_numpy()
        chosen = max_k_within(ks, means, means[0], WITHIN_POINTS) if k == "auto" else int(k)
        if chosen not in set(ks.tolist()):
            raise UserError(f"params.yaml: export.k={k} was not swept; allowed: a K of prune.ks")
        score = float(means[list(ks).index(chosen)])
        key = (chosen, score, -position, name)
        if best is None or key > best:
            best = key
    assert best is not None
    return best[3], best[0]


@torch.no_grad()
def fold_recalibrated_decision(
    model: PrunableNet, images: torch.Tensor, labels: torch.Tensor, n_classes: int
) -> PrunableNet:
    """Fit the decision on calibration data as the study does (two classes: the balanced
    threshold on the logit difference; more: the bias by cross-entropy, prior-adjusted) and
    fold it into the last layer's bias, so that argmax of the shipped model's logits is the
    recalibrated decision. Changes and returns `model`."""
    last = model.head.rest[-1]
    logits = model(images).double().numpy()[None]
    truth = labels.numpy()
    if n_classes == 2:
        threshold = float(fit_threshold(snap_ties(logits[..., 1] - logits[..., 0]), truth)[0])
        last.bias[1] -= threshold  # z1 − z0 > t  ⇔  (z1 − t) − z0 > 0
    else:
        bias = prior_adjusted(fit_bias(logits, truth, n_classes), truth, n_classes)[0]
        last.bias += torch.as_tensor(bias, dtype=last.bias.dtype)
    return model


def shipped_model(
    model: PrunableNet, removed: np.ndarray, calibration: tuple[torch.Tensor, torch.Tensor], n_classes: int
) -> PrunableNet:
    """The physically smaller model, its recalibrated decision folded in, in eval mode."""
    pruned = remove_channels(model, removed.tolist())
    return fold_recalibrated_decision(pruned, calibration[0], calibration[1], n_classes).eval()


def export_program(model: PrunableNet, example: torch.Tensor) -> torch.export.ExportedProgram:
    """`torch.export` of the model in eval mode, the batch dimension dynamic (any batch size)."""
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(model.eval(), (example,), dynamic_shapes=({0: batch},))
    # Each node records the source lines that made it, file paths included: the bytes would then
    # depend on where the project lives. The program runs the same without them.
    for node in program.graph.nodes:
        node.meta.pop("stack_trace", None)
    return program


def save_program(model: PrunableNet, example: torch.Tensor, path: Path) -> int:
    """A self-contained program: torch.export.load runs it without this project installed.
    Returns the file's size in bytes."""
    # An open file, not a name: the archive's records are then named the same on every run.
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        torch.export.save(export_program(model, example), handle)
    return path.stat().st_size


def save_rebuildable(model: PrunableNet, path: Path, facts: dict) -> None:
    """The state_dict plus what rebuilding needs (arch, input spec, removed channels), and the
    normalisation and provenance in `facts`; loads with weights_only=True."""
    save_torch(path, {"state_dict": {k: v.cpu() for k, v in model.state_dict().items()}, **facts})


def load_rebuildable(path: Path | str) -> PrunableNet:
    """Rebuild a shipped model with the project's classes from `save_rebuildable`'s file."""
    saved = load_torch(path, "exported model")
    spec = InputSpec(**saved["input"])
    model = remove_channels(build_model(saved["arch"], spec), list(saved["removed"]))
    model.load_state_dict(saved["state_dict"])
    return model.eval()


def program_bytes(model: torch.nn.Module, example: torch.Tensor) -> int:
    """Size of a model's torch.export program, as a .pt2 file holds it."""
    buffer = io.BytesIO()
    torch.export.save(export_program(model, example), buffer)
    return len(buffer.getvalue())


@torch.no_grad()
def compare_models(
    models: dict[str, PrunableNet],
    test: tuple[torch.Tensor, torch.Tensor],
    spec: InputSpec,
    example: torch.Tensor,
    known_bytes: dict[str, int] | None = None,
) -> dict:
    """Per model: parameters, FLOPs per sample, .pt2 size, test scores, and median CPU latency
    at batch 1 and 256 (all models timed in turn in this process); and the first model's
    figures over the second's as `ratio` (speed-ups: first's latency over second's). The
    batch-256 latency is also split by part (stem, block, head): what pruning can speed up.
    Latencies depend on the machine and its load: they are the one output not reproduced bit
    for bit."""
    out: dict = {}
    for name, net in models.items():
        out[name] = {
            "params": parameter_count(net),
            "flops_per_sample": flops_per_sample(net, spec),
            # Exporting takes seconds: a size already known (the saved file's) is not measured again.
            "program_bytes": (known_bytes or {}).get(name) or program_bytes(net, example),
            **{f"test_{key}": value for key, value in model_scores(net, *test, spec.n_classes).items()},
        }
    images = test[0]
    for batch, repeats in ((1, 200), (256, 20)):
        inputs = images[:batch] if len(images) >= batch else images.repeat(-(-batch // len(images)), 1, 1, 1)[:batch]
        for name, seconds in median_latencies(models, inputs, repeats).items():
            out[name][f"latency_ms_batch{batch}"] = 1000 * seconds
    # Where the time goes at batch 256: each part of each model timed in turn within every
    # repeat (drifting machine speed then hits all parts alike), on its real input.
    inputs = images[:256]
    calls = {}
    for name, net in models.items():
        stem_out = net.stem(inputs)
        block_out = net.block(stem_out)
        calls[name] = {"stem": (net.stem, inputs), "block": (net.block, stem_out), "head": (net.head, block_out)}
    times: dict[tuple[str, str], list[float]] = {(n, part): [] for n in calls for part in calls[n]}
    for _ in range(30):
        for (name, part), record in times.items():
            module, feed = calls[name][part]
            start = time.perf_counter()
            module(feed)
            record.append(time.perf_counter() - start)
    for (name, part), record in times.items():
        out[name][f"latency_ms_batch256_{part}"] = 1000 * statistics.median(record)
    first, second = (out[name] for name in models)
    ratio = {
        "params": first["params"] / second["params"],
        "flops": first["flops_per_sample"] / second["flops_per_sample"],
        "program_bytes": first["program_bytes"] / second["program_bytes"],
        "speedup_batch1": first["latency_ms_batch1"] / second["latency_ms_batch1"],
        "speedup_batch256": first["latency_ms_batch256"] / second["latency_ms_batch256"],
    }
    ratio["speedup_batch256_vs_flops"] = ratio["speedup_batch256"] / ratio["flops"]
    return {**out, "ratio": ratio}
