"""A small residual network, written the way a user writes one: the README's "Prune your own model"
example (`model.arch: examples.your_model.net:build`).

The pipeline calls `build(num_classes=N, in_channels=C)` and prunes whatever it returns by channel
groups: here the stem's channels and both blocks' second convs are one group (the residual adds
couple them), and each block's first conv is a group of its own.
"""

from torch import nn


class Block(nn.Module):
    """conv → BN → ReLU → conv → BN, plus the input (an identity shortcut), then ReLU."""

    def __init__(self, width: int):
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + x)


class TinyResNet(nn.Module):
    def __init__(self, num_classes: int, in_channels: int, width: int = 32):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        )
        self.blocks = nn.Sequential(Block(width), nn.MaxPool2d(2), Block(width))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes))

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)))


def build(num_classes: int, in_channels: int) -> nn.Module:
    return TinyResNet(num_classes, in_channels)
