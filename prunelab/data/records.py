"""Plain records of the prepared data, with no project import but the input spec (itself a leaf):
what preparing, loading, the checks and the stages pass around. `prunelab.data.prepared` reads and
writes them; `prunelab.prepare.tasks` makes them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from prunelab.data.spec import InputSpec


@dataclass(frozen=True)
class DatasetInfo:
    source: str
    task: str
    input: InputSpec
    mean: tuple[float, ...]
    std: tuple[float, ...]
    # A folder source's class names (label i is classes[i]) and the sha256 of the files it read; its
    # mean and std are then the train split's statistics (`normalisation` says so in info.json).
    classes: tuple[str, ...] | None = None
    listing: str | None = None

    def to_json(self) -> dict:
        raw = {
            "source": self.source,
            "task": self.task,
            "channels": self.input.channels,
            "size": self.input.size,
            "n_classes": self.input.n_classes,
            "mean": list(self.mean),
            "std": list(self.std),
        }
        if self.listing is not None:  # only a folder source: the registered ones' info.json is as before
            raw |= {"normalisation": "train split", "classes": list(self.classes or ()), "listing_sha256": self.listing}
        return raw

    @staticmethod
    def from_json(raw: dict) -> DatasetInfo:
        spec = InputSpec(raw["channels"], raw["size"], raw["n_classes"])
        classes = tuple(raw["classes"]) if "classes" in raw else None
        return DatasetInfo(
            raw["source"], raw["task"], spec, tuple(raw["mean"]), tuple(raw["std"]), classes, raw.get("listing_sha256")
        )


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # uint8, N×C'×H×W (C' = 2·C for pairs)
    labels: np.ndarray  # int64
    image_ids: np.ndarray  # int64, N×2 (pairs) or N×1: pool indices, to prove splits are disjoint
