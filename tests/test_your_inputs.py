"""A user's builder, weights and image folder: read as the user expects, and every bad one refused
in one line naming the key (or the image), before any work, with nothing written.

Stages run in-process through their real entry (`stage_main`), in a folder holding params.yaml,
a tiny image tree and a builder module; the prepared data comes from the real prepare_data stage."""

from __future__ import annotations

import copy
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from prunelab.data.prepared import load_info, load_split_arrays
from prunelab.models.archs import builder_file, user_builder
from prunelab.models.groups import example_input, find_groups
from prunelab.models.nets import build_model
from prunelab.params import validate
from prunelab.prepare.imagefolder import list_images, load_images, stratified_split
from tests.test_errors import assert_one_line, base_params, run_in_process

MODULE = "usernet"  # the builder module each test writes (dropped from sys.modules around every test)
BUILDER = """
from torch import nn


class Block(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(width)

    def forward(self, x):
        return (self.bn2(self.conv2(self.bn1(self.conv1(x)).relu())) + x).relu()


def build(num_classes, in_channels):
    return nn.Sequential(
        nn.Conv2d(in_channels, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), Block(8),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes),
    )
"""
CLASSES = ("ant", "bee", "cat")


def write_image(path: Path, rng: np.random.Generator, size: tuple[int, int] = (8, 8), mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = {"RGB": 3, "L": 1}[mode]
    pixels = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode).save(path)


def write_tree(root: Path, split: bool = True, per_class: int = 4, seed: int = 0) -> Path:
    """<root>/{train,test}/<class>/<i>.png (or <root>/<class>/<i>.png), 8×8 RGB noise."""
    rng = np.random.default_rng(seed)
    for part in ("train", "test") if split else ("",):
        for name in CLASSES:
            for i in range(per_class):
                write_image(root / part / name / f"{i}.png", rng)
    return root


@pytest.fixture(autouse=True)
def _fresh_builder_module() -> Iterator[None]:
    sys.modules.pop(MODULE, None)
    yield
    sys.modules.pop(MODULE, None)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """params.yaml for the user's setting (builder in mine/, images in images/), and the builder."""
    write_tree(tmp_path / "images")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / f"{MODULE}.py").write_text(BUILDER)
    write_params(tmp_path, {})
    monkeypatch.syspath_prepend(str(tmp_path / "mine"))
    return tmp_path


def write_params(folder: Path, overrides: dict[str, Any]) -> None:
    params = copy.deepcopy(base_params())
    settings = {
        "seeds": [0],
        "data.source": "imagefolder",
        "data.path": "images",
        "data.task": "classification",
        "model.arch": f"{MODULE}:build",
        "model.source": "mine",
        "model.weights": "none",
        **overrides,
    }
    for dotted, value in settings.items():
        section, key = dotted.split(".") if "." in dotted else (dotted, None)
        if key is None:
            params[section] = value
        else:
            params[section][key] = value
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (but params.yaml), by path: a refused stage must change none."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "params.yaml" and "__pycache__" not in p.parts
    }


def refused(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, folder: Path, stage: str) -> str:
    before = snapshot(folder)
    err = run_in_process(monkeypatch, capsys, folder, stage)
    assert snapshot(folder) == before  # nothing written, nothing lost
    return err


# --------------------------------------------------------------------------- reading what the user brings
def test_the_listing_is_torchvisions_imagefolder_file_for_file(tmp_path: Path) -> None:
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

    root = write_tree(tmp_path / "images", split=False)
    write_image(root / "bee" / "nested" / "deep.png", np.random.default_rng(1))
    (root / "cat" / "notes.txt").write_text("not an image")
    listing = list_images(root)
    classes, class_to_idx = find_classes(str(root))
    expected = make_dataset(str(root), class_to_idx, extensions=IMG_EXTENSIONS)
    assert listing.classes == tuple(classes)
    assert [(str(p), int(c)) for p, c in zip(listing.files, listing.labels, strict=True)] == expected
    assert listing.official_test is None and listing.layout == "classes"


def test_a_train_test_tree_is_the_split_and_val_stands_for_test(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "images")
    listing = list_images(root)
    assert listing.layout == "train/test" and int(listing.official_test.sum()) == 3 * 4
    (root / "test").rename(root / "val")
    assert list_images(root).layout == "train/val"


def test_a_pool_split_is_stratified_by_class() -> None:
    labels = np.repeat(np.arange(3), [50, 20, 10])
    parts = stratified_split(labels, 0.2, 0.1, np.random.default_rng(0))
    assert [int((labels[parts["test"]] == c).sum()) for c in range(3)] == [10, 4, 2]
    assert sorted(np.concatenate(list(parts.values())).tolist()) == list(range(80))


def test_grey_images_give_one_channel_colour_three_and_image_size_resizes(tmp_path: Path) -> None:
    root = tmp_path / "images"
    rng = np.random.default_rng(0)
    for name in CLASSES[:2]:
        for i, size in enumerate([(10, 10), (12, 7)]):
            write_image(root / name / f"{i}.png", rng, size, mode="L")
    images, _ = load_images(list_images(root), image_size=16)
    assert images.shape == (4, 1, 16, 16) and images.dtype == np.uint8
    write_image(root / "bee" / "2.png", rng, (10, 10), mode="RGB")
    assert load_images(list_images(root), image_size=16)[0].shape == (5, 3, 16, 16)


def test_prepare_data_records_classes_statistics_and_the_listing(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from prunelab.runtime import stage_main
    from stages import prepare_data

    monkeypatch.chdir(project)
    monkeypatch.setattr(sys, "argv", ["prepare_data", "--seed", "0"])
    stage_main(prepare_data.main)
    folder = project / "data/seeds/0/prepared"
    info = load_info(folder)
    images, labels = load_split_arrays("train", folder, info)
    scaled = images / 255.0
    np.testing.assert_allclose(info.mean, scaled.mean(axis=(0, 2, 3)), atol=1e-6)  # the train split's statistics
    np.testing.assert_allclose(info.std, scaled.std(axis=(0, 2, 3)), atol=1e-6)
    assert info.classes == CLASSES and info.input.n_classes == 3 and sorted(set(labels.tolist())) == [0, 1, 2]
    first = info.listing
    write_image(project / "images/train/bee/new.png", np.random.default_rng(9))
    stage_main(prepare_data.main)
    assert load_info(folder).listing != first  # a new image is a new listing (and DVC reruns the stage)


def test_the_builder_is_found_without_importing_it_and_goes_through_the_graph(project: Path) -> None:
    assert user_builder(f"{MODULE}:build") == (MODULE, "build") and user_builder("torchvision:resnet18") is None
    assert user_builder("a.b:c") == ("a.b", "c") and user_builder("a-b:c") is None
    assert builder_file(MODULE, [str(project / "mine")]) == project / "mine" / f"{MODULE}.py"
    assert MODULE not in sys.modules
    from prunelab.data.spec import InputSpec

    spec = InputSpec(channels=3, size=8, n_classes=3)
    groups = find_groups(build_model(f"{MODULE}:build", spec), example_input(spec))
    assert [g.name for g in groups] == ["0", "3.conv1"]  # the stem with the residual stream; the inner conv
    assert groups[0].producers == ("0", "3.conv2")


# --------------------------------------------------------------------------- bad builders and weights
BuildEdit = Callable[[Path], dict[str, Any]]


def builder_text(text: str) -> BuildEdit:
    def edit(folder: Path) -> dict[str, Any]:
        (folder / "mine" / f"{MODULE}.py").write_text(text)
        return {}

    return edit


def params_only(**overrides: Any) -> BuildEdit:
    return lambda folder: {k.replace("__", "."): v for k, v in overrides.items()}


def saved(state: Callable[[torch.nn.Module], Any], name: str = "w.pt") -> BuildEdit:
    """Weights made from the model as built for the data (3 classes, 3 channels) by `state`."""

    def edit(folder: Path) -> dict[str, Any]:
        sys.path.insert(0, str(folder / "mine"))
        try:
            from prunelab.data.spec import InputSpec

            model = build_model(f"{MODULE}:build", InputSpec(3, 8, 3))
            torch.save(state(model), folder / "mine" / name)  # a whole model pickles its module's classes
        finally:
            sys.path.remove(str(folder / "mine"))
            sys.modules.pop(MODULE, None)
        return {"model.weights": f"mine/{name}"}

    return edit


def with_tensor(key: str, value: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.nn.Module], Any]:
    def state(model: torch.nn.Module) -> dict:
        weights = model.state_dict()
        weights[key] = value(weights[key])
        return weights

    return state


def without(key: str) -> Callable[[torch.nn.Module], Any]:
    return lambda model: {k: v for k, v in model.state_dict().items() if k != key}


def ten_classes(model: torch.nn.Module) -> dict:
    weights = model.state_dict()
    weights["6.weight"], weights["6.bias"] = torch.zeros(10, 8), torch.zeros(10)
    return weights


MODEL_CASES: dict[str, tuple[BuildEdit, tuple[str, ...]]] = {
    "module-missing": (params_only(model__arch="nosuchmodule:build"), ("model.arch='nosuchmodule:build'", "no module")),
    "import-fails": (builder_text("import nosuchpackage\n"), ("model.arch=usernet:build", "importing usernet failed")),
    "function-missing": (params_only(model__arch=f"{MODULE}:make"), ("has no function make", "allowed:")),
    "builder-raises": (
        builder_text("def build(num_classes, in_channels):\n    raise ValueError('no GPU here')\n"),
        ("build(num_classes=3, in_channels=3) raised ValueError: no GPU here",),
    ),
    "not-a-module": (
        builder_text("def build(num_classes, in_channels):\n    return 42\n"),
        ("returned int", "allowed: a builder that returns a torch.nn.Module"),
    ),
    "builder-outside-source": (params_only(model__source="images"), ("model.source='images' does not hold",)),
    "source-missing": (params_only(model__source="nowhere"), ("model.source='nowhere' does not exist",)),
    "weights-missing": (params_only(model__weights="mine/none.pt"), ("model.weights='mine/none.pt' does not exist",)),
    "weights-outside-source": (
        lambda folder: {**saved(lambda m: m.state_dict())(folder), "model.source": f"mine/{MODULE}.py"},
        ("is not inside model.source", "allowed: a file inside model.source"),
    ),
    "weights-a-whole-model": (saved(lambda m: m), ("model.weights=mine/w.pt", "not a state_dict")),
    "weights-not-a-dict": (saved(lambda m: [1, 2]), ("model.weights=mine/w.pt", "not a state_dict")),
    "weights-missing-key": (saved(without("3.conv1.weight")), ("keys do not fit", "missing 3.conv1.weight")),
    "weights-unexpected-key": (
        saved(lambda m: {**m.state_dict(), "extra.weight": torch.zeros(1)}),
        ("keys do not fit", "unexpected extra.weight"),
    ),
    "weights-wrong-shape": (
        saved(with_tensor("3.conv1.weight", lambda t: torch.zeros(8, 8, 5, 5))),
        ("3.conv1.weight has shape (8, 8, 5, 5), the model's is (8, 8, 3, 3)",),
    ),
    "weights-not-finite": (
        saved(with_tensor("0.weight", lambda t: t.index_fill(0, torch.tensor([0]), float("nan")))),
        ("0.weight holds NaN or infinite values",),
    ),
    "weights-other-classes": (saved(ten_classes), ("saved for 10 classes", "the data has 3")),
}


@pytest.fixture
def prepared(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from prunelab.runtime import stage_main
    from stages import prepare_data

    monkeypatch.chdir(project)
    monkeypatch.setattr(sys, "argv", ["prepare_data", "--seed", "0"])
    stage_main(prepare_data.main)
    return project


@pytest.mark.parametrize("case", list(MODEL_CASES))
def test_a_bad_builder_or_weights_file_is_refused_by_train_in_one_line(
    case: str, prepared: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    edit, expected = MODEL_CASES[case]
    write_params(prepared, edit(prepared))
    assert_one_line(refused(monkeypatch, capsys, prepared, "train"), expected)


def test_good_weights_are_loaded_not_trained(
    prepared: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from prunelab.runtime import load_torch, stage_main
    from stages import train

    weights = saved(lambda m: {k: v + 0.01 if v.is_floating_point() else v for k, v in m.state_dict().items()})
    write_params(prepared, weights(prepared))
    monkeypatch.setattr(sys, "argv", ["train", "--seed", "0"])
    stage_main(train.main)
    given, written = load_torch(prepared / "mine/w.pt", "w"), load_torch(prepared / "data/seeds/0/model.pt", "m")
    assert given.keys() == written.keys() and all(torch.equal(given[k], written[k]) for k in given)
    curve = (prepared / "metrics/seeds/0/train_curve.csv").read_text().splitlines()
    assert len(curve) == 2 and curve[1].startswith("0,")
    assert "(not trained)" in capsys.readouterr().err


# --------------------------------------------------------------------------- bad image folders
FolderEdit = Callable[[Path], None]


def remove_class_but_one(root: Path) -> None:
    for name in CLASSES[1:]:
        for split in ("train", "test"):
            for path in (root / split / name).iterdir():
                path.unlink()
            (root / split / name).rmdir()


def empty_class(root: Path) -> None:
    for path in (root / "train" / "bee").iterdir():
        path.unlink()


def mixed_sizes(root: Path) -> None:
    write_image(root / "train" / "bee" / "big.png", np.random.default_rng(3), (12, 12))


def truncated(root: Path) -> None:
    path = root / "train" / "cat" / "broken.png"
    write_image(path, np.random.default_rng(4), (8, 8))
    path.write_bytes(path.read_bytes()[:60])


def bomb(root: Path) -> None:
    # Past PIL's limit by width × height alone: the header is read, the pixels never decoded.
    limit = Image.MAX_IMAGE_PIXELS or 89_478_485
    side = int(limit**0.5) + 10
    Image.new("1", (side, side)).save(root / "train" / "ant" / "bomb.png")


def symlink_outside(root: Path) -> None:
    outside = root.parent / "elsewhere.png"
    write_image(outside, np.random.default_rng(5))
    os.symlink(outside, root / "train" / "ant" / "link.png")


def unknown_test_class(root: Path) -> None:
    write_image(root / "test" / "dog" / "0.png", np.random.default_rng(6))


FOLDER_CASES: dict[str, tuple[FolderEdit | None, dict[str, Any], tuple[str, ...]]] = {
    "path-missing": (None, {"data.path": "nowhere"}, ("data.path='nowhere' does not exist",)),
    "one-class": (remove_class_but_one, {}, ("1 class folder(s)", "allowed: at least 2")),
    "empty-class": (empty_class, {}, ("class 'bee' has no image", "allowed:")),
    "mixed-sizes": (mixed_sizes, {}, ("images of 2 sizes", "data.image_size is none")),
    "truncated-image": (truncated, {}, ("broken.png is unreadable or truncated",)),
    "bomb": (bomb, {}, ("bomb.png is past PIL's decompression-bomb limit",)),
    "symlink-outside": (symlink_outside, {}, ("link.png is a symlink that leads outside data.path",)),
    "test-class-unknown": (unknown_test_class, {}, ("test/ has class 'dog', which train/ lacks",)),
}


@pytest.mark.parametrize("case", list(FOLDER_CASES))
def test_a_bad_image_folder_is_refused_by_prepare_data_in_one_line(
    case: str, project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    damage, overrides, expected = FOLDER_CASES[case]
    if damage is not None:
        damage(project / "images")
    write_params(project, overrides)
    assert_one_line(refused(monkeypatch, capsys, project, "prepare_data"), expected)


def test_the_new_keys_are_validated_in_one_line() -> None:
    from prunelab.errors import UserError

    for dotted, value, expected in (
        ("data.image_size", 4, "data.image_size=4"),
        ("model.arch", "my-net:build", "model.arch='my-net:build'"),
        ("model.weights", "", "model.weights=''"),
    ):
        raw = copy.deepcopy(base_params())
        section, key = dotted.split(".")
        raw[section][key] = value
        with pytest.raises(UserError, match=expected):
            validate(raw)
