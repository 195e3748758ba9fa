"""The on-disk format of prepared splits, and loading them as normalised tensors.

Prepared splits are stored as uint8 (lossless and 4× smaller than float) together with
the normalisation constants in info.json; `load_split` returns normalised float tensors.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from prunelab.checks.arrays import check_split
from prunelab.checks.info import check_info
from prunelab.data.records import DatasetInfo, Split
from prunelab.errors import UserError

if TYPE_CHECKING:
    import torch

SPLITS = ("train", "val", "test")


def save_prepared(folder: Path, info: DatasetInfo, splits: dict[str, Split]) -> None:
    """One uncompressed .npz per split (images, labels, image_ids) and info.json. NumPy
    writes it, so data preparation needs no torch; its bytes depend only on the arrays."""
    from prunelab.runtime import atomic_path, write_json

    folder.mkdir(parents=True, exist_ok=True)
    for name, split in splits.items():
        with atomic_path(folder / f"{name}.npz") as tmp, tmp.open("wb") as handle:
            np.savez(
                handle,
                images=np.ascontiguousarray(split.images, dtype=np.uint8),
                labels=np.asarray(split.labels, dtype=np.int64),
                image_ids=np.ascontiguousarray(split.image_ids, dtype=np.int64),
            )
    write_json(folder / "info.json", info.to_json())


def default_folder() -> Path:
    """The prepared folder of the one replicate under data/seeds/, for callers that name none;
    with several replicates, a one-line UserError that says which folders to choose from."""
    from prunelab.paths import DATA

    found = sorted((p.parent.parent for p in (DATA / "seeds").glob("*/prepared/info.json")), key=lambda p: p.name)
    if len(found) == 1:
        return found[0] / "prepared"
    if not found:
        raise UserError("no prepared data under data/seeds/; run dvc repro (or the prepare_data stage) first")
    choices = ", ".join(str(f / "prepared") for f in found)
    raise UserError(
        f"{len(found)} replicates are prepared; pass one folder: {choices} (prunelab.paths.prepared_dir(seed))"
    )


def load_info(folder: Path | None = None) -> DatasetInfo:
    path = (folder or default_folder()) / "info.json"
    if not path.exists():
        raise UserError(f"{path}: prepared data not found; run the prepare_data stage (dvc repro)")
    try:
        raw = json.loads(path.read_text())
    except (ValueError, OSError) as err:
        raise UserError(f"{path}: unreadable prepared-data info ({type(err).__name__}); rerun prepare_data") from None
    check_info(path, raw)
    return DatasetInfo.from_json(raw)


def load_split_arrays(
    name: str, folder: Path | None = None, info: DatasetInfo | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """A prepared split as stored: uint8 images N×C×H×W and int64 labels, checked against the
    folder's info.json (`prunelab.checks.arrays.check_split`: shape, dtype, lengths, labels in
    [0, n_classes))."""
    folder = folder or default_folder()
    info = info or load_info(folder)
    path = folder / f"{name}.npz"
    if not path.exists():
        raise UserError(f"{path}: prepared {name} split not found; run the prepare_data stage (dvc repro)")
    try:
        with np.load(path, allow_pickle=False) as raw:
            images, labels = raw["images"], raw["labels"]
            image_ids = raw["image_ids"] if "image_ids" in raw.files else None  # not read by the stages
    # A truncated .npz is a broken zip (BadZipFile) or ends early (EOFError); a foreign one lacks keys;
    # a flipped byte fails the member's CRC-32 (BadZipFile).
    except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise UserError(
            f"{path}: cannot read prepared {name} split ({type(err).__name__}); delete it and rerun prepare_data"
        ) from None
    check_split(path, images, labels, info, image_ids)
    return images, labels


def load_split(
    name: str, folder: Path | None = None, info: DatasetInfo | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """A prepared split as normalised float32 images and int64 labels. `folder` is a replicate's
    prepared folder (`prunelab.paths.prepared_dir(seed)`); it may be left out when one replicate is prepared."""
    import torch

    folder = folder or default_folder()
    info = info or load_info(folder)
    images, labels = load_split_arrays(name, folder, info)
    return normalise(images, info), torch.from_numpy(labels)


def normalise(images: torch.Tensor | np.ndarray, info: DatasetInfo) -> torch.Tensor:
    """uint8 images N×C×H×W as the models see them: float32, (x/255 − mean) / std per channel."""
    import torch

    images = torch.as_tensor(np.asarray(images))
    mean = torch.tensor(info.mean).view(1, -1, 1, 1)
    std = torch.tensor(info.std).view(1, -1, 1, 1)
    return (images.float() / 255.0 - mean) / std


def as_tensors(split: Split, info: DatasetInfo) -> tuple[torch.Tensor, torch.Tensor]:
    """An in-memory split (from `prunelab.pairing`) as normalised images and int64 labels,
    exactly what `load_split` returns for the same split saved to disk."""
    import torch

    return normalise(split.images, info), torch.as_tensor(split.labels)
