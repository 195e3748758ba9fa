"""What the shipped model buys on this machine: sizes, FLOPs, scores and CPU latency, unpruned
against exported, every model (and every part of it) timed in turn in one process so that a
drifting machine speed hits them alike. Latencies depend on the machine and its load: they are
the one output not reproduced bit for bit.
"""

from __future__ import annotations

import io
import statistics
import time
from collections.abc import Callable, Hashable
from pathlib import Path

import numpy as np
import torch
from torch import fx, nn

from prunelab.data.spec import InputSpec
from prunelab.deploy.export import export_program
from prunelab.deploy.formats import deployed
from prunelab.models.cost import flops_per_sample, parameter_count
from prunelab.scoring.evaluate import model_scores


def interleaved_times(
    calls: dict[Hashable, Callable[[], object]], repeats: int, warmup: int = 0
) -> dict[Hashable, list[float]]:
    """Seconds of each call in every round, the calls timed in turn (A B A B …) `repeats` times
    after `warmup` untimed rounds: drifting machine speed then hits all of them alike, and round i
    of one call pairs with round i of another."""
    for _ in range(warmup):
        for call in calls.values():
            call()
    times: dict[Hashable, list[float]] = {key: [] for key in calls}
    for _ in range(repeats):
        for key, call in calls.items():
            start = time.perf_counter()
            call()
            times[key].append(time.perf_counter() - start)
    return times


def interleaved_medians(calls: dict[Hashable, Callable[[], object]], repeats: int, warmup: int = 0) -> dict:
    """Median seconds of each call, timed in turn (`interleaved_times`)."""
    return {key: statistics.median(values) for key, values in interleaved_times(calls, repeats, warmup).items()}


@torch.no_grad()
def latency_rounds(
    models: dict[str, torch.nn.Module], batch: torch.Tensor, repeats: int, warmup: int = 3
) -> dict[str, list[float]]:
    """Seconds per forward pass of each model on `batch` in every round, the models timed in turn."""
    for model in models.values():
        model.eval()
    return interleaved_times({name: (lambda m=model: m(batch)) for name, model in models.items()}, repeats, warmup)


def batch_of(images: torch.Tensor, size: int) -> torch.Tensor:
    """The first `size` images, repeated in turn when there are fewer (a tiny test split still times a full batch)."""
    return images[:size] if len(images) >= size else images.repeat(-(-size // len(images)), 1, 1, 1)[:size]


@torch.no_grad()
def quick_speedup(reference: nn.Module, candidate: nn.Module, images: torch.Tensor, rounds: int = 10) -> float:
    """The median paired speed-up of `candidate` over `reference` at batch 256 (`rounds` interleaved
    rounds after warm-up): export's check that a configuration is faster before it ships it."""
    batch = batch_of(images, 256)
    times = latency_rounds({"reference": reference, "candidate": candidate}, batch, rounds, warmup=2)
    return statistics.median(r / c for r, c in zip(times["reference"], times["candidate"], strict=True))


SPEEDUP_RESAMPLES = 2000
SPEEDUP_ROUNDS = 30  # paired batch-256 rounds per model (params.yaml's export.rounds): the speed-up's interval


def speedup_interval(slow: list[float], fast: list[float], seed: int = 0) -> tuple[float, float]:
    """95 % percentile-bootstrap interval of the median paired speed-up `slow[i] / fast[i]` (round i
    of both timed back to back): the spread a rerun on this machine would show, not one draw.
    Resamples are drawn from a fixed generator, so the interval is a function of the timings."""
    ratios = np.asarray(slow) / np.asarray(fast)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(ratios), (SPEEDUP_RESAMPLES, len(ratios)))
    medians = np.median(ratios[picks], axis=1)
    low, high = np.percentile(medians, [2.5, 97.5])
    return float(low), float(high)


def program_bytes(model: torch.nn.Module, example: torch.Tensor) -> int:
    """Size of a model's torch.export program, as a .pt2 file holds it."""
    buffer = io.BytesIO()
    torch.export.save(export_program(model, example), buffer)
    return len(buffer.getvalue())


def model_parts(net: nn.Module, example: torch.Tensor) -> dict[str, tuple[fx.GraphModule, fx.GraphModule]]:
    """The forward pass cut where it is one tensor, at the input of each channel group's first
    producer (a block input: everything after it reads it alone) and at the last group's read
    point: {part name: (input → the part's input, the part)}. Each part is named by the group whose
    producer starts it (`conv1`, `layer2.0.conv1`), the last one `head`; a group whose producer
    input is not such a cut (a residual block's second conv, whose skip tensor runs beside it)
    belongs to the part before it."""
    from prunelab.models.graph import extras_after, output_node, placeholders, subgraph, trace
    from prunelab.models.groups import find_groups
    from prunelab.pruning.views import GroupView

    gm = trace(net)
    (x,) = placeholders(gm)[:1]
    groups = find_groups(net, example)
    starts: list[tuple[str, fx.Node]] = []
    for group in groups:
        node = next(n for n in gm.graph.nodes if n.op == "call_module" and n.target == group.producer)
        start = node.args[0]
        if start is x or not extras_after(gm, start)[1]:
            if not any(s is start for _, s in starts):
                starts.append((group.name, start))
    view = GroupView.of(net, groups[-1], gm)  # the head starts where the last group's channels are read
    head = next(n for n in gm.graph.nodes if n.name == view.mask_points[-1])
    if not extras_after(gm, head)[1]:
        starts.append(("head", head))
    logits = output_node(gm).args[0]
    parts = {}
    for (name, begin), (_, end) in zip(starts, [*starts[1:], ("", logits)], strict=True):
        before = subgraph(gm, [x], [begin]) if begin is not x else nn.Identity()
        parts[name] = (before, subgraph(gm, [begin], [end]))
    return parts


@torch.no_grad()
def compare_models(
    models: dict[str, nn.Module],
    test: tuple[torch.Tensor, torch.Tensor],
    spec: InputSpec,
    example: torch.Tensor,
    known_bytes: dict[str, int] | None = None,
    onnx_files: dict[str, Path] | None = None,
    rounds: int = SPEEDUP_ROUNDS,
) -> dict:
    """Per model: parameters and FLOPs per sample (of the model as trained), and, in the
    shipped format (`prunelab.deploy.formats.deployed`: BatchNorm folded, channels-last), the
    .pt2 size, test scores and median CPU latency at batch 1 and 256 (all models timed in turn
    in this process); also the batch-256 latency as trained (`latency_ms_batch256_eager`), to
    show what the format alone buys. `ratio` is the first model's figures over the second's
    (speed-ups: first's latency over second's), always between two models in the same format,
    so folding is never counted as pruning's gain. The batch-256 latency is also split by part
    (each conv layer, and the head): what pruning each layer can speed up. With `onnx_files` (each
    model's ONNX file), also each model's batch-256 latency under ONNX Runtime (`prunelab.deploy.onnx`)
    and the largest difference between its logits and torch's. Every batch-256 latency (in torch, per part,
    under ONNX Runtime) is the median of `rounds` paired rounds. Latencies depend on the machine and its
    load: they are the one output not reproduced bit for bit."""
    shipped = {name: deployed(net) for name, net in models.items()}
    out: dict = {}
    for name, net in models.items():
        out[name] = {
            "params": parameter_count(net),
            "flops_per_sample": flops_per_sample(net, spec),
            # Exporting takes seconds: a size already known (the saved file's) is not measured again.
            "program_bytes": (known_bytes or {}).get(name) or program_bytes(shipped[name], example),
            **{f"test_{key}": value for key, value in model_scores(shipped[name], *test, spec.n_classes).items()},
        }
    images = test[0]
    paired: dict[str, list[float]] = {}
    for batch, repeats in ((1, 200), (256, rounds)):
        inputs = batch_of(images, batch)
        timed: dict[str, torch.nn.Module] = dict(shipped)
        if batch == 256:
            timed.update({f"{name}_eager": net for name, net in models.items()})
        for key, seconds in latency_rounds(timed, inputs, repeats).items():
            suffix = "_eager" if key.endswith("_eager") else ""
            out[key.removesuffix("_eager")][f"latency_ms_batch{batch}{suffix}"] = 1000 * statistics.median(seconds)
            if batch == 256 and not suffix:
                paired[key] = seconds
    # Where the time goes at batch 256: each conv layer (conv → [BN] → pooling → ReLU, BN folded)
    # and the head, of each model, timed in turn within every repeat (drifting machine speed then
    # hits all parts alike), each on its real input: channels-last maps, as the deployed forward
    # feeds its net.
    inputs = images[:256].contiguous(memory_format=torch.channels_last)
    parts: dict[tuple[str, str], Callable[[], object]] = {}
    for name, deployed_net in shipped.items():
        for part, (before, run) in model_parts(deployed_net.net, example[:1].cpu()).items():
            feed = before(inputs)
            parts[(name, part)] = lambda run=run, x=feed: run(x)
    for (name, part), seconds in interleaved_medians(parts, rounds).items():
        out[name][f"latency_ms_batch256_{part}"] = 1000 * seconds
    first, second = (out[name] for name in models)
    ratio = {
        "params": first["params"] / second["params"],
        "flops": first["flops_per_sample"] / second["flops_per_sample"],
        "program_bytes": first["program_bytes"] / second["program_bytes"],
        "speedup_batch1": first["latency_ms_batch1"] / second["latency_ms_batch1"],
        "speedup_batch256": first["latency_ms_batch256"] / second["latency_ms_batch256"],
        "speedup_batch256_eager": first["latency_ms_batch256_eager"] / second["latency_ms_batch256_eager"],
    }
    if onnx_files:
        latencies, diffs = _onnxruntime(models, onnx_files, images, paired, rounds)
        for name, milliseconds in latencies.items():
            out[name]["latency_ms_batch256_onnxruntime"] = milliseconds
        ratio["speedup_batch256_onnxruntime"] = (
            first["latency_ms_batch256_onnxruntime"] / second["latency_ms_batch256_onnxruntime"]
        )
    ratio["speedup_batch256_vs_flops"] = ratio["speedup_batch256"] / ratio["flops"]
    # The speed-up is the one output that moves run to run: its interval over the paired rounds.
    first_name, second_name = models
    low, high = speedup_interval(paired[first_name], paired[second_name])
    ratio |= {"speedup_batch256_low": low, "speedup_batch256_high": high, "speedup_rounds": len(paired[first_name])}
    if onnx_files:
        low, high = speedup_interval(paired[f"{first_name}_onnxruntime"], paired[f"{second_name}_onnxruntime"])
        ratio |= {"speedup_batch256_onnxruntime_low": low, "speedup_batch256_onnxruntime_high": high}
        out["onnxruntime_max_abs_logit_diff"] = max(diffs.values())
    return {**out, "ratio": ratio}


def _onnxruntime(
    models: dict[str, nn.Module],
    onnx_files: dict[str, Path],
    images: torch.Tensor,
    paired: dict[str, list[float]],
    rounds: int,
) -> tuple[dict[str, float], dict[str, float]]:
    """Each model under ONNX Runtime: its batch-256 latency in ms (the models' sessions timed in turn,
    `rounds` rounds, added to `paired` as `<name>_onnxruntime`), and its logits' largest
    difference from torch's on the first 256 test images."""
    from prunelab.deploy.onnx import run_session, session

    batch = batch_of(images, 256)
    sessions = {name: session(onnx_files[name]) for name in models}
    diffs = {
        name: float(np.abs(run_session(sessions[name], batch) - model.eval()(batch).numpy()).max())
        for name, model in models.items()
    }
    calls = {name: (lambda s=s: run_session(s, batch)) for name, s in sessions.items()}
    latencies = {}
    for name, seconds in interleaved_times(calls, rounds, warmup=3).items():
        paired[f"{name}_onnxruntime"] = seconds
        latencies[name] = 1000 * statistics.median(seconds)
    return latencies, diffs
