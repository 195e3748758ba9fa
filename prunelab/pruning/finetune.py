"""Fine-tuning after pruning: does a little more training erase the differences between criteria?

`finetune.ks` names its K by share of P (`half`, ...) or as integers, and `finetune.criteria`
may say `headline`; both are resolved here, where they change what runs. torch is imported by
`finetune_pruned` only: params validation reads NAMED_KS in every stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from torch import nn

    from prunelab.models.groups import ChannelGroup, Removal

# Named fine-tuning points, as shares of P, so one default fits every architecture.
NAMED_KS = {"quarter": 0.25, "half": 0.5, "three_quarters": 0.75}


def named_k(name: str | int, channels: int) -> int:
    """A fine-tuning K: an integer, or a NAMED_KS share of P."""
    return name if isinstance(name, int) else int(NAMED_KS[name] * channels)


def finetune_criteria(requested: Sequence[str], ranked: Sequence[str]) -> list[str]:
    """finetune.criteria as the study runs them: `headline` is the first of prune.criteria
    (`ranked`), names prune.criteria does not rank are left out, each once, in the given order."""
    resolved = [ranked[0] if c == "headline" else c for c in requested]
    return [c for c in dict.fromkeys(resolved) if c in ranked]


def finetune_pruned(
    model: nn.Module,
    groups: Sequence[ChannelGroup],
    removed: Removal,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    *,
    n_classes: int,
    epochs: float,
    lr: float,
    batch_size: int,
    class_weight: str,
    device: torch.device,
    seed: int,
    label: str = "finetune",
) -> tuple[nn.Module, dict[str, float]]:
    """Remove `removed` (channels per group name) for real,
    fine-tune the smaller model on the train split for `epochs` passes (fractions allowed),
    and score it on the test split, which only scores: the weights depend on the train split
    alone (tested). `model` is left unchanged."""
    from prunelab.models.groups import remove_channels
    from prunelab.models.training import finetune_batches, train_model
    from prunelab.scoring.evaluate import model_scores

    pruned = remove_channels(model.cpu(), groups, removed, train[0][:1].cpu())
    whole, batches = finetune_batches(epochs, len(train[1]), batch_size)
    train_model(
        pruned, train, test, n_classes=n_classes, epochs=whole, batch_size=batch_size, lr=lr,
        class_weight=class_weight, device=device, seed=seed, label=label, max_batches=batches,
    )  # fmt: skip
    return pruned, model_scores(pruned, test[0], test[1], n_classes)
