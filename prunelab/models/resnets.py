"""The CIFAR ResNets of He et al. 2016 (§4.2): `resnet20` (n=3) and `resnet56` (n=9), depth 6n+2.

3×3 conv stem (16 channels) → BN → ReLU, three stages of n basic blocks at 16/32/64 channels
with strides 1/2/2, global average pooling, one Linear to the classes.

Shortcuts are the paper's OPTION B: a 1×1 conv with stride, then BN, where a block changes the
shape (the first block of stages 2 and 3), identity elsewhere. Option B is what Torch-Pruning's
own CIFAR ResNet-56 uses, and its projection is a prunable conv with weights; option A's
zero-padded, strided slicing has no weights to rank or remove and ties a block's output channels
to its input channels by index. The two projections add 2 convs and 2 BNs to the paper's 6n+1 convs.

Measured at 3×32×32 with 10 classes (torch.utils.flop_counter.FlopCounterMode, MACs = FLOPs/2:
the convs and the Linear, not BN, ReLU, the adds or the pool; tests/test_archs.py checks them).
Option B's two projections add 2 752 parameters and 0.26 M MACs to option A's network:

=========  ============  =========  ==============================
model      parameters    MACs       paper (option A)
=========  ============  =========  ==============================
resnet20   272 474       40.81 M    0.27 M params, about 41 M MACs
resnet56   855 770       125.75 M   0.85 M params, about 126 M MACs
=========  ============  =========  ==============================

Module names follow torchvision (`conv1`, `bn1`, `layer1.0.conv1`, `layer2.0.shortcut.0`, `fc`),
and every ReLU is its own module, used once per forward: forward hooks on a module that is
called twice would fire twice and mix two activations into one record.
"""

from __future__ import annotations

import torch
from torch import nn

from prunelab.data.spec import InputSpec

WIDTHS = (16, 32, 64)  # channels of the stem and of stages 1, 2, 3
STRIDES = (1, 2, 2)


class BasicBlock(nn.Module):
    """conv3×3 → BN → ReLU → conv3×3 → BN, plus the shortcut, then ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(c_out, c_out, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        # Option B: a projection (prunable 1×1 conv + BN) only where the shape changes.
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )
        self.relu2 = nn.ReLU()  # after the add: a module of its own, never relu1 again

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """Stem, three stages of `blocks` basic blocks each, global average pool, fc."""

    def __init__(self, blocks: int, in_channels: int, num_classes: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, WIDTHS[0], kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(WIDTHS[0])
        self.relu = nn.ReLU()
        c_in = WIDTHS[0]
        stages = []
        for width, stride in zip(WIDTHS, STRIDES, strict=True):
            stage = []
            for i in range(blocks):
                stage.append(BasicBlock(c_in, width, stride if i == 0 else 1))
                c_in = width
            stages.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3 = stages
        # Adaptive, so any input side >= 8 (two stride-2 stages leave at least 2×2) works.
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(WIDTHS[-1], num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                # He et al. 2015 initialisation, as the paper trains its CIFAR ResNets.
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.relu(self.bn1(self.conv1(x)))
        h = self.layer3(self.layer2(self.layer1(h)))
        return self.fc(torch.flatten(self.avgpool(h), 1))


def cifar_resnet(depth: int, spec: InputSpec) -> CifarResNet:
    """A CIFAR ResNet of depth 6n+2 for data `spec`."""
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"a CIFAR ResNet has depth 6n+2 (20, 32, 44, 56, 110, …), not {depth}")
    return CifarResNet((depth - 2) // 6, spec.channels, spec.n_classes)


def resnet20(spec: InputSpec) -> CifarResNet:
    """ResNet-20 (n=3): 19 convs + 2 projection shortcuts + fc; about 0.27 M parameters."""
    return cifar_resnet(20, spec)


def resnet56(spec: InputSpec) -> CifarResNet:
    """ResNet-56 (n=9): 55 convs + 2 projection shortcuts + fc; about 0.86 M parameters."""
    return cifar_resnet(56, spec)
