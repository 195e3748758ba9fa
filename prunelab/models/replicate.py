"""What every model stage starts from: one replicate's prepared data, its model and channel groups.

`open_replicate` is the start-up the model stages shared line for line: seed every generator with the
replicate's seed (before anything that draws), read the prepared folder's info.json, load the trained
model (or, for the latency table, build the architecture afresh: timing does not depend on weights),
trace its channel groups on a one-sample input and check them against params.yaml (`prune.layer`,
`budget.round_to`), so a stage refuses a model its params do not fit before any work.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from prunelab.data.prepared import load_info, load_split
from prunelab.models.groups import example_input, find_groups
from prunelab.models.nets import build_model, load_model
from prunelab.paths import model_path, prepared_dir
from prunelab.runtime import seed_everything

if TYPE_CHECKING:
    import torch
    from torch import nn

    from prunelab.data.records import DatasetInfo
    from prunelab.models.records import ChannelGroup
    from prunelab.params import Params


@dataclass(frozen=True)
class Replicate:
    """One seed's prepared data (`folder`, `info`), model (on the CPU, eval mode), the one-sample
    input its groups were traced on, and its channel groups."""

    seed: int
    folder: Path
    info: DatasetInfo
    model: nn.Module
    example: torch.Tensor
    groups: tuple[ChannelGroup, ...]

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The prepared split `name` (train, val, test) as tensors, checked on read."""
        return load_split(name, self.folder, self.info)


def open_replicate(params: Params, seed: int, trained: bool = True) -> Replicate:
    """Seed `seed`'s replicate as a model stage starts from it; `trained=False` builds model.arch
    afresh (seeded) instead of loading data/seeds/<seed>/model.pt."""
    seed_everything(seed)
    folder = prepared_dir(seed)
    info = load_info(folder)
    arch = params.model.arch
    model = load_model(model_path(seed), arch, info.input) if trained else build_model(arch, info.input).eval()
    example = example_input(info.input)
    groups = find_groups(model, example)
    params.check_groups(groups)
    return Replicate(seed, folder, info, model, example, tuple(groups))
