"""`data.source: imagefolder`: the user's labelled images, in torchvision's `ImageFolder` layout.

    <data.path>/<class>/<image>                        one pool, split by data.test_fraction (stratified)
    <data.path>/train/<class>/<image> + test/ (or val/)  the folder's own split

Classes are the sorted subfolder names (of `train/` in the split layout), as `ImageFolder.find_classes`
orders them; images are files with torchvision's image extensions (`IMG_EXTENSIONS`), found by walking
each class folder as `torchvision.datasets.folder.make_dataset` does (symlinks followed, names sorted;
tests/test_imagefolder.py checks the two listings are the same file for file). Two differences, both
refusals rather than surprises: hidden folders (`.ipynb_checkpoints`) are not classes, and a symlink
that leads outside `data.path` is refused.

Images are decoded with PIL, as `ImageFolder`'s loader does: grey images (modes 1, L, LA, I, F) as one
channel, and all as RGB (alpha dropped) when any image has colour; with `data.image_size` resized to a
square side with PIL's bilinear filter (the aspect ratio is not kept: crop first if it matters). PIL's
decompression-bomb limit (`Image.MAX_IMAGE_PIXELS`) is a refusal, not a warning.

Every problem is one line naming `data.path` (or the image), raised before anything is written.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from prunelab.errors import UserError

# torchvision.datasets.folder.IMG_EXTENSIONS (kept here: reading the listing needs no torch)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"})
SPLIT_FOLDERS = ("train", "test", "val")


@dataclass(frozen=True)
class Listing:
    """The image files of a folder: per file its path, class index and whether it is a test image."""

    root: Path  # data.path
    classes: tuple[str, ...]
    files: tuple[Path, ...]
    labels: np.ndarray  # int64 class index per file
    official_test: np.ndarray | None  # bool per file; None when data.test_fraction splits the pool
    layout: str  # "train/test", "train/val" or "classes"


def _key(where: Path) -> str:
    return f"data.path={str(where)!r}"


def _subfolders(folder: Path) -> list[str]:
    """Subfolder names, sorted, hidden ones left out (torchvision's find_classes keeps them)."""
    return sorted(entry.name for entry in os.scandir(folder) if entry.is_dir() and not entry.name.startswith("."))


def _class_files(root: Path, top: Path, name: str) -> list[Path]:
    """The image files under class folder `top` (recursively, symlinks followed, sorted as
    make_dataset sorts them); refuses a file or folder whose real path leaves `root`."""
    real_root = root.resolve()

    def inside(path: Path) -> Path:
        if real_root not in path.resolve().parents:  # a class folder and its files lie below data.path
            raise UserError(f"{_key(root)}: {path} is a symlink that leads outside data.path; allowed: files inside it")
        return path

    found = []
    for folder, _, names in sorted(os.walk(top, followlinks=True)):
        inside(Path(folder))
        found += [inside(Path(folder) / name) for name in sorted(names) if name.lower().endswith(IMAGE_EXTENSIONS)]
    if not found:
        raise UserError(
            f"{_key(root)}: class {name!r} has no image ({', '.join(IMAGE_EXTENSIONS)}); "
            "allowed: every class folder holding at least one image"
        )
    return found


def list_images(root: Path) -> Listing:
    """The classes and image files of `root`, checked: at least two classes, none empty, every test
    class known from train/, nothing reached through a symlink outside `root`."""
    if not root.is_dir():
        raise UserError(f"{_key(root)}: not a folder; allowed: a folder of class subfolders")
    top = _subfolders(root)
    if "train" in top:
        held_out = "test" if "test" in top else "val" if "val" in top else None
        if held_out is None:
            raise UserError(f"{_key(root)}: has train/ but no test/ or val/; allowed: both, or class folders only")
        parts = {"train": root / "train", "test": root / held_out}
        layout = f"train/{held_out}"
    else:
        parts, layout = {"all": root}, "classes"
    classes = _subfolders(parts.get("train", root))
    if len(classes) < 2:
        raise UserError(
            f"{_key(root)}: {len(classes)} class folder(s) in {parts.get('train', root)}; allowed: at least 2"
        )
    if "test" in parts:
        unknown = [c for c in _subfolders(parts["test"]) if c not in classes]
        if unknown:
            raise UserError(
                f"{_key(root)}: {parts['test'].name}/ has class {unknown[0]!r}, which train/ lacks; "
                "allowed: test classes that train/ has"
            )
    files: list[Path] = []
    labels: list[int] = []
    test: list[bool] = []
    for part, folder in parts.items():
        present = classes if part != "test" else [c for c in classes if (folder / c).is_dir()]
        for name in present:
            found = _class_files(root, folder / name, name)
            files += found
            labels += [classes.index(name)] * len(found)
            test += [part == "test"] * len(found)
    official = np.array(test, dtype=bool) if "test" in parts else None
    return Listing(root, tuple(classes), tuple(files), np.array(labels, dtype=np.int64), official, layout)


def _open(path: Path, data: bytes):  # -> PIL.Image.Image
    """PIL's image of `data`, fully decoded; a bomb or an unreadable file is a one-line refusal."""
    from PIL import Image, UnidentifiedImageError

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)  # refused, not warned
        try:
            image = Image.open(io.BytesIO(data))
            image.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise UserError(
                f"data.path: {path} is past PIL's decompression-bomb limit ({Image.MAX_IMAGE_PIXELS} pixels); "
                "allowed: smaller images"
            ) from None
        except (OSError, SyntaxError, ValueError, UnidentifiedImageError) as err:
            raise UserError(
                f"data.path: {path} is unreadable or truncated ({type(err).__name__}); allowed: images PIL decodes"
            ) from None
    return image


def load_images(listing: Listing, image_size: int | None) -> tuple[np.ndarray, str]:
    """The listed images as uint8 N×C×S×S, and the sha256 of the listing (every file's path relative to
    the data folder, size and content digest): it changes when an image is added, removed or edited."""
    from PIL import Image

    raw = [path.read_bytes() for path in listing.files]
    images = [_open(path, data) for path, data in zip(listing.files, raw, strict=True)]
    colour = any(image.mode not in GREY_MODES for image in images)
    mode = "RGB" if colour else "L"
    if image_size is None:
        sizes = sorted({image.size for image in images})
        if len(sizes) > 1:
            raise UserError(
                f"data.path: images of {len(sizes)} sizes (e.g. {sizes[0][0]}×{sizes[0][1]} and "
                f"{sizes[-1][0]}×{sizes[-1][1]}) and data.image_size is none; allowed: data.image_size set to a side"
            )
        if sizes[0][0] != sizes[0][1]:
            raise UserError(
                f"data.path: images are {sizes[0][0]}×{sizes[0][1]}, not square, and data.image_size is none; "
                "allowed: data.image_size set to a side (or square images)"
            )
    arrays = []
    for image in images:
        converted = image.convert(mode)
        if image_size is not None and converted.size != (image_size, image_size):
            converted = converted.resize((image_size, image_size), Image.BILINEAR)
        pixels = np.asarray(converted, dtype=np.uint8)
        arrays.append(pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1))
    return np.ascontiguousarray(np.stack(arrays)), listing_digest(listing, raw)


def listing_digest(listing: Listing, contents: list[bytes]) -> str:
    """sha256 over `relative path, size, sha256 of content` per file, in listing order."""
    digest = hashlib.sha256()
    for path, data in zip(listing.files, contents, strict=True):
        relative = path.relative_to(listing.root).as_posix()
        digest.update(f"{relative}\t{len(data)}\t{hashlib.sha256(data).hexdigest()}\n".encode())
    return digest.hexdigest()


def stratified_split(
    labels: np.ndarray, test_fraction: float, val_fraction: float, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Disjoint test / val / train indices with each class split in the same proportions (rounded
    per class; every class with at least two images keeps one in train)."""
    parts: dict[str, list[np.ndarray]] = {"test": [], "val": [], "train": []}
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_test = min(round(len(members) * test_fraction), max(0, len(members) - 1))
        rest = members[n_test:]
        n_val = min(round(len(rest) * val_fraction), max(0, len(rest) - 1))
        parts["test"].append(members[:n_test])
        parts["val"].append(rest[:n_val])
        parts["train"].append(rest[n_val:])
    return {name: np.sort(np.concatenate(chunks)).astype(np.int64) for name, chunks in parts.items()}


def train_statistics(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of uint8 images N×C×H×W scaled to [0, 1], as the
    normalisation of the data (computed on the train split only, rounded to 6 digits)."""
    scaled = images.astype(np.float64) / 255.0
    mean = scaled.mean(axis=(0, 2, 3))
    std = scaled.std(axis=(0, 2, 3))
    if np.any(std == 0):
        channel = int(np.flatnonzero(std == 0)[0])
        raise UserError(f"data.path: channel {channel} of the train images is constant; allowed: images that vary")
    return tuple(round(float(v), 6) for v in mean), tuple(round(float(v), 6) for v in std)
