"""Bad input is refused before any work: one line on stderr naming the key (or the file), the
value and what is allowed; exit status 2; no traceback; no output written or lost.

Most cases run in-process through the real entry function, `stage_main(<stage>.main)`, in a
folder that holds only params.yaml (a subprocess costs seconds of torch import each); a
handful run as real `python -m stages.<name>` subprocesses, and must print the same line.
"""

from __future__ import annotations

import ast
import copy
import importlib
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from prunelab.data.spec import InputSpec
from prunelab.models.nets import build_model
from prunelab.pruning.activations import ActivationStats, save_stats
from prunelab.runtime import stage_main
from tests.helpers import PER_SEED_STAGES, ROOT, TINY_OVERRIDES, copy_repo, project_copy, stage, temp_leftovers

STAGE_NAMES = [
    "prepare_data", "train", "collect_activations", "sweep_prune", "finetune", "sensitivity", "latency", "budget",
    "aggregate", "export", "plot", "headline",
]  # fmt: skip
ALL_CRITERIA_BUT_BN = [
    "mean_activation",
    "mean_conv_output",
    "abs_mean_conv_output",
    "apoz",
    "l1_norm",
    "taylor",
    "reconstruction",
    "random",
    "reverse",
]


def base_params() -> dict[str, Any]:
    """The project's params.yaml with the tiny CI overrides: valid, so each case breaks one thing."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for dotted, value in TINY_OVERRIDES.items():
        *path, last = dotted.split(".")
        node = params
        for part in path:
            node = node[part]
        node[last] = value
    return params


# --------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class Case:
    id: str
    stage: str  # the entry point that must refuse it
    edit: Callable[[dict[str, Any]], None] | None  # changes the parsed params
    expected: tuple[str, ...]  # substrings of the one error line
    text: Callable[[str], str] | None = None  # or: changes the params.yaml text itself


def put(**dotted: Any) -> Callable[[dict[str, Any]], None]:
    """put(**{"train.epochs": 0}): set keys (dotted as in params.yaml)."""

    def edit(params: dict[str, Any]) -> None:
        for key, value in dotted.items():
            *path, last = key.split(".")
            node = params
            for part in path:
                node = node[part]
            node[last] = value

    return edit


def rename(section: str, key: str | None, new: str) -> Callable[[dict[str, Any]], None]:
    """Rename a top-level section (key=None) or a key inside a section, keeping its value."""

    def edit(params: dict[str, Any]) -> None:
        node = params if key is None else params[section]
        node[new] = node.pop(section if key is None else key)

    return edit


def drop(section: str, key: str) -> Callable[[dict[str, Any]], None]:
    return lambda params: params[section].pop(key)


CASES = [
    # seeds
    Case("seeds-empty", "prepare_data", put(seeds=[]), ("seeds=[]", "allowed: a non-empty list of at most 100")),
    Case("seeds-not-a-list", "aggregate", put(seeds=3), ("seeds=3", "allowed: a non-empty list")),
    Case("seeds-repeated", "train", put(seeds=[0, 1, 1]), ("seeds lists 1 more than once", "distinct integers")),
    Case("seeds-negative", "collect_activations", put(seeds=[0, -1]), ("seeds contains -1", "from 0 to 2147483647")),
    Case("seeds-float", "sweep_prune", put(seeds=[0, 1.5]), ("seeds contains 1.5", "distinct integers")),
    Case("seeds-string", "plot", put(seeds=["zero"]), ("seeds contains 'zero'", "distinct integers")),
    Case("seeds-too-many", "aggregate", put(seeds=list(range(101))), ("seeds=[0, 1, 2", "at most 100")),
    # data
    Case("source-unknown", "prepare_data", put(**{"data.source": "imagenet"}), ("data.source='imagenet'", "mnist_5k")),
    Case("task-unknown", "prepare_data", put(**{"data.task": "regression"}), ("data.task='regression'", "pairs")),
    Case("n_pairs-zero", "prepare_data", put(**{"data.n_pairs": 0}), ("data.n_pairs=0", "allowed: an integer >= 10")),
    Case("n_pairs-negative", "prepare_data", put(**{"data.n_pairs": -300}), ("data.n_pairs=-300", "an integer >= 10")),
    Case("n_pairs-string", "prepare_data", put(**{"data.n_pairs": "many"}), ("data.n_pairs='many'", "an integer")),
    Case("n_pairs-float", "prepare_data", put(**{"data.n_pairs": 300.5}), ("data.n_pairs=300.5", "an integer")),
    Case(
        "n_pairs-beyond-pool",
        "prepare_data",
        put(**{"data.n_pairs": 10_000_000}),
        ("data.n_pairs=10000000", "data.source=mnist_5k", "allowed: at most"),
    ),
    Case(
        "n_pairs-leaves-test-empty",
        "prepare_data",
        put(**{"data.n_pairs": 10, "data.test_fraction": 0.01}),
        ("data.n_pairs=10", "data.test_fraction=0.01", "test split empty", "allowed:"),
    ),
    Case("test_fraction-zero", "prepare_data", put(**{"data.test_fraction": 0}), ("data.test_fraction=0", "(0, 1)")),
    Case("test_fraction-one", "prepare_data", put(**{"data.test_fraction": 1.0}), ("data.test_fraction=1.0", "(0, 1)")),
    Case("same_fraction-negative", "prepare_data", put(**{"data.same_fraction": -0.1}), ("data.same_fraction=-0.1",)),
    Case("same_fraction-above-one", "prepare_data", put(**{"data.same_fraction": 1.5}), ("data.same_fraction=1.5",)),
    Case("val_fraction-one", "prepare_data", put(**{"data.val_fraction": 1}), ("data.val_fraction=1", "[0, 1)")),
    Case(
        "fractions-leave-no-train",
        "prepare_data",
        put(**{"data.test_fraction": 0.5, "data.val_fraction": 0.5}),
        ("data.test_fraction + data.val_fraction", "allowed: a sum < 1"),
    ),
    Case("section-not-mapping", "prepare_data", put(data=5), ("data=5", "data.source")),
    # study
    Case(
        "margin-negative",
        "headline",
        put(**{"study.margins.roc_auc": -1}),
        ("study.margins.roc_auc=-1", "allowed: a number of points in (0, 100]"),
    ),
    Case("margin-missing", "aggregate", put(**{"study.margins": {"acc": 1.0}}), ("study.margins.bacc is missing",)),
    # model
    Case("arch-unknown", "train", put(**{"model.arch": "resnet50"}), ("model.arch='resnet50'", "pair_cnn, simple_cnn")),
    # train
    Case("epochs-zero", "train", put(**{"train.epochs": 0}), ("train.epochs=0", "allowed: an integer >= 1")),
    Case("epochs-float", "train", put(**{"train.epochs": 2.5}), ("train.epochs=2.5", "an integer >= 1")),
    Case("epochs-bool", "train", put(**{"train.epochs": True}), ("train.epochs=True", "an integer >= 1")),
    Case("batch_size-zero", "train", put(**{"train.batch_size": 0}), ("train.batch_size=0", "an integer >= 1")),
    Case("lr-zero", "train", put(**{"train.lr": 0}), ("train.lr=0", "a finite number > 0")),
    Case("lr-infinite", "train", put(**{"train.lr": float("inf")}), ("train.lr=inf", "a finite number > 0")),
    Case("lr-string", "train", put(**{"train.lr": "fast"}), ("train.lr='fast'", "a finite number > 0")),
    Case("device-unknown", "train", put(**{"train.device": "tpu"}), ("train.device='tpu'", "auto, cpu, cuda")),
    Case("class_weight-unknown", "train", put(**{"train.class_weight": "inverse"}), ("train.class_weight='inverse'",)),
    # activations
    Case(
        "split-unknown",
        "collect_activations",
        put(**{"activations.split": "holdout"}),
        ("activations.split='holdout'", "test, train, val"),
    ),
    Case(
        "activations-batch_size-zero",
        "collect_activations",
        put(**{"activations.batch_size": 0}),
        ("activations.batch_size=0", "an integer >= 1"),
    ),
    Case(
        "split-val-without-val-data",
        "collect_activations",
        put(**{"activations.split": "val"}),
        ("activations.split='val'", "data.val_fraction"),
    ),
    # prune
    Case("criteria-empty", "sweep_prune", put(**{"prune.criteria": []}), ("prune.criteria=[]", "a non-empty list")),
    Case(
        "criteria-not-a-list",
        "sweep_prune",
        put(**{"prune.criteria": "mean_activation"}),
        ("prune.criteria='mean_activation'", "a non-empty list"),
    ),
    Case(
        "criteria-duplicate",
        "sweep_prune",
        put(**{"prune.criteria": ["mean_activation", "random", "mean_activation"]}),
        ("prune.criteria", "mean_activation more than once", "allowed: each criterion at most once"),
    ),
    Case(
        "criteria-unknown",
        "sweep_prune",
        put(**{"prune.criteria": ["mean_activation", "magnitude"]}),
        ("prune.criteria", "'magnitude'", "apoz"),
    ),
    Case(
        "criteria-baseline-first",
        "sweep_prune",
        put(**{"prune.criteria": ["random", "mean_activation"]}),
        ("prune.criteria", "'random'", "a ranking criterion first"),
    ),
    Case(
        "bn_gamma-without-batchnorm",
        "sweep_prune",
        put(**{"model.arch": "simple_cnn"}),
        ("prune.criteria has bn_gamma", "model.arch=simple_cnn", "allowed: the other criteria"),
    ),
    Case("mode-unknown", "sweep_prune", put(**{"prune.mode": "mask"}), ("prune.mode='mask'", "remove, zero_weights")),
    Case(
        "ks-K-equals-P",
        "sweep_prune",
        put(**{"prune.ks": [0, 64, 128]}),
        ("prune.ks=[0, 64, 128]", "K >= P", "K from 0 to 127"),
    ),
    Case(
        "ks-K-above-P-simple_cnn",
        "plot",
        put(**{"model.arch": "simple_cnn", "prune.criteria": ALL_CRITERIA_BUT_BN, "prune.ks": [0, 40]}),
        ("prune.ks=[0, 40]", "K from 0 to 31", "P=32"),
    ),
    Case(
        "layer-unknown",
        "collect_activations",
        put(**{"prune.layer": "conv4"}),
        (
            "prune.layer='conv4' is not a conv layer of model.arch=pair_cnn",
            "allowed: last or one of conv1, conv2, conv3",
        ),
    ),
    Case(
        "layer-beyond-simple_cnn",
        "sweep_prune",
        put(**{"model.arch": "simple_cnn", "prune.criteria": ALL_CRITERIA_BUT_BN, "prune.layer": "conv3"}),
        ("prune.layer='conv3'", "allowed: last or one of conv1, conv2"),
    ),
    Case(
        "layer-number",
        "sweep_prune",
        put(**{"prune.layer": 3}),
        ("prune.layer=3 is invalid", "or a conv layer of model.arch: conv1"),
    ),
    Case(
        "ks-K-beyond-the-layers-P",
        "sweep_prune",
        put(**{"prune.layer": "conv1", "prune.ks": [0, 40]}),
        ("prune.ks=[0, 40]", "K from 0 to 31", "pair_cnn's conv1 has P=32"),
    ),
    Case("ks-negative", "sweep_prune", put(**{"prune.ks": [-1, 2]}), ("prune.ks=[-1, 2]", "integers K >= 0")),
    Case("ks-word", "sweep_prune", put(**{"prune.ks": "some"}), ("prune.ks='some'", "'all'")),
    Case("k_step-zero", "sweep_prune", put(**{"prune.k_step": 0}), ("prune.k_step=0", "an integer >= 1")),
    Case("k_step-P", "sweep_prune", put(**{"prune.k_step": 128}), ("prune.k_step=128", "from 1 to 127")),
    Case("random_orders-zero", "sweep_prune", put(**{"prune.random_orders": 0}), ("prune.random_orders=0",)),
    Case(
        "compare_zero_weights-string",
        "sweep_prune",
        put(**{"prune.compare_zero_weights": "maybe"}),
        ("prune.compare_zero_weights='maybe'", "true or false"),
    ),
    # recalibrate: the decision is never re-fitted on test
    Case(
        "recal-on-test", "sweep_prune", put(**{"recalibrate.split": "test"}), ("recalibrate.split='test'", "train, val")
    ),
    Case(
        "recal-val-without-val",
        "sweep_prune",
        put(**{"recalibrate.split": "val"}),
        ("recalibrate.split='val' needs a validation split", "data.val_fraction"),
    ),
    Case("recal-samples-zero", "aggregate", put(**{"recalibrate.max_samples": 0}), ("recalibrate.max_samples=0",)),
    # finetune
    Case(
        "finetune-k-beyond-P",
        "finetune",
        put(**{"finetune.ks": [64, 128]}),
        ("finetune.ks contains K=128", "P=128", "allowed: K from 1 to 127"),
    ),
    Case("finetune-k-unknown-name", "finetune", put(**{"finetune.ks": ["most"]}), ("finetune.ks contains 'most'",)),
    Case("finetune-k-zero", "finetune", put(**{"finetune.ks": [0]}), ("finetune.ks contains 0", "integer >= 1")),
    Case(
        "finetune-criterion-unknown",
        "finetune",
        put(**{"finetune.criteria": ["mean_activation", "magic"]}),
        ("finetune.criteria contains unknown criterion 'magic'", "allowed: a list of distinct criteria, each headline"),
    ),
    Case(
        "finetune-epochs-zero", "finetune", put(**{"finetune.epochs": 0}), ("finetune.epochs=0", "a finite number > 0")
    ),
    # sensitivity and budget
    Case(
        "sensitivity-without-random",
        "sensitivity",
        put(**{"sensitivity.criteria": ["l1_norm"]}),
        ("sensitivity.criteria", "has no random"),
    ),
    Case(
        "budget-criterion-not-in-sensitivity",
        "budget",
        put(**{"budget.criteria": ["reconstruction", "random"]}),
        ("budget.criteria has 'reconstruction'", "allowed: criteria of sensitivity.criteria"),
    ),
    # export
    Case(
        "export-k-beyond-P",
        "export",
        put(**{"export.k": 128}),
        ("export.k=128", "allowed: auto or an integer K from 0 to 127"),
    ),
    Case("export-k-text", "export", put(**{"export.k": "most"}), ("export.k='most'", "allowed: auto or an integer")),
    Case("export-rounds", "export", put(**{"export.rounds": 2}), ("export.rounds=2", "an integer from 3 to 1000")),
    Case("budget-target", "budget", put(**{"budget.target": "speed"}), ("budget.target='speed'", "flops", "latency")),
    Case("latency-rounds", "latency", put(**{"latency.rounds": 1}), ("latency.rounds=1", "an integer from 2 to 1000")),
    Case("latency-counts", "export", put(**{"latency.counts": "all"}), ("latency.counts='all'", "an integer from 2")),
    Case(
        "export-criterion-unknown",
        "export",
        put(**{"export.criterion": "magic"}),
        ("export.criterion='magic'", "auto or"),
    ),
    Case(
        "export-criterion-not-in-study",
        "export",
        put(
            **{"prune.criteria": ["mean_activation", "random"], "export.criterion": "l1_norm", "export.budget": "none"}
        ),
        ("export.criterion='l1_norm' is not in the study", "mean_activation, random"),
    ),
    Case(
        "export-criterion-not-in-budget-study",
        "export",
        put(**{"export.criterion": "taylor"}),
        ("export.criterion='taylor' is not in the budget study", "budget.criteria (l1_norm, random)"),
    ),
    Case(
        "export-budget-not-studied",
        "export",
        put(**{"export.budget": 0.3}),
        (
            "export.budget=0.3 is not in the budget study",
            "allowed: auto, none or one of budget.flops (0.5)",
        ),
    ),
    Case(
        "export-strategy-not-studied",
        "export",
        put(**{"budget.strategies": ["uniform"], "export.strategy": "global"}),
        ("export.strategy='global' is not in the budget study", "budget.strategies (uniform)"),
    ),
    # plot
    Case("dpi-too-low", "plot", put(**{"plot.dpi": 5}), ("plot.dpi=5", "from 30 to 600")),
    Case("cmap-unknown", "plot", put(**{"plot.cmap": "rainbow"}), ("plot.cmap='rainbow'", "viridis")),
    # keys
    Case(
        "typo-section",
        "prepare_data",
        rename("train", None, "trian"),
        ("unknown key trian.epochs", "did you mean train.epochs?"),
    ),
    Case(
        "typo-key",
        "train",
        rename("train", "epochs", "epohcs"),
        ("unknown key train.epohcs", "did you mean train.epochs?", "allowed: train.epochs"),
    ),
    Case("unknown-top-level", "plot", put(extra=1), ("unknown key extra", "allowed: seeds, data")),
    Case("missing-key", "train", drop("train", "lr"), ("train.lr is missing", "allowed:", "train.lr")),
    # the file itself
    Case(
        "duplicate-key",
        "train",
        None,
        ("train.epochs is given twice", "allowed: each key once"),
        text=lambda t: t.replace("  epochs: 1\n", "  epochs: 1\n  epochs: 3\n"),
    ),
    Case("not-yaml", "sweep_prune", None, ("params.yaml: not valid YAML at line",), text=lambda t: t + "prune: [\n"),
    Case("empty-file", "plot", None, ("the file holds None", "allowed: a mapping"), text=lambda t: ""),
]
CASE_IDS = [case.id for case in CASES]
# The ones also run as real subprocesses: every stage once, and the trickiest checks.
SUBPROCESS_IDS = ["typo-section", "epochs-zero", "split-unknown", "criteria-duplicate", "cmap-unknown"]
SUBPROCESS_IDS += ["n_pairs-beyond-pool", "seeds-repeated", "seeds-too-many", "recal-on-test", "finetune-k-beyond-P"]


def test_the_table_covers_every_section_and_stage() -> None:
    from prunelab.params import Params

    assert len(CASES) >= 25 and len(set(CASE_IDS)) == len(CASES)
    named = " ".join(part for case in CASES for part in case.expected)
    for section in Params.model_fields:
        assert f"{section}." in named or f"{section}=" in named, section
    assert {case.stage for case in CASES} == set(STAGE_NAMES)


def write_case_params(folder: Path, case: Case) -> None:
    params = copy.deepcopy(base_params())
    if case.edit:
        case.edit(params)
    text = yaml.safe_dump(params, sort_keys=False)
    (folder / "params.yaml").write_text(case.text(text) if case.text else text)


def assert_one_line(err: str, expected: tuple[str, ...]) -> str:
    lines = err.strip().splitlines()
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("error: "), line
    for part in expected:
        assert part in line, f"{part!r} not in {line!r}"
    return line


@pytest.fixture(autouse=True)
def _restore_global_torch_state() -> Any:
    """In-process stages may call seed_everything (deterministic algorithms); undo it."""
    deterministic = torch.are_deterministic_algorithms_enabled()
    cublas = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    yield
    torch.use_deterministic_algorithms(deterministic)
    if cublas is None:
        os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)


def run_in_process(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, folder: Path, name: str) -> str:
    """Run stage `name` as its __main__ does (stage_main), in `folder`; return its stderr."""
    module = importlib.import_module(f"stages.{name}")
    monkeypatch.chdir(folder)
    monkeypatch.setattr(sys, "argv", [name, "--seed", "0"] if name in PER_SEED_STAGES else [name])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        stage_main(module.main)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_bad_params_are_refused_in_one_line_before_any_work(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    write_case_params(tmp_path, case)
    err = run_in_process(monkeypatch, capsys, tmp_path, case.stage)
    assert_one_line(err, case.expected)
    # Refused before any work: nothing was created next to params.yaml.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("name", STAGE_NAMES)
def test_device_cuda_without_cuda_is_refused_by_every_stage(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    write_case_params(tmp_path, Case("cuda", name, put(**{"train.device": "cuda"}), ()))
    err = run_in_process(monkeypatch, capsys, tmp_path, name)
    assert_one_line(err, ("train.device='cuda'", "no usable CUDA device", "allowed here: auto or cpu"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


def test_a_yaml_exponent_is_a_number_as_dvc_reads_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PyYAML alone reads `lr: 1e-3` as text; DVC (YAML 1.2) and `dvc exp run -S` as 0.001."""
    from prunelab.params import load_params

    write_case_params(tmp_path, Case("exp", "train", None, (), text=lambda t: t.replace("lr: 0.001", "lr: 1e-3")))
    monkeypatch.chdir(tmp_path)
    assert load_params().train.lr == pytest.approx(0.001)


def test_missing_params_file_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    err = run_in_process(monkeypatch, capsys, tmp_path, "train")
    assert_one_line(err, ("params.yaml: file not found", "project root"))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.integration  # a fresh interpreter (imports torch): the whole suite's tier
@pytest.mark.parametrize("case", [c for c in CASES if c.id in SUBPROCESS_IDS], ids=SUBPROCESS_IDS)
def test_bad_params_through_the_real_entry_point(case: Case, tmp_path: Path) -> None:
    repo = project_copy(tmp_path / "repo", git=False)
    write_case_params(repo, case)
    before = sorted(p.relative_to(repo) for p in repo.rglob("*") if "__pycache__" not in p.parts)
    result = stage(repo, case.stage)
    assert result.returncode == 2, result.stderr
    assert_one_line(result.stderr, case.expected)
    after = sorted(p.relative_to(repo) for p in repo.rglob("*") if "__pycache__" not in p.parts)
    assert after == before


# --------------------------------------------------------------------------- corrupted inputs
def replace_file(path: Path, data: bytes) -> None:
    """Write new content as a new file (never through a link into the DVC cache)."""
    path.unlink()
    path.write_bytes(data)


MODEL, STATS, PREPARED = "data/seeds/0/model.pt", "data/seeds/0/activations.npz", "data/seeds/0/prepared"


def save_npz(path: Path, **arrays: Any) -> None:
    path.unlink()
    with path.open("wb") as handle:
        np.savez(handle, **arrays)


def save_object(path: Path, obj: Any) -> None:
    path.unlink()
    torch.save(obj, path)


def real_state(repo: Path) -> dict[str, torch.Tensor]:
    return torch.load(repo / MODEL, weights_only=True)


class RunsCodeWhenUnpickled:
    """A 'checkpoint' whose unpickling would create a file: what weights_only=True prevents."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (open, (str(self.marker), "w"))


def corrupt_stats(repo: Path) -> None:
    p = 32  # the tiny repo's model has P = 128
    rng = np.random.default_rng(0)
    stats = ActivationStats(
        conv_mean=rng.random(p),
        act_mean=rng.random(p),
        feature_maps=rng.random((p, 7, 7)),
        apoz=rng.random(p),
        taylor=rng.random(p),
        contribution_gram=np.eye(p),
        n_samples=30,
    )
    (repo / STATS).unlink()
    save_stats(repo / STATS, stats, "test")


def truncate(path: Path) -> None:
    replace_file(path, path.read_bytes()[: path.stat().st_size // 2])


@dataclass(frozen=True)
class Corruption:
    id: str
    stage: str
    damage: Callable[[Path], None]
    expected: tuple[str, ...]


CORRUPTIONS = [
    Corruption(
        "model-other-arch",
        "collect_activations",
        lambda r: save_object(r / MODEL, build_model("simple_cnn", InputSpec(2, 28, 2)).state_dict()),
        ("data/seeds/0/model.pt: checkpoint does not fit model.arch=pair_cnn", "missing"),
    ),
    Corruption(
        "model-missing-keys",
        "sweep_prune",
        lambda r: save_object(r / MODEL, {k: v for k, v in real_state(r).items() if not k.startswith("head.fc1")}),
        (
            "data/seeds/0/model.pt: checkpoint does not fit model.arch=pair_cnn",
            "missing ['head.fc1.bias', 'head.fc1.weight']",
        ),
    ),
    Corruption(
        "model-other-shapes",
        "sweep_prune",
        lambda r: save_object(r / MODEL, build_model("pair_cnn", InputSpec(2, 28, 10)).state_dict()),
        ("data/seeds/0/model.pt: checkpoint does not fit", "head.rest.1.weight has shape (10, 256), expected (2, 256)"),
    ),
    Corruption(
        "model-non-tensor-value",
        "collect_activations",
        lambda r: save_object(r / MODEL, {**real_state(r), "head.fc1.bias": 3}),
        ("data/seeds/0/model.pt: checkpoint does not fit", "head.fc1.bias has shape int"),
    ),
    Corruption(
        "model-not-a-state-dict",
        "collect_activations",
        lambda r: save_object(r / MODEL, [torch.zeros(3)]),
        ("data/seeds/0/model.pt: not a state_dict",),
    ),
    Corruption(
        "model-not-torch",
        "collect_activations",
        lambda r: replace_file(r / MODEL, b"these are not the weights you are looking for\n"),
        ("data/seeds/0/model.pt: cannot read model checkpoint", "delete it and rerun"),
    ),
    Corruption(
        "model-truncated",
        "sweep_prune",
        lambda r: truncate(r / MODEL),
        ("data/seeds/0/model.pt: cannot read model checkpoint",),
    ),
    Corruption(
        "model-empty",
        "collect_activations",
        lambda r: replace_file(r / MODEL, b""),
        ("data/seeds/0/model.pt: cannot read model checkpoint",),
    ),
    Corruption(
        "model-pickled-code",
        "collect_activations",
        lambda r: save_object(r / MODEL, RunsCodeWhenUnpickled(r / "PWNED")),
        ("data/seeds/0/model.pt: cannot read model checkpoint (UnpicklingError)",),
    ),
    Corruption(
        "activations-other-P",
        "sweep_prune",
        corrupt_stats,
        ("data/seeds/0/activations.npz: statistics for 32 channels do not match the model's P=128",),
    ),
    Corruption(
        "activations-other-P-plot",
        "plot",
        corrupt_stats,
        ("data/seeds/0/activations.npz: statistics for 32 channels do not match the model's P=128",),
    ),
    Corruption(
        "activations-truncated",
        "sweep_prune",
        lambda r: truncate(r / STATS),
        ("data/seeds/0/activations.npz: unreadable activation statistics",),
    ),
    Corruption(
        "activations-not-npz",
        "plot",
        lambda r: replace_file(r / STATS, b"\x80\x04K\x01."),
        ("data/seeds/0/activations.npz: unreadable activation statistics",),
    ),
    Corruption(
        "prepared-train-truncated",
        "train",
        lambda r: truncate(r / PREPARED / "train.npz"),
        ("data/seeds/0/prepared/train.npz: cannot read prepared train split",),
    ),
    Corruption(
        "prepared-test-truncated",
        "collect_activations",
        lambda r: truncate(r / PREPARED / "test.npz"),
        ("data/seeds/0/prepared/test.npz: cannot read prepared test split",),
    ),
    Corruption(
        "prepared-test-pickled-objects",
        "sweep_prune",
        lambda r: save_npz(
            r / PREPARED / "test.npz", images=np.array([RunsCodeWhenUnpickled(r / "PWNED")]), labels=[0]
        ),
        ("data/seeds/0/prepared/test.npz: cannot read prepared test split (ValueError)",),
    ),
    Corruption(
        "prepared-test-wrong-content",
        "sweep_prune",
        lambda r: save_npz(r / PREPARED / "test.npz", pixels=np.zeros(3)),
        ("data/seeds/0/prepared/test.npz: cannot read prepared test split (KeyError)",),
    ),
    Corruption(
        "prepared-test-float-images",
        "collect_activations",
        lambda r: save_npz(r / PREPARED / "test.npz", images=np.zeros((3, 2, 28, 28)), labels=np.zeros(3)),
        ("data/seeds/0/prepared/test.npz: not a prepared split",),
    ),
    Corruption(
        "prepared-info-garbled",
        "train",
        lambda r: replace_file(r / PREPARED / "info.json", b"{not json"),
        ("data/seeds/0/prepared/info.json: unreadable prepared-data info (JSONDecodeError)",),
    ),
    Corruption(
        "summary-garbled",
        "aggregate",
        lambda r: replace_file(r / "metrics/seeds/1/summary.json", b'{"criteria": '),
        ("metrics/seeds/1/summary.json: unreadable summary (JSONDecodeError)",),
    ),
    Corruption(
        "sweep-foreign-table",
        "aggregate",
        lambda r: replace_file(r / "metrics/seeds/0/sweep.csv", b"epoch,loss\n1,0.3\n"),
        ("metrics/seeds/0/sweep.csv: not a sweep table",),
    ),
    Corruption(
        "sweep-missing",
        "plot",
        lambda r: (r / "metrics/seeds/1/sweep.csv").unlink(),
        ("metrics/seeds/1/sweep.csv: the sweep of seed 1 is missing",),
    ),
    # Aggregated silently before (means over fewer rows, under the full seed count).
    Corruption(
        "sweep-cut-to-300-bytes",
        "aggregate",
        lambda r: replace_file(r / "metrics/seeds/1/sweep.csv", (r / "metrics/seeds/1/sweep.csv").read_bytes()[:300]),
        ("metrics/seeds/1/sweep.csv: the last line has no line end: the file is cut short; rerun sweep_prune",),
    ),
    Corruption(
        "sweep-rows-dropped",
        "plot",
        lambda r: replace_file(
            r / "metrics/seeds/0/sweep.csv",
            b"".join((r / "metrics/seeds/0/sweep.csv").read_bytes().splitlines(keepends=True)[:-5]),
        ),
        ("metrics/seeds/0/sweep.csv: 5 of the 1408 rows params.yaml implies are missing", "rerun sweep_prune"),
    ),
    Corruption(
        "summary-not-its-sweep",
        "aggregate",
        lambda r: edit_json(r / "metrics/seeds/0/summary.json", lambda d: d.update(baseline_accuracy=50.0)),
        ("metrics/seeds/0/summary.json: the baseline acc 50.0 is not its sweep's K=0 value", "rerun sweep_prune"),
    ),
    # A traceback (`cannot reshape array`) before.
    Corruption(
        "prepared-test-label-out-of-range",
        "sweep_prune",
        lambda r: edit_npz(r / PREPARED / "test.npz", "labels", lambda a: a.__setitem__(3, 57)),
        ("data/seeds/0/prepared/test.npz: label 57 of sample 3 is outside 0..1", "rerun prepare_data"),
    ),
    Corruption(
        "activations-nan",
        "plot",
        lambda r: edit_npz(r / STATS, "apoz", lambda a: a.__setitem__(5, np.nan)),
        ("data/seeds/0/activations.npz: apoz holds NaN or infinite values; rerun collect_activations",),
    ),
    Corruption(
        "model-flipped-byte",
        "collect_activations",
        lambda r: flip_byte(r / MODEL),
        ("data/seeds/0/model.pt: damaged model checkpoint (CRC mismatch in",),
    ),
    Corruption(
        "efficiency-not-its-measurements",
        "headline",
        lambda r: edit_json(r / "metrics/efficiency.json", lambda d: d["ratio"].update(params=99.0)),
        ("metrics/efficiency.json: ratio.params=99.0 is not its own measurements' ratio", "rerun export"),
    ),
]


def edit_json(path: Path, change: Callable[[dict], None]) -> None:
    data = json.loads(path.read_text())
    change(data)
    replace_file(path, (json.dumps(data, indent=2) + "\n").encode())


def edit_npz(path: Path, name: str, change: Callable[[np.ndarray], None]) -> None:
    with np.load(path) as raw:
        arrays = {key: raw[key].copy() for key in raw.files}
    change(arrays[name])
    save_npz(path, **arrays)


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    replace_file(path, bytes(data))


# What each stage writes: a failed stage must leave every one of them as it was.
STAGE_OUTPUTS = {
    "train": ["data/seeds/0/model.pt", "metrics/seeds/0/train_curve.csv"],
    "collect_activations": ["data/seeds/0/activations.npz"],
    "sweep_prune": ["metrics/seeds/0/sweep.csv", "metrics/seeds/0/summary.json", "metrics/seeds/0/ranking.csv"],
    "aggregate": ["metrics/metrics.json", "metrics/report.md", "metrics/study/bacc.csv"],
    "plot": ["metrics/plots/feature_maps.png", "metrics/plots/criteria.png", "metrics/plots/vs_random.png"],
    "headline": ["metrics/headline.json"],
}


@pytest.fixture
def broken_repo(tiny_repo: Path, tmp_path: Path) -> Path:
    return copy_repo(tiny_repo, tmp_path / "repo")


@pytest.mark.integration
@pytest.mark.parametrize("corruption", CORRUPTIONS, ids=[c.id for c in CORRUPTIONS])
def test_corrupted_inputs_are_named_in_one_line(
    corruption: Corruption,
    broken_repo: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    corruption.damage(broken_repo)
    outputs = {p: (broken_repo / p).read_bytes() for p in STAGE_OUTPUTS[corruption.stage]}
    err = run_in_process(monkeypatch, capsys, broken_repo, corruption.stage)
    assert_one_line(err, corruption.expected)
    # Nothing lost: the stage's previous outputs are intact and no temporary file is left.
    assert {p: (broken_repo / p).read_bytes() for p in outputs} == outputs
    assert temp_leftovers(broken_repo) == []
    assert not (broken_repo / "PWNED").exists()


@pytest.mark.integration
def test_corrupted_checkpoint_through_the_real_entry_point(broken_repo: Path) -> None:
    replace_file(broken_repo / MODEL, b"not a checkpoint")
    result = stage(broken_repo, "collect_activations")
    assert result.returncode == 2
    assert_one_line(result.stderr, ("data/seeds/0/model.pt: cannot read model checkpoint",))


def torch_load_calls() -> list[tuple[str, ast.Call]]:
    calls = []
    for path in sorted(
        [*(ROOT / "prunelab").glob("*.py"), *(ROOT / "stages").glob("*.py"), *(ROOT / "benchmarks").rglob("*.py")]
    ):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "load"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "torch"
            ):
                calls.append((f"{path.relative_to(ROOT)}:{node.lineno}", node))
    return calls


def test_every_torch_load_is_weights_only() -> None:
    calls = torch_load_calls()
    assert calls, "prunelab.runtime.load_torch calls torch.load"
    for where, call in calls:
        flags = {kw.arg: kw.value for kw in call.keywords}
        assert isinstance(flags.get("weights_only"), ast.Constant) and flags["weights_only"].value is True, where


def test_load_torch_refuses_pickled_code(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from prunelab.errors import UserError
    from prunelab.runtime import load_torch

    marker = tmp_path / "PWNED"
    torch.save(RunsCodeWhenUnpickled(marker), tmp_path / "model.pt")
    with pytest.raises(UserError, match=r"model.pt: cannot read model checkpoint \(UnpicklingError\)"):
        load_torch(tmp_path / "model.pt", "model checkpoint")
    assert not marker.exists()


def test_user_errors_in_the_tree_are_one_line() -> None:
    """Every literal UserError message in the package and the stages is a single line (no embedded newlines)."""
    for path in [*(ROOT / "prunelab").glob("*.py"), *(ROOT / "stages").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "UserError":
                for part in ast.walk(node):
                    if isinstance(part, ast.Constant) and isinstance(part.value, str):
                        assert "\n" not in part.value, f"{path.name}:{node.lineno}"
