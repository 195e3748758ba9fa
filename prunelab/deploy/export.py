"""The pruned model as the deliverable: pick the K to ship, build the physically smaller model
with its re-fitted decision folded in, and write it as a self-contained program
(`torch.export`, a .pt2 file) and as a state_dict the project's classes rebuild.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from torch import nn

from prunelab.data.spec import InputSpec
from prunelab.errors import UserError
from prunelab.models.groups import Removal, example_input, find_groups, output_layer, remove_channels
from prunelab.models.nets import build_model
from prunelab.runtime import atomic_path, load_torch, save_torch
from prunelab.scoring.curves import WITHIN_POINTS, max_k_within
from prunelab.scoring.scores import fit_decision


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
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, n_classes: int
) -> nn.Module:
    """Fit the decision on calibration data as the study does (`prunelab.scoring.scores.fit_decision`:
    two classes, the balanced threshold on the logit difference; more, the bias by cross-entropy,
    prior-adjusted) and fold it into the last layer's bias, so that argmax of the shipped model's logits is the
    recalibrated decision. Changes and returns `model`."""
    last = model.get_submodule(output_layer(model, images[:1]))
    decision = fit_decision(model(images).double().numpy()[None], labels.numpy(), n_classes)
    if decision.threshold is not None:
        last.bias[1] -= float(decision.threshold[0])  # z1 − z0 > t  ⇔  (z1 − t) − z0 > 0
    else:
        assert decision.balanced_bias is not None
        last.bias += torch.as_tensor(decision.balanced_bias[0], dtype=last.bias.dtype)
    return model


def shipped_model(
    model: nn.Module, removed: Removal, calibration: tuple[torch.Tensor, torch.Tensor], n_classes: int
) -> nn.Module:
    """The physically smaller model (`removed`: channels per group name), its recalibrated
    decision folded in, in eval mode."""
    example = calibration[0][:1]
    pruned = remove_channels(model, find_groups(model, example), removed, example)
    return fold_recalibrated_decision(pruned, calibration[0], calibration[1], n_classes).eval()


def export_program(model: nn.Module, example: torch.Tensor) -> torch.export.ExportedProgram:
    """`torch.export` of the model in eval mode, the batch dimension dynamic (any batch size)."""
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(model.eval(), (example,), dynamic_shapes=({0: batch},))
    # Each node records the source lines that made it, file paths included: the bytes would then
    # depend on where the project lives. The program runs the same without them.
    for node in program.graph.nodes:
        node.meta.pop("stack_trace", None)
    return program


def save_program(model: nn.Module, example: torch.Tensor, path: Path) -> int:
    """A self-contained program: torch.export.load runs it without this project installed.
    Returns the file's size in bytes."""
    # An open file, not a name: the archive's records are then named the same on every run.
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        torch.export.save(export_program(model, example), handle)
    return path.stat().st_size


def save_rebuildable(model: nn.Module, path: Path, facts: dict) -> None:
    """The state_dict plus what rebuilding needs (arch, input spec, removed channels), and the
    normalisation and provenance in `facts`; loads with weights_only=True."""
    save_torch(path, {"state_dict": {k: v.cpu() for k, v in model.state_dict().items()}, **facts})


def load_rebuildable(path: Path | str) -> nn.Module:
    """Rebuild a shipped model from `save_rebuildable`'s file: the architecture built afresh, the
    removed channels replayed group by group (weights_only=True: no pickled modules)."""
    saved = load_torch(path, "exported model")
    spec = InputSpec(**saved["input"])
    removed = saved["removed"]  # {group: channels}
    if not isinstance(removed, dict):  # older files held the last conv's channels as a bare list
        raise UserError(f"{path}: written by an older version (removed channels not by group); rerun export")
    unpruned = build_model(saved["arch"], spec)
    example = example_input(spec)
    model = remove_channels(unpruned, find_groups(unpruned, example), removed, example)
    model.load_state_dict(saved["state_dict"])
    return model.eval()
