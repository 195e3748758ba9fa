"""Models, all behind one interface: stem → pruned block → head.

* `stem`: everything before the pruned convolution.
* `block`: the pruned convolution and what follows it up to the head: conv → [BN] → ReLU
  → MaxPool. Its output is the tensor a channel mask multiplies.
* `head`: Flatten → `fc1` (the first Linear, whose input columns are grouped by channel)
  → `rest`.

Ranking, masking, removal and the fast sweep in `prunelab.pruning` are written once against
this interface. Adding an architecture means adding one builder here and naming it in
`prunelab.archs.ARCHS`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from prunelab.data.spec import InputSpec
from prunelab.errors import UserError
from prunelab.models.archs import ARCHS
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


class PrunableNet(nn.Module):
    def __init__(self, stem: nn.Module, block: PrunedBlock, head: Head):
        super().__init__()
        self.stem = stem
        self.block = block
        self.head = head

    @property
    def channels(self) -> int:
        return self.block.channels

    def forward(self, x: torch.Tensor, channel_mask: torch.Tensor | None = None) -> torch.Tensor:
        z = self.block(self.stem(x))
        if channel_mask is not None:
            z = z * channel_mask.to(z.dtype).view(1, -1, 1, 1)
        return self.head(z)


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


def build_model(arch: str, spec: InputSpec) -> PrunableNet:
    """A freshly initialised model of architecture `arch` (a key of ARCHS) for data `spec`."""
    # ARCHS (torch-free, in prunelab.archs) names each builder; the builders live here.
    return globals()[ARCHS[arch].builder](spec)


def load_model(path: Path | str, arch: str, spec: InputSpec) -> PrunableNet:
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
