"""A prepared folder's `info.json` (prepare_data): a registered source and task, and the channels, classes
and normalisation that source and task give."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from prunelab.checks.reader import DocumentReader
from prunelab.checks.text import shown
from prunelab.prepare.sources import SOURCES


def check_info(path: Path | str, raw: Any) -> None:
    """A prepared folder's info.json: a registered source and task, and the channels, classes
    and normalisation that source and task give (`prunelab.prepare.tasks.dataset_info`)."""
    doc = DocumentReader(path, "prepare_data")
    info = doc.mapping(raw, "")
    source, task = doc.get(info, "source"), doc.get(info, "task")
    if source not in SOURCES:
        raise doc.refuse(f"source={shown(source)} is not a registered source")
    if task not in ("pairs", "classification"):
        raise doc.refuse(f"task={shown(task)} is not pairs or classification")
    registered = SOURCES[source]
    copies = 2 if task == "pairs" else 1
    channels = doc.number(info, "channels", integer=True, low=1)
    doc.number(info, "size", integer=True, low=1)
    n_classes = doc.number(info, "n_classes", integer=True, low=2)
    if not registered.mean:  # a folder source: its classes, listing and train-split statistics
        _check_folder_info(doc, info, task, channels, n_classes, copies)
        return
    if channels != len(registered.mean) * copies or n_classes != (2 if task == "pairs" else registered.n_classes):
        raise doc.refuse(f"channels={channels} or n_classes={n_classes} is not what {source} {task} gives")
    for key, expected in (("mean", registered.mean * copies), ("std", registered.std * copies)):
        value = doc.get(info, key)
        if value != list(expected):
            raise doc.refuse(f"{key}={shown(value)} is not {source}'s normalisation {list(expected)}")


def _check_folder_info(doc: DocumentReader, info: dict, task: str, channels: int, n_classes: int, copies: int) -> None:
    """info.json of an image folder (`prunelab.prepare.imagefolder`): grey or RGB images, the class
    names (n_classes of them for classification), a sha256 listing, and a normalisation per channel
    from the train split (means in [0, 1], deviations in (0, 1])."""
    if channels not in (copies, 3 * copies):
        raise doc.refuse(f"channels={channels} is not grey or RGB images ({copies} or {3 * copies})")
    classes = doc.get(info, "classes")
    if not isinstance(classes, list) or len(classes) < 2 or len(set(map(str, classes))) != len(classes):
        raise doc.refuse(f"classes={shown(classes)} is not a list of at least 2 distinct names")
    if task == "classification" and n_classes != len(classes):
        raise doc.refuse(f"n_classes={n_classes} is not the {len(classes)} classes listed")
    listing = doc.get(info, "listing_sha256")
    if not isinstance(listing, str) or len(listing) != 64 or any(c not in "0123456789abcdef" for c in listing):
        raise doc.refuse(f"listing_sha256={shown(listing)} is not a sha256 hex digest")
    if doc.get(info, "normalisation") != "train split":
        raise doc.refuse("normalisation is not 'train split'")
    for key, low, low_open in (("mean", 0.0, False), ("std", 0.0, True)):
        values = doc.get(info, key)
        if not isinstance(values, list) or len(values) != channels:
            raise doc.refuse(f"{key}={shown(values)} is not one number per channel ({channels})")
        for value in values:
            ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
            if not ok or value > 1 or value < low or (low_open and value == low):
                raise doc.refuse(f"{key}={shown(values)} holds {shown(value)}, not a share of the pixel range")
