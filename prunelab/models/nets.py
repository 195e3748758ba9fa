"""Models, all behind one interface: a chain of modules with named prunable conv layers.

Every model is `stem → block → head` (the lab's view: `block` is the last conv layer, the one
the lab prunes) and, underneath, a *chain*: the flat sequence of modules its forward pass
applies one after the other (`PrunableNet.chain`). Its prunable conv layers, in order, are
`PrunableNet.layers`, named `conv1`, `conv2`, … Each `ConvLayer` says, by chain position,
where its conv, its BatchNorm and its *output* are (the channel map after BN, ReLU and
pooling: the tensor a channel mask multiplies) and which module *consumes* its channels (the
next conv, or the first Linear, whose input columns are grouped by channel).

Ranking, masking, removal, the fast sweep and scoring in `prunelab.pruning` are written once
against this interface, for any layer and any set of layers. Adding an architecture means
adding one builder here (or in a module of its own, named in `BUILDERS`) and naming it in
`prunelab.models.archs.ARCHS`.

The other architectures (`prunelab.models.resnets`, torchvision's by name in `prunelab.models.zoo`)
are plain `nn.Module`s: residual adds couple channels across layers, so their prunable layers are
found by tracing the built model rather than declared.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from prunelab.data.spec import InputSpec
from prunelab.errors import UserError
from prunelab.models.archs import ARCH_CHOICES, arch_of, torchvision_name, user_builder
from prunelab.models.resnets import resnet20, resnet56
from prunelab.models.user import user_model
from prunelab.models.zoo import torchvision_model
from prunelab.runtime import load_torch


class PrunedBlock(nn.Module):
    """conv → [BN] → ReLU → MaxPool2. The channels of `conv` are the ones we prune.

    The forward pass pools before the ReLU. Max pooling and ReLU commute (ReLU is monotone,
    so the largest of four ReLU outputs is the ReLU of the largest input), and the gradients
    agree too, so this is the same function; but the ReLU and its backward then touch a
    quarter of the elements, which on the CPU is about 12 % of a SimpleCNN training step
    (tests/test_models.py checks outputs and gradients against the literal order).
    """

    def __init__(self, conv: nn.Conv2d, bn: nn.BatchNorm2d | None):
        super().__init__()
        self.conv = conv
        self.bn = bn
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)

    @property
    def channels(self) -> int:
        return self.conv.out_channels

    def activation(self, conv_out: torch.Tensor) -> torch.Tensor:
        """The block's feature map after BN and ReLU, before pooling (M×N per channel)."""
        return self.relu(self.bn(conv_out) if self.bn is not None else conv_out)

    def finish(self, conv_out: torch.Tensor) -> torch.Tensor:
        """Everything after the conv: the block output for a given conv output,
        relu(pool(bn(conv_out))) ≡ pool(relu(bn(conv_out))) (see the class docstring)."""
        return self.relu(self.pool(self.bn(conv_out) if self.bn is not None else conv_out))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.finish(self.conv(h))


class Head(nn.Module):
    """Flatten → fc1 → rest. fc1's input columns for channel c are c*S … (c+1)*S − 1."""

    def __init__(self, fc1: nn.Linear, rest: nn.Sequential):
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc1 = fc1
        self.rest = rest

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.rest(self.fc1(self.flatten(z)))


@dataclass(frozen=True)
class ConvLayer:
    """One prunable conv layer, by its modules' positions in `PrunableNet.chain()`."""

    name: str  # conv1, conv2, … in forward order
    conv: int  # the Conv2d
    bn: int | None  # the BatchNorm2d right after it, if any
    output: int  # the last module before the consumer (Flatten aside): its output is the channel map
    consumer: int  # the next Conv2d or Linear: its input channels (or column groups) are this layer's
    channels: int  # output channels of the conv


# A layer's channel mask: 1 keeps a channel, 0 removes it. A bare tensor means the lab's layer (the last).
Masks = Mapping[str, torch.Tensor] | torch.Tensor


def _leaves(prefix: str, module: nn.Module) -> list[tuple[str, nn.Module]]:
    """The modules a Sequential-like module applies in turn, by path; a PrunedBlock or Head as its steps."""
    if isinstance(module, PrunedBlock):
        steps = ["conv", "bn", "pool", "relu"] if module.bn is not None else ["conv", "pool", "relu"]
        return [(f"{prefix}.{name}", getattr(module, name)) for name in steps]
    if isinstance(module, Head):
        return [
            (f"{prefix}.flatten", module.flatten),
            (f"{prefix}.fc1", module.fc1),
            *_leaves(f"{prefix}.rest", module.rest),
        ]
    if isinstance(module, nn.Sequential):
        return [leaf for name, child in module.named_children() for leaf in _leaves(f"{prefix}.{name}", child)]
    return [(prefix, module)]


class PrunableNet(nn.Module):
    def __init__(self, stem: nn.Module, block: PrunedBlock, head: Head):
        super().__init__()
        self.stem = stem
        self.block = block
        self.head = head

    @property
    def channels(self) -> int:
        """Output channels of the lab's layer (the last conv)."""
        return self.block.channels

    @property
    def group_names(self) -> dict[str, str]:
        """The lab's names for its channel groups (`prunelab.models.groups`): conv1, conv2, … in
        forward order, by the path of each conv."""
        chain = self.chain()
        return {chain[layer.conv][0]: layer.name for layer in self.layers}

    def chain(self) -> list[tuple[str, nn.Module]]:
        """(path, module) of every module the forward pass applies, in order: running them one
        after the other is the forward pass (tested). Built anew on each call, so it follows
        surgery that replaces modules."""
        return [*_leaves("stem", self.stem), *_leaves("block", self.block), *_leaves("head", self.head)]

    @property
    def layers(self) -> tuple[ConvLayer, ...]:
        """The prunable conv layers, in forward order: every Conv2d followed by a conv or a Linear."""
        modules = [module for _, module in self.chain()]
        convs = [i for i, m in enumerate(modules) if isinstance(m, nn.Conv2d)]
        found = []
        for number, at in enumerate(convs, start=1):
            consumer = next(j for j in range(at + 1, len(modules)) if isinstance(modules[j], nn.Conv2d | nn.Linear))
            output = consumer - 1
            while isinstance(modules[output], nn.Flatten):
                output -= 1
            bn = at + 1 if isinstance(modules[at + 1], nn.BatchNorm2d) else None
            channels = modules[at].out_channels
            found.append(ConvLayer(f"conv{number}", at, bn, output, consumer, channels))
        return tuple(found)

    def layer(self, name: str | None = None) -> ConvLayer:
        """A prunable layer by name; None is the lab's layer, the last conv."""
        layers = self.layers
        if name is None or name == "last":
            return layers[-1]
        for layer in layers:
            if layer.name == name:
                return layer
        raise ValueError(f"no layer {name!r}; this model has {', '.join(x.name for x in layers)}")

    def run(
        self, h: torch.Tensor, start: int = 0, stop: int | None = None, masks: Mapping[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """The chain's modules start … stop − 1 applied to `h`, each layer's channel map
        multiplied by its mask in `masks` (by layer name) where the range produces it."""
        at_output = {layer.output: masks[layer.name] for layer in self.layers if layer.name in (masks or {})}
        for i, (_, module) in enumerate(self.chain()[start:stop], start=start):
            h = module(h)
            if i in at_output:
                h = h * at_output[i].to(h.dtype).view(1, -1, 1, 1)
        return h

    def forward(self, x: torch.Tensor, channel_mask: Masks | None = None) -> torch.Tensor:
        """Logits; `channel_mask` zeroes channels: a tensor for the lab's layer, or a mask per layer name."""
        if channel_mask is None or isinstance(channel_mask, torch.Tensor):
            z = self.block(self.stem(x))
            if channel_mask is not None:
                z = z * channel_mask.to(z.dtype).view(1, -1, 1, 1)
            return self.head(z)
        unknown = set(channel_mask) - {layer.name for layer in self.layers}
        if unknown:
            raise ValueError(f"no layer {sorted(unknown)[0]!r} in this model")
        return self.run(x, masks=channel_mask)


def _conv_bn_relu_pool(c_in: int, c_out: int) -> nn.Sequential:
    """Conv → BN → ReLU → MaxPool, with the ReLU run after the pool: the same function and
    gradients, on a quarter of the elements (see `PrunedBlock`). State-dict keys are 0 (conv)
    and 1 (BN) either way."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=3, padding=1),
        nn.BatchNorm2d(c_out),
        nn.MaxPool2d(2),
        nn.ReLU(),
    )


def pair_cnn(spec: InputSpec) -> PrunableNet:
    """The report's network: 3 × (Conv3×3 → BN → ReLU → MaxPool2) with 32/64/128 channels,
    then Flatten → Linear(128·s·s → 256) → ReLU → Linear(256 → classes). For 28×28, s = 3."""
    stem = nn.Sequential(_conv_bn_relu_pool(spec.channels, 32), _conv_bn_relu_pool(32, 64))
    block = PrunedBlock(nn.Conv2d(64, 128, kernel_size=3, padding=1), nn.BatchNorm2d(128))
    side = spec.size // 8
    head = Head(nn.Linear(128 * side * side, 256), nn.Sequential(nn.ReLU(), nn.Linear(256, spec.n_classes)))
    return PrunableNet(stem, block, head)


def simple_cnn(spec: InputSpec) -> PrunableNet:
    """The handout's SimpleCNN: conv1 3→16 → ReLU → pool, conv2 16→32 → ReLU → pool,
    fc1 32·8·8 → 256 → ReLU → fc2 256 → 10 (for 3×32×32 CIFAR-10). No BatchNorm."""
    # conv1 → ReLU → pool in the handout; pooled first here, which is the same (see PrunedBlock).
    stem = nn.Sequential(nn.Conv2d(spec.channels, 16, kernel_size=3, padding=1), nn.MaxPool2d(2), nn.ReLU())
    block = PrunedBlock(nn.Conv2d(16, 32, kernel_size=3, padding=1), bn=None)
    side = spec.size // 4
    head = Head(nn.Linear(32 * side * side, 256), nn.Sequential(nn.ReLU(), nn.Linear(256, spec.n_classes)))
    return PrunableNet(stem, block, head)


# ARCHS (torch-free, in prunelab.models.archs) names each builder; the builders, by those names.
BUILDERS: dict[str, Callable[[InputSpec], nn.Module]] = {
    "pair_cnn": pair_cnn,
    "simple_cnn": simple_cnn,
    "resnet20": resnet20,
    "resnet56": resnet56,
}


def build_model(arch: str, spec: InputSpec) -> nn.Module:
    """A freshly initialised model of architecture `arch` for data `spec`: a `PrunableNet` for the
    lab's CNNs (pair_cnn, simple_cnn), a plain module for the ResNets, `torchvision:<name>` and the
    user's `<module>:<function>`."""
    entry = arch_of(arch)
    if entry is None:
        # Params validation refuses this first; callers that skip it get the same line.
        raise UserError(f"model.arch={arch!r} is invalid; allowed: {ARCH_CHOICES}")
    name = torchvision_name(arch)
    if name is not None:
        return torchvision_model(name, spec)
    if user_builder(arch) is not None:
        return user_model(arch, spec)
    return BUILDERS[entry.builder](spec)


def load_model(path: Path | str, arch: str, spec: InputSpec) -> nn.Module:
    """Build `arch` for `spec` and load a state_dict saved by the train stage (weights_only)."""
    state = load_torch(path, "model checkpoint")
    model = build_model(arch, spec)
    if not isinstance(state, dict):
        raise UserError(f"{path}: not a state_dict; delete it and rerun the train stage")
    expected, given = set(model.state_dict()), set(state)
    if expected != given:
        missing = sorted(expected - given)
        extra = sorted(given - expected)
        detail = f"missing {missing[:3]}" if missing else f"unexpected {extra[:3]}"
        raise UserError(f"{path}: checkpoint does not fit model.arch={arch} ({detail}); rerun the train stage")
    for name, tensor in model.state_dict().items():
        # weights_only also admits plain numbers and strings, which have no shape.
        shape = tuple(state[name].shape) if isinstance(state[name], torch.Tensor) else type(state[name]).__name__
        if shape != tuple(tensor.shape):
            raise UserError(
                f"{path}: checkpoint does not fit model.arch={arch} "
                f"({name} has shape {shape}, expected {tuple(tensor.shape)}); rerun the train stage"
            )
    model.load_state_dict(state)
    return model.eval()
