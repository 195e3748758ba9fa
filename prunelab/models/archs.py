"""The architectures, in one registry (`ARCHS`): names and facts without torch, builders on demand.

Params validation reads `ARCHS` (P, whether BatchNorm follows the pruned conv) in every
stage, torch-free ones included, so this module imports no torch and no model code: each
entry names its builder function in `prunelab.models`, and `prunelab.models.build_model`
looks it up there. Adding an architecture means writing its builder in `prunelab.models`
and adding one entry here (tests/test_models.py checks that each entry's facts are true).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Arch:
    builder: str  # name of a function InputSpec → PrunableNet in prunelab.models
    channels: int  # P, the pruned layer's output channels (known before building, for params checks)
    batchnorm: bool  # whether a BatchNorm follows the pruned conv (bn_gamma needs one)
    description: str


ARCHS: dict[str, Arch] = {
    "pair_cnn": Arch("pair_cnn", channels=128, batchnorm=True, description="the report's 3-block CNN, P=128"),
    "simple_cnn": Arch("simple_cnn", channels=32, batchnorm=False, description="the handout's SimpleCNN, P=32"),
}
