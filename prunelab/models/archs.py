"""The architectures, in one registry (`ARCHS`): names and facts without torch, builders on demand.

Params validation reads `ARCHS` (P, whether BatchNorm follows the pruned conv) in every
stage, torch-free ones included, so this module imports no torch and no model code: each
entry names its builder function in `prunelab.models`, and `prunelab.models.build_model`
looks it up there. Adding an architecture means writing its builder in `prunelab.models`
and adding one entry here (tests/test_models.py checks that each entry's facts are true).

Besides the registry's names, `model.arch` may name any classification model of torchvision as
`torchvision:<name>` (`arch_of`). Which names torchvision has is only known with torchvision
imported, so params validation accepts any such name and `build_model` refuses an unknown one.
For those, and for the residual networks, the prunable layers are known only after tracing the
built model (`Arch.layers is None`): the params checks that need them are left to the stages.

`model.arch` may also name the user's own builder as `<module>:<function>` (`user_builder`), e.g.
`my_models.net:build`: a function called as `function(num_classes=N, in_channels=C)` that returns an
`nn.Module` (`prunelab.models.user`). Its file is found here without importing it (`builder_file`), so
params validation can check it exists and lies inside `model.source`, DVC's dependency for it.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

TORCHVISION = "torchvision:"  # model.arch prefix of a torchvision classification model
# <dotted module>:<function>, both Python identifiers
USER_ARCH = re.compile(r"^(?P<module>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):(?P<function>[A-Za-z_]\w*)$")


@dataclass(frozen=True)
class Arch:
    builder: str  # name of a function InputSpec → nn.Module in prunelab.models ("torchvision": by its name)
    # (name, output channels) of each prunable conv, in forward order; None: known after tracing the built model
    layers: tuple[tuple[str, int], ...] | None
    batchnorm: bool | None  # whether a BatchNorm follows every conv (bn_gamma needs one); None: after tracing
    description: str

    @property
    def traced(self) -> bool:
        """Whether the prunable layers are known only from the built model (not to params validation)."""
        return self.layers is None

    def _layers(self) -> tuple[tuple[str, int], ...]:
        if self.layers is None:
            raise ValueError(f"{self.description}: its prunable layers are known only after tracing the built model")
        return self.layers

    @property
    def last_layer(self) -> str:
        """The lab's layer: the last conv."""
        return self._layers()[-1][0]

    def layer_name(self, layer: str) -> str:
        """`prune.layer` as a layer name: `last` is the last conv."""
        return self.last_layer if layer == "last" else layer

    def channels_of(self, layer: str = "last") -> int:
        """P of a layer (`last`: the lab's layer), known before building, for params checks."""
        return dict(self._layers())[self.layer_name(layer)]

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
    # Residual adds couple channels across blocks: which convs are prunable, and together, is traced.
    "resnet20": Arch(
        "resnet20", layers=None, batchnorm=True,
        description="He et al.'s CIFAR ResNet-20, option B shortcuts",
    ),
    "resnet56": Arch(
        "resnet56", layers=None, batchnorm=True,
        description="He et al.'s CIFAR ResNet-56, option B shortcuts",
    ),
}  # fmt: skip

# model.arch's allowed text: params validation's, and build_model's for a name validation never saw.
ARCH_CHOICES = (
    f"one of {', '.join(ARCHS)}, {TORCHVISION}<name> (a classification model of torchvision.models) "
    "or <module>:<function> (your builder, called as function(num_classes=N, in_channels=C))"
)


def torchvision_name(arch: str) -> str | None:
    """The torchvision model `arch` names (`torchvision:resnet18` → `resnet18`), or None."""
    name = arch.removeprefix(TORCHVISION)
    return name if name and name != arch else None


def user_builder(arch: str) -> tuple[str, str] | None:
    """(module, function) of a user's `<module>:<function>`, or None (a registry or torchvision name)."""
    if arch.startswith(TORCHVISION):
        return None
    found = USER_ARCH.match(arch)
    if found is None or found["module"].lower() == TORCHVISION[:-1]:  # `Torchvision:x` is a typo, not a module
        return None
    return found["module"], found["function"]


def builder_file(module: str, search: list[str] | None = None) -> Path | None:
    """The source file of `module` (dotted) on the import path, found without importing anything:
    `<entry>/a/b.py` or `<entry>/a/b/__init__.py` for the first entry of `search` (default: the
    project root, where DVC runs the stages, then `sys.path`, which holds PYTHONPATH) that has it;
    None if none has.
    Compiled or zipped modules are not found: a builder is a Python file the user edits."""
    parts = module.split(".")
    for entry in [".", *sys.path] if search is None else search:
        base = Path(entry or ".")
        for candidate in (base.joinpath(*parts).with_suffix(".py"), base.joinpath(*parts, "__init__.py")):
            if candidate.is_file():
                return candidate
    return None


def arch_of(arch: str) -> Arch | None:
    """The facts of `model.arch` known without torch: the registry's entry, a generic entry for
    `torchvision:<name>` or a user's `<module>:<function>` (layers and BatchNorm known after
    tracing), or None for an unknown name."""
    if arch in ARCHS:
        return ARCHS[arch]
    name = torchvision_name(arch)
    if name is not None:
        return Arch("torchvision", layers=None, batchnorm=None, description=f"torchvision's {name}, untrained")
    if user_builder(arch) is not None:
        return Arch("user", layers=None, batchnorm=None, description=f"your builder {arch}")
    return None
