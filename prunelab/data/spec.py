"""What the data looks like, as the models need to know it. No dependencies, no torch."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class InputSpec:
    """Input channels, image side and class count; models derive their layer sizes from it."""

    channels: int
    size: int
    n_classes: int
