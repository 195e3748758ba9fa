"""The params schema: typed, frozen sections that match params.yaml key for key, strict types,
and an "allowed" text on every value. The one-line messages themselves are in test_errors."""

from __future__ import annotations

import ast
import copy
import json
from typing import Any

import pydantic
import pytest
import yaml

from prunelab.errors import UserError
from prunelab.params import Params, load_params, validate
from prunelab.params.schema import Section
from tests.helpers import ROOT


def raw_params() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def sections() -> dict[str, type[Section]]:
    return {name: info.annotation for name, info in Params.model_fields.items() if name != "seeds"}


def test_the_schema_has_params_yamls_keys_in_its_order() -> None:
    raw = raw_params()
    assert list(Params.model_fields) == list(raw)
    for name, section in sections().items():
        assert list(section.model_fields) == list(raw[name]), name


def test_every_value_says_what_is_allowed() -> None:
    """The error line quotes a field's description as its "allowed" text."""

    def values(model: type[pydantic.BaseModel], prefix: str) -> dict[str, Any]:
        found = {}
        for key, info in model.model_fields.items():
            nested = info.annotation if isinstance(info.annotation, type) else None
            if nested is not None and issubclass(nested, pydantic.BaseModel):
                found.update(values(nested, f"{prefix}{key}."))  # a section of sections (study.margins)
            else:
                found[f"{prefix}{key}"] = info
        return found

    leaves = values(Params, "")
    assert "study.margins.roc_auc" in leaves and "train.lr" in leaves
    for dotted, info in leaves.items():
        assert info.description and info.description.strip(), f"{dotted} has no allowed text"


def test_every_section_is_strict_closed_and_frozen() -> None:
    for model in (Params, *sections().values()):
        assert model.model_config["extra"] == "forbid" and model.model_config["strict"], model.__name__
        assert model.model_config["frozen"], model.__name__


def test_stages_get_typed_frozen_params() -> None:
    params = validate(raw_params())
    assert isinstance(params.prune.criteria, tuple) and params.prune.criteria[0] == "mean_activation"
    assert isinstance(params.seeds, tuple) and isinstance(params.finetune.ks, tuple)
    assert isinstance(params.train.lr, float) and isinstance(params.train.epochs, int)
    assert params.data.source == "mnist_5k" and params.model.arch == "pair_cnn"
    with pytest.raises(pydantic.ValidationError):
        params.train.epochs = 3
    with pytest.raises(pydantic.ValidationError):
        params.prune = params.prune
    with pytest.raises(AttributeError):
        params.prune.criteria.append("random")  # a tuple: frozen all the way down
    hash(params)


def test_validation_changes_no_value() -> None:
    """Read back as JSON, the validated params are params.yaml's (lists were kept as tuples)."""
    assert json.loads(load_params(ROOT / "params.yaml").model_dump_json()) == raw_params()


def test_an_int_is_a_float_and_ks_are_sorted() -> None:
    raw = raw_params()
    raw["train"]["lr"], raw["data"]["val_fraction"], raw["prune"]["ks"] = 1, 0, [5, 0, 3]
    params = validate(raw)
    assert params.train.lr == 1.0 and isinstance(params.train.lr, float)
    assert params.data.val_fraction == 0.0 and params.prune.ks == (0, 3, 5)


@pytest.mark.parametrize(
    ("dotted", "value", "expected"),
    [
        ("seeds", [True], "seeds contains True"),
        ("plot.dpi", 100.0, "plot.dpi=100.0 is invalid; allowed: an integer from 30 to 600"),
        ("train.lr", True, "train.lr=True is invalid"),
        ("train.lr", float("nan"), "train.lr=nan is invalid; allowed: a finite number > 0"),
        ("prune.compare_zero_weights", 1, "prune.compare_zero_weights=1 is invalid; allowed: true or false"),
        ("prune.ks", [1, 1], "prune.ks lists 1 more than once; allowed: 'all' or"),
        ("prune.criteria", {"mean_activation": 1}, "prune.criteria={'mean_activation': 1} is invalid"),
        ("finetune.ks", ["half", "half"], "finetune.ks lists half more than once"),
        ("finetune.ks", [True], "finetune.ks contains True"),
        ("export.k", "5", "export.k='5' is invalid; allowed: auto or an integer K"),
        ("data.task", None, "data.task=None is invalid; allowed: one of pairs, classification"),
    ],
)
def test_strict_types(dotted: str, value: Any, expected: str) -> None:
    raw = copy.deepcopy(raw_params())
    *path, last = dotted.split(".")
    node = raw
    for part in path:
        node = node[part]
    node[last] = value
    with pytest.raises(UserError) as err:
        validate(raw)
    assert str(err.value).startswith("params.yaml: ") and expected in str(err.value)


def test_the_first_problem_is_reported_in_params_yaml_order() -> None:
    raw = raw_params()
    raw["plot"]["dpi"], raw["train"]["epochs"], raw["train"]["typo"] = 1, 0, 1
    with pytest.raises(UserError, match=r"unknown key train\.typo"):
        validate(raw)
    del raw["train"]["typo"]
    with pytest.raises(UserError, match=r"train\.epochs=0"):
        validate(raw)


def _params_reads(path: Any) -> list[str]:
    """`params[...]` subscripts and `.raw` reads: the untyped access the schema replaced."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "params":
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
        if isinstance(node, ast.Attribute) and node.attr == "raw":
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_stages_and_the_library_read_params_as_typed_attributes() -> None:
    files = [*(ROOT / "stages").glob("*.py"), *(ROOT / "prunelab").rglob("*.py"), *(ROOT / "tools").glob("*.py")]
    files += [*(ROOT / "benchmarks").rglob("*.py")]
    assert [hit for path in sorted(files) for hit in _params_reads(path)] == []
