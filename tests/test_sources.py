"""Data sources on files in their real on-disk formats, parsed by the real loaders.

The tests write IDX files (gzip'd and plain) and pickled CIFAR-10 batches themselves, then call
`SOURCES[name].load`, which checks the files and hands the parsing to torchvision. Files the
tests write cannot have torchvision's checksums, so their checksums are supplied through
$PRUNE_LAB_CHECKSUMS, as the loader allows; the parsing is never replaced.
"""

from __future__ import annotations

import gzip
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from torchvision import datasets

from prunelab.errors import UserError
from prunelab.params import load_params, validate
from prunelab.params.schema import DataParams
from prunelab.prepare import sources
from prunelab.prepare.sources import CHECKSUMS_ENV, SOURCES, Pool
from prunelab.prepare.tasks import make_pair_splits
from tests.helpers import ROOT, dvc, project_copy, write_checksums, write_cifar10, write_mnist_family

MNIST_FAMILY = [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")]
MNIST_FILES = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
]
CIFAR_FILES = [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"]
UNREACHABLE = "http://127.0.0.1:9/"  # the discard port: refused at once, no real network call


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every torchvision download fails at once, as on a machine with no network."""
    for cls in (datasets.MNIST, datasets.FashionMNIST):
        monkeypatch.setattr(cls, "mirrors", [UNREACHABLE])
    monkeypatch.setattr(datasets.CIFAR10, "url", f"{UNREACHABLE}cifar-10-python.tar.gz")


@pytest.fixture
def no_system_copies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hide a system copy (e.g. Debian's dataset-fashion-mnist) that this machine may have."""
    monkeypatch.setattr(sources, "SYSTEM_COPIES", {})


@pytest.fixture
def unpickled(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files torchvision unpickles (pickle.load is wrapped, not replaced)."""
    opened: list[str] = []
    real_load = pickle.load

    def spy(handle, *args, **kwargs):
        opened.append(Path(handle.name).name)
        return real_load(handle, *args, **kwargs)

    monkeypatch.setattr(pickle, "load", spy)
    return opened


def trust(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, files: dict[str, bytes] | list[Path]) -> None:
    monkeypatch.setenv(CHECKSUMS_ENV, str(write_checksums(tmp_path / "checksums.json", files)))


def pairs_data(**data_overrides: object) -> DataParams:
    """params.yaml's `data` section with some keys changed, validated as a stage would."""
    raw = load_params(ROOT / "params.yaml").model_dump()
    return validate({**raw, "data": {**raw["data"], **data_overrides}}).data


def assert_one_line(err: pytest.ExceptionInfo[UserError]) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


# --------------------------------------------------------------------------- MNIST family
@pytest.mark.parametrize(("source", "class_name"), MNIST_FAMILY)
def test_gzip_idx_files_round_trip(
    source: str, class_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, offline: None
) -> None:
    raw = tmp_path / "raw"
    written = write_mnist_family(raw, class_name, n_train=60, n_test=20)
    trust(monkeypatch, tmp_path, sorted((raw / class_name / "raw").glob("*.gz")))
    # Files in data/raw win over a system copy, which would bring 70,000 images.
    pool = SOURCES[source].load(raw)
    train, test = written["train"], written["t10k"]
    np.testing.assert_array_equal(pool.images, np.concatenate([train[0], test[0]])[:, None])
    np.testing.assert_array_equal(pool.labels, np.concatenate([train[1], test[1]]).astype(np.int64))
    assert pool.images.dtype == np.uint8 and pool.labels.dtype == np.int64
    assert pool.official_test.tolist() == [False] * 60 + [True] * 20


def test_plain_idx_files_are_read_without_checksums(tmp_path: Path, offline: None) -> None:
    raw = tmp_path / "raw"
    written = write_mnist_family(raw, "MNIST", n_train=30, n_test=10, gz=False)
    pool = SOURCES["mnist"].load(raw)
    np.testing.assert_array_equal(pool.images[:30, 0], written["train"][0])
    np.testing.assert_array_equal(pool.labels[30:], written["t10k"][1])


def test_gzip_file_with_unknown_checksum_is_refused_and_not_extracted(tmp_path: Path, offline: None) -> None:
    raw = tmp_path / "raw"
    write_mnist_family(raw, "MNIST", n_train=30, n_test=10)
    with pytest.raises(UserError, match="checksum mismatch") as err:
        SOURCES["mnist"].load(raw)
    assert str(raw / "MNIST/raw/train-images-idx3-ubyte.gz") in assert_one_line(err)
    assert not (raw / "MNIST/raw/train-images-idx3-ubyte").exists()


@pytest.mark.parametrize(("source", "class_name"), MNIST_FAMILY)
def test_missing_mnist_family_offline_says_what_where_and_mnist_5k(
    source: str, class_name: str, tmp_path: Path, offline: None, no_system_copies: None
) -> None:
    raw = tmp_path / "raw"
    with pytest.raises(UserError) as err:
        SOURCES[source].load(raw)
    message = assert_one_line(err)
    assert all(name in message for name in MNIST_FILES), message
    assert str(raw / class_name / "raw") in message
    assert "data.source=mnist_5k" in message and "offline" in message
    assert ("dataset-fashion-mnist" in message) == (source == "fashion_mnist")


def test_partly_missing_mnist_names_only_the_missing_files(tmp_path: Path, offline: None) -> None:
    raw = tmp_path / "raw"
    write_mnist_family(raw, "MNIST", n_train=30, n_test=10, gz=False)
    (raw / "MNIST/raw/t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(UserError) as err:
        SOURCES["mnist"].load(raw)
    message = assert_one_line(err)
    assert "t10k-labels-idx1-ubyte.gz" in message and "train-images" not in message


@pytest.mark.parametrize("packed", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("kind", ["images", "labels"])
def test_truncated_idx_file_is_reported_by_name(
    packed: bool, kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, offline: None
) -> None:
    raw = tmp_path / "raw"
    write_mnist_family(raw, "MNIST", n_train=30, n_test=10, gz=False)
    plain = raw / f"MNIST/raw/train-{kind}-idx{3 if kind == 'images' else 1}-ubyte"
    plain.write_bytes(plain.read_bytes()[:-7])
    if packed:  # a download cut short before gzip'ing: the .gz is intact, its content is not
        gz = plain.with_name(plain.name + ".gz")
        gz.write_bytes(gzip.compress(plain.read_bytes()))
        plain.unlink()
        trust(monkeypatch, tmp_path, [gz])
    with pytest.raises(UserError, match="truncated") as err:
        SOURCES["mnist"].load(raw)
    assert assert_one_line(err).startswith(f"{plain}:")


@pytest.mark.parametrize(
    "garble",
    [
        lambda b: b"\x00\x00\x0c\x03" + b[4:],  # wrong data type in the magic number
        lambda b: b[:4] + (10**6).to_bytes(4, "big") + b[8:],  # item count that does not fit the data
        lambda b: b[:3],  # not even a header
    ],
    ids=["magic", "dimensions", "stub"],
)
def test_garbled_idx_header_is_reported_by_name(garble, tmp_path: Path, offline: None) -> None:
    raw = tmp_path / "raw"
    write_mnist_family(raw, "MNIST", n_train=30, n_test=10, gz=False)
    labels = raw / "MNIST/raw/t10k-labels-idx1-ubyte"
    labels.write_bytes(garble(labels.read_bytes()))
    with pytest.raises(UserError) as err:
        SOURCES["mnist"].load(raw)
    assert assert_one_line(err).startswith(f"{labels}:")


def test_pairs_from_a_torchvision_source_use_the_same_pairing(tmp_path: Path, offline: None) -> None:
    raw = tmp_path / "raw"
    written = write_mnist_family(raw, "MNIST", n_train=300, n_test=100, gz=False)
    pool = SOURCES["mnist"].load(raw)
    data = pairs_data(source="mnist", n_pairs=400)
    from_files = make_pair_splits(pool, data, np.random.default_rng(5))
    # The same images as a pool without an official split: pairing ignores that split.
    images = np.concatenate([written["train"][0], written["t10k"][0]])[:, None]
    labels = np.concatenate([written["train"][1], written["t10k"][1]]).astype(np.int64)
    from_arrays = make_pair_splits(Pool(images, labels, None), data, np.random.default_rng(5))
    for name in ("train", "test"):
        np.testing.assert_array_equal(from_files[name].image_ids, from_arrays[name].image_ids)
        np.testing.assert_array_equal(from_files[name].images, from_arrays[name].images)
        ids = from_files[name].image_ids
        np.testing.assert_array_equal(from_files[name].labels, (labels[ids[:, 0]] == labels[ids[:, 1]]).astype(int))
        assert from_files[name].images.shape[1:] == (2, 28, 28)
    assert len(from_files["test"].labels) == 40 and from_files["test"].labels.mean() == pytest.approx(0.1)
    # Test pairs draw from a 1:9 share of the pool, not from the official test images.
    assert not set(from_files["test"].image_ids.ravel()) <= set(range(300, 400))


# --------------------------------------------------------------------------- system copy
def fake_system_copy(folder: Path, tmp_path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Four .gz files flat in `folder`, as Debian's dataset-fashion-mnist installs them."""
    written = write_mnist_family(tmp_path / "staging", "FashionMNIST", n_train=40, n_test=20)
    folder.mkdir(parents=True)
    for gz in (tmp_path / "staging/FashionMNIST/raw").glob("*.gz"):
        shutil.move(gz, folder / gz.name)
    return written


def test_system_copy_is_decompressed_checked_and_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, offline: None
) -> None:
    system = tmp_path / "usr/share/datasets/fashion-mnist"
    written = fake_system_copy(system, tmp_path)
    monkeypatch.setattr(sources, "SYSTEM_COPIES", {"FashionMNIST": (system,)})
    # A system copy is checked on its decompressed content (Debian re-gzips the files).
    trust(monkeypatch, tmp_path, {gz.stem: gzip.decompress(gz.read_bytes()) for gz in system.glob("*.gz")})
    before = sorted(p.name for p in system.iterdir())
    pool = SOURCES["fashion_mnist"].load(tmp_path / "raw")
    np.testing.assert_array_equal(pool.images[:40, 0], written["train"][0])
    np.testing.assert_array_equal(pool.labels[40:], written["t10k"][1])
    assert sorted(p.name for p in system.iterdir()) == before
    assert (tmp_path / "raw/FashionMNIST/raw/train-images-idx3-ubyte").is_file()


def test_corrupted_system_copy_is_reported_and_nothing_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, offline: None
) -> None:
    system = tmp_path / "usr/share/datasets/fashion-mnist"
    fake_system_copy(system, tmp_path)
    monkeypatch.setattr(sources, "SYSTEM_COPIES", {"FashionMNIST": (system,)})
    monkeypatch.delenv(CHECKSUMS_ENV, raising=False)  # test-written content is not upstream's
    with pytest.raises(UserError, match="does not match the published checksum") as err:
        SOURCES["fashion_mnist"].load(tmp_path / "raw")
    assert assert_one_line(err).startswith(f"{system / 'train-images-idx3-ubyte.gz'}:")
    assert not list((tmp_path / "raw/FashionMNIST/raw").iterdir())


def test_truncated_gzip_in_system_copy_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, offline: None
) -> None:
    system = tmp_path / "usr/share/datasets/fashion-mnist"
    fake_system_copy(system, tmp_path)
    trust(monkeypatch, tmp_path, {gz.stem: gzip.decompress(gz.read_bytes()) for gz in system.glob("*.gz")})
    gz = system / "t10k-images-idx3-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:200])
    monkeypatch.setattr(sources, "SYSTEM_COPIES", {"FashionMNIST": (system,)})
    with pytest.raises(UserError, match="not a readable gzip file") as err:
        SOURCES["fashion_mnist"].load(tmp_path / "raw")
    assert assert_one_line(err).startswith(f"{gz}:")
    assert not (tmp_path / "raw/FashionMNIST/raw/t10k-images-idx3-ubyte").exists()


def test_system_copy_needs_all_four_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, offline: None) -> None:
    system = tmp_path / "usr/share/datasets/fashion-mnist"
    fake_system_copy(system, tmp_path)
    (system / "t10k-labels-idx1-ubyte.gz").unlink()
    monkeypatch.setattr(sources, "SYSTEM_COPIES", {"FashionMNIST": (system,)})
    with pytest.raises(UserError, match="download failed"):
        SOURCES["fashion_mnist"].load(tmp_path / "raw")


DEBIAN_COPY = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.integration
def test_prepare_data_reads_debians_fashion_mnist(tmp_path: Path) -> None:
    """The real system copy, through the prepare_data stage. Needs the Debian package
    dataset-fashion-mnist; CI does not install it, so there the test is skipped."""
    if not all((DEBIAN_COPY / name).is_file() for name in MNIST_FILES):
        pytest.skip(
            f"{DEBIAN_COPY} lacks the Fashion-MNIST files: the Debian package dataset-fashion-mnist "
            "is not installed (apt-get install dataset-fashion-mnist)"
        )
    repo = project_copy(tmp_path / "repo", {"data.source": "fashion_mnist", "data.n_pairs": 300})
    dvc(repo, "repro", "prepare_data")
    summary = json.loads((repo / "metrics/seeds/0/data.json").read_text())
    assert summary["pool_images"] == 70_000
    assert summary["test"]["count"] == 30 and summary["train"]["count"] == 270
    info = json.loads((repo / "data/seeds/0/prepared/info.json").read_text())
    assert info["source"] == "fashion_mnist" and info["channels"] == 2 and info["mean"] == [0.286, 0.286]
    assert sorted(p.name for p in (repo / "data/raw/FashionMNIST/raw").iterdir()) == sorted(
        name.removesuffix(".gz") for name in MNIST_FILES
    )


# --------------------------------------------------------------------------- CIFAR-10
def cifar_files(raw: Path) -> list[Path]:
    return [raw / "cifar-10-batches-py" / name for name in CIFAR_FILES]


def test_cifar10_batches_round_trip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, offline: None, unpickled: list[str]
) -> None:
    raw = tmp_path / "raw"
    written = write_cifar10(raw, per_batch=12, n_test=10)
    trust(monkeypatch, tmp_path, cifar_files(raw))
    pool = SOURCES["cifar10"].load(raw)
    np.testing.assert_array_equal(pool.images, np.concatenate([written["train"][0], written["test"][0]]))
    np.testing.assert_array_equal(pool.labels, np.concatenate([written["train"][1], written["test"][1]]))
    assert pool.images.shape == (70, 3, 32, 32) and pool.images.flags["C_CONTIGUOUS"]
    assert pool.official_test.tolist() == [False] * 60 + [True] * 10
    assert set(unpickled) == set(CIFAR_FILES)  # torchvision unpickled every file itself


def test_cifar10_batch_with_wrong_checksum_is_never_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, offline: None, unpickled: list[str]
) -> None:
    raw = tmp_path / "raw"
    write_cifar10(raw, per_batch=12, n_test=10)
    trust(monkeypatch, tmp_path, cifar_files(raw))
    batch = raw / "cifar-10-batches-py/data_batch_3"
    content = bytearray(batch.read_bytes())
    content[-100] ^= 0xFF  # one flipped byte in the pixel data: still unpickles fine
    batch.write_bytes(bytes(content))
    with pytest.raises(UserError, match="checksum mismatch") as err:
        SOURCES["cifar10"].load(raw)
    assert assert_one_line(err).startswith(f"{batch}:")
    assert unpickled == []


def test_cifar10_without_known_checksums_is_refused(tmp_path: Path, offline: None, unpickled: list[str]) -> None:
    raw = tmp_path / "raw"
    write_cifar10(raw, per_batch=4, n_test=4)
    with pytest.raises(UserError, match="checksum mismatch"):
        SOURCES["cifar10"].load(raw)
    assert unpickled == []


def test_missing_cifar10_offline_says_what_where_and_mnist_5k(tmp_path: Path, offline: None) -> None:
    raw = tmp_path / "raw"
    with pytest.raises(UserError, match="download failed") as err:
        SOURCES["cifar10"].load(raw)
    message = assert_one_line(err)
    assert all(name in message for name in CIFAR_FILES), message
    assert str(raw / "cifar-10-batches-py") in message
    assert "data.source=mnist_5k" in message


def test_incomplete_cifar10_folder_names_the_missing_files(tmp_path: Path, offline: None) -> None:
    raw = tmp_path / "raw"
    write_cifar10(raw, per_batch=4, n_test=4)
    (raw / "cifar-10-batches-py/data_batch_5").unlink()
    (raw / "cifar-10-batches-py/batches.meta").unlink()
    with pytest.raises(UserError, match="incomplete") as err:
        SOURCES["cifar10"].load(raw)
    message = assert_one_line(err)
    assert "data_batch_5, batches.meta not found" in message and "data_batch_4" not in message
