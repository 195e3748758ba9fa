"""A prepared folder's `info.json` (prepare_data), read through `Info`: a registered source and task, and the
channels, classes and normalisation that source and task give."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from prunelab.checks.reader import Count, Document, check_document
from prunelab.messages import rule, shown
from prunelab.prepare.sources import SOURCES

Pixel = Annotated[float, Field(description="a number per channel, a share of the pixel range")]


class Info(Document):
    """info.json as `prunelab.data.records.DatasetInfo.to_json` writes it."""

    source: str = Field(description=f"a registered source ({', '.join(SOURCES)})")
    task: Literal["pairs", "classification"] = Field(description="pairs or classification")
    channels: Count
    size: Count
    n_classes: int = Field(ge=2, description="an integer >= 2")
    mean: list[Pixel] = Field(description="one mean per channel, a share of the pixel range")
    std: list[Pixel] = Field(description="one deviation per channel, a share of the pixel range")
    # An image folder's only (`prunelab.prepare.imagefolder`): its classes, listing and normalisation's origin.
    normalisation: Literal["train split"] | None = Field(None, description="'train split'")
    classes: list[str] | None = Field(None, min_length=2, description="a list of at least 2 distinct class names")
    listing_sha256: str | None = Field(None, pattern="^[0-9a-f]{64}$", description="a sha256 hex digest")

    @field_validator("source")
    @classmethod
    def _registered(cls, source: str) -> str:
        if source not in SOURCES:
            raise ValueError("not a registered source")
        return source

    @model_validator(mode="after")
    def _as_its_source_gives(self) -> Info:
        registered = SOURCES[self.source]
        copies = 2 if self.task == "pairs" else 1
        if not registered.mean:
            self._as_a_folder_gives(copies)
            return self
        if self.channels != len(registered.mean) * copies or self.n_classes != (
            2 if self.task == "pairs" else registered.n_classes
        ):
            raise rule(
                f"channels={self.channels} or n_classes={self.n_classes} is not what {self.source} {self.task} gives"
            )
        for key, expected in (("mean", registered.mean * copies), ("std", registered.std * copies)):
            if getattr(self, key) != list(expected):
                raise rule(f"{key}={shown(getattr(self, key))} is not {self.source}'s normalisation {list(expected)}")
        return self

    def _as_a_folder_gives(self, copies: int) -> None:
        """Grey or RGB images, the class names (n_classes of them for classification), a sha256 listing,
        and a normalisation per channel from the train split (means in [0, 1], deviations in (0, 1])."""
        for key in ("normalisation", "classes", "listing_sha256"):
            if getattr(self, key) is None:
                raise rule(f"{key} is missing; an image folder's info.json has normalisation, classes, listing_sha256")
        assert self.classes is not None
        if self.channels not in (copies, 3 * copies):
            raise rule(f"channels={self.channels} is not grey or RGB images ({copies} or {3 * copies})")
        if len(set(self.classes)) != len(self.classes):
            raise rule(f"classes={shown(self.classes)} is not a list of distinct names")
        if self.task == "classification" and self.n_classes != len(self.classes):
            raise rule(f"n_classes={self.n_classes} is not the {len(self.classes)} classes listed")
        for key, lowest_ok in (("mean", lambda v: v >= 0), ("std", lambda v: v > 0)):
            values = getattr(self, key)
            if len(values) != self.channels:
                raise rule(f"{key}={shown(values)} is not one number per channel ({self.channels})")
            bad = next((v for v in values if v > 1 or not lowest_ok(v)), None)
            if bad is not None:
                raise rule(f"{key}={shown(values)} holds {bad}, not a share of the pixel range")


def check_info(path: Path | str, raw: Any) -> None:
    """A prepared folder's info.json: a registered source and task, and the channels, classes
    and normalisation that source and task give (`prunelab.prepare.tasks.dataset_info`)."""
    check_document(path, raw, Info, "prepare_data")
