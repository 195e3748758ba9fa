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
    layers: tuple[tuple[str, int], ...]  # (name, output channels) of each prunable conv, in forward order
    batchnorm: bool  # whether a BatchNorm follows every conv (bn_gamma needs one)
    description: str

    @property
    def last_layer(self) -> str:
        """The lab's layer: the last conv."""
        return self.layers[-1][0]

    def layer_name(self, layer: str) -> str:
        """`prune.layer` as a layer name: `last` is the last conv."""
        return self.last_layer if layer == "last" else layer

    def channels_of(self, layer: str = "last") -> int:
        """P of a layer (`last`: the lab's layer), known before building, for params checks."""
        return dict(self.layers)[self.layer_name(layer)]

    @property
    def channels(self) -> int:
        """P of the lab's layer, the last conv."""
        return self.channels_of("last")


ARCHS: dict[str, Arch] = {
    "pair_cnn": Arch(
        "pair_cnn", layers=(("conv1", 32), ("conv2", 64), ("conv3", 128)), batchnorm=True,
        description="the report's 3-block CNN, P=128",
    ),
    "simple_cnn": Arch(
        "simple_cnn", layers=(("conv1", 16), ("conv2", 32)), batchnorm=False,
        description="the handout's SimpleCNN, P=32",
    ),
}  # fmt: skip
