"""Fine-tuning after pruning: does a little more training erase the differences between criteria?

`finetune.ks` names its K by share of P (`half`, ...) or as integers, and `finetune.criteria`
may say `headline`; both are resolved by `named_k` and `finetune_criteria`, which live in the leaf
`prunelab.pruning.names` (params validation reads NAMED_KS there in every stage). torch is imported by
`finetune_pruned` only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

# Re-exported from the leaf where they live (params validation and the checks read it there).
from prunelab.pruning.names import NAMED_KS as NAMED_KS
from prunelab.pruning.names import finetune_criteria as finetune_criteria
from prunelab.pruning.names import named_k as named_k

if TYPE_CHECKING:
    import torch
    from torch import nn

    from prunelab.models.groups import ChannelGroup, Removal


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
    score: bool = True,
) -> tuple[nn.Module, dict[str, float]]:
    """Remove `removed` (channels per group name) for real,
    fine-tune the smaller model on the train split for `epochs` passes (fractions allowed),
    and score it on the test split, which only scores: the weights depend on the train split
    alone (tested). `model` is left unchanged. `score=False`: no test scores (an empty dict), for
    callers that score the model their own way (the budget stage, the export)."""
    from prunelab.models.groups import remove_channels
    from prunelab.models.training import finetune_batches, train_model
    from prunelab.scoring.evaluate import model_scores

    pruned = remove_channels(model.cpu(), groups, removed, train[0][:1].cpu())
    whole, batches = finetune_batches(epochs, len(train[1]), batch_size)
    # No evaluation after each epoch: a fine-tuned model is scored once, at the end.
    train_model(
        pruned, train, None, n_classes=n_classes, epochs=whole, batch_size=batch_size, lr=lr,
        class_weight=class_weight, device=device, seed=seed, label=label, max_batches=batches,
    )  # fmt: skip
    return pruned, model_scores(pruned, test[0], test[1], n_classes) if score else {}
