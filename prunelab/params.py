"""The one place where params.yaml is read and validated.

Every stage calls `load_params()` before doing any work. A user mistake raises
`UserError` with one line that names the dotted params.yaml key, the value given and
what is allowed; `prunelab.runtime.stage_main` turns that into a non-zero exit with no
stack trace.

No torch at import (tested): the registries it checks against (`ARCHS`, `SOURCES`,
`CRITERIA`) are torch-free, and only `train.device: cuda` asks torch whether CUDA exists.
"""

from __future__ import annotations

import difflib
import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from prunelab.errors import UserError
from prunelab.models.archs import ARCHS
from prunelab.prepare.sources import SOURCES
from prunelab.pruning.criteria import CRITERIA
from prunelab.pruning.finetune import NAMED_KS, named_k

PARAMS_FILE = Path("params.yaml")


# --------------------------------------------------------------------------- checks
# Each check takes (key, value) and returns the normalised value or raises UserError.
Check = Callable[[str, Any], Any]


def _fail(key: str, value: Any, allowed: str) -> UserError:
    return UserError(f"params.yaml: {key}={value!r} is invalid; allowed: {allowed}")


def integer(low: int | None = None, high: int | None = None) -> Check:
    def check(key: str, value: Any) -> int:
        bounds = _bounds_text(low, high)
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(key, value, f"an integer{bounds}")
        if (low is not None and value < low) or (high is not None and value > high):
            raise _fail(key, value, f"an integer{bounds}")
        return value

    return check


def _bounds_text(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f" from {low} to {high}"
    if low is not None:
        return f" >= {low}"
    if high is not None:
        return f" <= {high}"
    return ""


def positive_float() -> Check:
    def check(key: str, value: Any) -> float:
        # math.isfinite: `.inf` is a YAML float too, and no step size or rate may be infinite.
        if isinstance(value, bool) or not isinstance(value, int | float) or not (value > 0 and math.isfinite(value)):
            raise _fail(key, value, "a finite number > 0")
        return float(value)

    return check


def fraction(allow_zero: bool = False) -> Check:
    """A share strictly inside (0, 1); `allow_zero` also admits 0 (meaning 'none')."""
    interval = "[0, 1)" if allow_zero else "(0, 1)"

    def check(key: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _fail(key, value, f"a number in {interval}")
        if not (0 < value < 1 or (allow_zero and value == 0)):
            raise _fail(key, value, f"a number in {interval}")
        return float(value)

    return check


def choice(options: Callable[[], list[str]] | list[str]) -> Check:
    def check(key: str, value: Any) -> str:
        allowed = options() if callable(options) else options
        if not isinstance(value, str) or value not in allowed:
            raise _fail(key, value, _one_of(allowed))
        return value

    return check


def boolean() -> Check:
    def check(key: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise _fail(key, value, "true or false")
        return value

    return check


def _one_of(allowed: list[str]) -> str:
    return "one of " + ", ".join(allowed)


def criteria_list() -> Check:
    def check(key: str, value: Any) -> list[str]:
        allowed = _one_of(list(CRITERIA))
        if not isinstance(value, list) or not value:
            raise _fail(key, value, f"a non-empty list of criteria, each {allowed}")
        for item in value:
            if not isinstance(item, str) or item not in CRITERIA:
                raise UserError(f"params.yaml: {key} contains unknown criterion {item!r}; allowed: {allowed}")
        duplicates = sorted({c for c in value if value.count(c) > 1})
        if duplicates:
            raise UserError(
                f"params.yaml: {key} lists {', '.join(duplicates)} more than once; allowed: each criterion at most once"
            )
        if value[0] in ("random", "reverse"):
            raise UserError(
                f"params.yaml: {key} starts with {value[0]!r}, but the first criterion is the "
                "headline ranking; allowed: a ranking criterion first (e.g. mean_activation)"
            )
        return list(value)

    return check


MAX_SEEDS = 100
SEED_RANGE = (0, 2**31 - 1)


def seed_list() -> Check:
    """A non-empty list of distinct integer seeds, at most MAX_SEEDS of them."""
    low, high = SEED_RANGE
    allowed = f"a non-empty list of at most {MAX_SEEDS} distinct integers from {low} to {high}"

    def check(key: str, value: Any) -> list[int]:
        if not isinstance(value, list) or not value or len(value) > MAX_SEEDS:
            raise _fail(key, value, allowed)
        for seed in value:
            if isinstance(seed, bool) or not isinstance(seed, int) or not low <= seed <= high:
                raise UserError(f"params.yaml: {key} contains {seed!r}; allowed: {allowed}")
        repeated = sorted({s for s in value if value.count(s) > 1})
        if repeated:
            raise UserError(
                f"params.yaml: {key} lists {', '.join(map(str, repeated))} more than once; allowed: {allowed}"
            )
        return list(value)

    return check


def finetune_ks() -> Check:
    """A list (possibly empty: no fine-tuning) of distinct K: integers >= 1 or NAMED_KS names."""
    allowed = f"a list of distinct K, each an integer >= 1 or one of {', '.join(NAMED_KS)} ([] for none)"

    def check(key: str, value: Any) -> list[str | int]:
        if not isinstance(value, list) or len({str(v) for v in value}) != len(value):
            raise _fail(key, value, allowed)
        for k in value:
            ok = k in NAMED_KS if isinstance(k, str) else (not isinstance(k, bool) and isinstance(k, int) and k >= 1)
            if not ok:
                raise UserError(f"params.yaml: {key} contains {k!r}; allowed: {allowed}")
        return list(value)

    return check


def criteria_subset() -> Check:
    """A list of distinct criterion names, `headline` standing for the first of prune.criteria.
    Names prune.criteria does not rank are skipped where used (see `finetune_criteria`), so
    `dvc exp run -S prune.criteria=[...]` needs no second edit."""
    allowed = f"a list of distinct criteria, each headline or one of {', '.join(CRITERIA)}"

    def check(key: str, value: Any) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(c, str) for c in value) or len(set(value)) != len(value):
            raise _fail(key, value, allowed)
        unknown = [c for c in value if c != "headline" and c not in CRITERIA]
        if unknown:
            raise UserError(f"params.yaml: {key} contains unknown criterion {unknown[0]!r}; allowed: {allowed}")
        return list(value)

    return check


def auto_or(check_value: Check, allowed: str) -> Check:
    """`auto`, or a value `check_value` accepts."""

    def check(key: str, value: Any) -> Any:
        if value == "auto":
            return value
        try:
            return check_value(key, value)
        except UserError:
            raise _fail(key, value, f"auto or {allowed}") from None

    return check


def ks_spec() -> Check:
    """`all`, or a non-empty list of distinct non-negative integers (upper bound checked later)."""

    def check(key: str, value: Any) -> str | list[int]:
        if value == "all":
            return value
        if (
            not isinstance(value, list)
            or not value
            or any(isinstance(k, bool) or not isinstance(k, int) or k < 0 for k in value)
            or len(set(value)) != len(value)
        ):
            raise _fail(key, value, "'all' or a non-empty list of distinct integers K >= 0")
        return sorted(value)

    return check


def device_name() -> Check:
    def check(key: str, value: Any) -> str:
        value = choice(["auto", "cpu", "cuda"])(key, value)
        if value == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise UserError(
                    f"params.yaml: {key}='cuda' but this machine has no usable CUDA device; allowed here: auto or cpu"
                )
        return value

    return check


# --------------------------------------------------------------------------- schema
SCHEMA: dict[str, Any] = {
    "seeds": seed_list(),
    "data": {
        "source": choice(list(SOURCES)),
        "task": choice(["pairs", "classification"]),
        "n_pairs": integer(10),
        "test_fraction": fraction(),
        "same_fraction": fraction(),
        "val_fraction": fraction(allow_zero=True),
    },
    "model": {"arch": choice(list(ARCHS))},
    "train": {
        "epochs": integer(1),
        "batch_size": integer(1),
        "lr": positive_float(),
        "device": device_name(),
        "class_weight": choice(["none", "balanced"]),
    },
    "activations": {
        "split": choice(["test", "train", "val"]),
        "batch_size": integer(1),
    },
    "prune": {
        "criteria": criteria_list(),
        "mode": choice(["remove", "zero_weights"]),
        "ks": ks_spec(),
        "k_step": integer(1),
        "random_orders": integer(1, 10_000),
        "compare_zero_weights": boolean(),
    },
    "recalibrate": {
        "split": choice(["train", "val"]),
        "max_samples": integer(10),
    },
    "finetune": {
        "ks": finetune_ks(),
        "criteria": criteria_subset(),
        "epochs": positive_float(),  # fractions of an epoch allowed
        "lr": positive_float(),
    },
    "export": {
        "criterion": auto_or(choice(list(CRITERIA)), "a criterion of prune.criteria"),
        "k": auto_or(integer(0), "an integer K from 0 to P-1"),
    },
    "plot": {
        "dpi": integer(30, 600),
        "cmap": choice(["viridis", "magma", "gray", "inferno", "cividis"]),
    },
}

# Params that only mean something for one task. For the other task they are named as
# ignored in the stage log (never silently misread).
TASK_ONLY_KEYS: dict[str, list[str]] = {
    "pairs": ["data.n_pairs", "data.same_fraction"],
    "classification": [],
}


# --------------------------------------------------------------------------- loading
@dataclass(frozen=True)
class Params:
    """Validated params, as plain nested dicts (the shape of params.yaml)."""

    raw: dict[str, Any]

    def __getitem__(self, section: str) -> Any:
        return self.raw[section]

    @property
    def seeds(self) -> list[int]:
        """The replicates of the study: each seed is one full, independent run of the lab."""
        return self.raw["seeds"]

    def ignored_keys(self) -> list[str]:
        """Keys that the chosen task does not use."""
        task = self.raw["data"]["task"]
        return [key for other, keys in TASK_ONLY_KEYS.items() if other != task for key in keys]

    def ignored_params(self) -> list[str]:
        """Params the chosen task and source do not use, so the log can name them."""
        ignored = self.ignored_keys()
        if self.raw["data"]["task"] == "classification" and SOURCES[self.raw["data"]["source"]].official_split:
            ignored.append("data.test_fraction (the source has an official test split)")
        return ignored


def _all_keys(schema: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for name, sub in schema.items():
        dotted = f"{prefix}{name}"
        keys.append(dotted)
        if isinstance(sub, dict):
            keys.extend(_all_keys(sub, dotted + "."))
    return keys


def _unknown_key_error(dotted: str, value: Any, allowed: list[str]) -> UserError:
    """Name the closest valid key. A misspelt section (`trian:` holding `epochs`) is reported
    by its first key, `trian.epochs`, so the hint can be the full key `train.epochs`."""
    if isinstance(value, dict) and value:
        dotted = f"{dotted}.{next(iter(value))}"
    close = difflib.get_close_matches(dotted, _all_keys(SCHEMA), n=1, cutoff=0.7)
    hint = f"did you mean {close[0]}? " if close else ""
    return UserError(f"params.yaml: unknown key {dotted}; {hint}allowed: {', '.join(allowed)}")


def _validate_section(schema: dict[str, Any], values: Any, prefix: str) -> dict[str, Any]:
    if not isinstance(values, dict):
        allowed = f"a mapping of the keys {', '.join(f'{prefix}{k}' for k in schema)}"
        if not prefix:
            raise UserError(f"params.yaml: the file holds {values!r}; allowed: {allowed}")
        raise _fail(prefix.rstrip("."), values, allowed)
    for name in values:
        if name not in schema:
            raise _unknown_key_error(f"{prefix}{name}", values[name], [f"{prefix}{k}" for k in schema])
    result: dict[str, Any] = {}
    for name, check in schema.items():
        dotted = f"{prefix}{name}"
        if name not in values:
            keys = ", ".join(f"{prefix}{k}" for k in schema)
            raise UserError(f"params.yaml: {dotted} is missing; allowed: a value for each of {keys}")
        if isinstance(check, dict):
            result[name] = _validate_section(check, values[name], dotted + ".")
        else:
            result[name] = check(dotted, values[name])
    return result


def _validate_relations(params: dict[str, Any]) -> None:
    """Checks that involve more than one key."""
    arch = ARCHS[params["model"]["arch"]]
    channels = arch.channels
    if "bn_gamma" in params["prune"]["criteria"] and not arch.batchnorm:
        raise UserError(
            f"params.yaml: prune.criteria has bn_gamma, but model.arch={params['model']['arch']} has no "
            "BatchNorm after the pruned conv; allowed: the other criteria"
        )
    ks = params["prune"]["ks"]
    if ks != "all" and max(ks) >= channels:
        raise UserError(
            f"params.yaml: prune.ks={ks!r} contains K >= P; allowed: K from 0 to {channels - 1} "
            f"({params['model']['arch']} has P={channels} channels)"
        )
    if params["prune"]["k_step"] >= channels:
        raise UserError(
            f"params.yaml: prune.k_step={params['prune']['k_step']} is invalid; "
            f"allowed: an integer from 1 to {channels - 1}"
        )
    if params["activations"]["split"] == "val" and params["data"]["val_fraction"] == 0:
        raise UserError(
            "params.yaml: activations.split='val' needs a validation split; "
            "allowed: set data.val_fraction in (0, 1), or use split test or train"
        )
    if params["recalibrate"]["split"] == "val" and params["data"]["val_fraction"] == 0:
        raise UserError(
            "params.yaml: recalibrate.split='val' needs a validation split; "
            "allowed: set data.val_fraction in (0, 1), or use split train"
        )
    finetune = params["finetune"]
    for k in finetune["ks"]:
        if named_k(k, channels) >= channels:
            raise UserError(
                f"params.yaml: finetune.ks contains K={k}, but {params['model']['arch']} has P={channels} channels; "
                f"allowed: K from 1 to {channels - 1}, or one of {', '.join(NAMED_KS)}"
            )
    export = params["export"]
    if export["k"] != "auto" and export["k"] >= channels:
        raise UserError(
            f"params.yaml: export.k={export['k']} is invalid; allowed: auto or an integer K from 0 to "
            f"{channels - 1} ({params['model']['arch']} has P={channels} channels)"
        )
    if export["criterion"] != "auto" and export["criterion"] not in params["prune"]["criteria"]:
        raise UserError(
            f"params.yaml: export.criterion={export['criterion']!r} is not in the study; allowed: auto or one of "
            f"prune.criteria ({', '.join(params['prune']['criteria'])})"
        )
    if params["data"]["test_fraction"] + params["data"]["val_fraction"] >= 1:
        raise UserError(
            "params.yaml: data.test_fraction + data.val_fraction must leave training data; allowed: a sum < 1"
        )


def validate(raw: Any) -> Params:
    """Validate a parsed params.yaml; raise UserError on the first problem."""
    params = _validate_section(SCHEMA, raw, "")
    _validate_relations(params)
    return Params(params)


class _ParamsLoader(yaml.SafeLoader):
    """yaml.safe_load that reads numbers as DVC does (YAML 1.2): PyYAML (YAML 1.1) reads
    `1e-3` as the text '1e-3', while DVC, `dvc exp run -S` and dvc.lock see the number 0.001."""


_ParamsLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def _duplicate_key(node: yaml.Node, prefix: str = "") -> tuple[str, int] | None:
    """The first key given twice in one mapping, dotted, and its line. PyYAML would silently
    keep the last value; DVC refuses the file with a vaguer message."""
    if isinstance(node, yaml.MappingNode):
        seen = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue  # a list or mapping as a key: validate() names it as unknown
            dotted = f"{prefix}{key_node.value}"
            if key_node.value in seen:
                return dotted, key_node.start_mark.line + 1
            seen.add(key_node.value)
            found = _duplicate_key(value_node, f"{dotted}.")
            if found:
                return found
    return None


def load_params(path: Path = PARAMS_FILE) -> Params:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UserError(f"{path}: file not found; run from the project root") from None
    try:
        duplicate = _duplicate_key(yaml.compose(text, Loader=_ParamsLoader))
        raw = yaml.load(text, Loader=_ParamsLoader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise UserError(f"{path}: not valid YAML{where}") from None
    if duplicate:
        raise UserError(f"{path}: {duplicate[0]} is given twice (line {duplicate[1]}); allowed: each key once")
    return validate(raw)


def replicate_seed(params: Params, argv: list[str] | None = None) -> int:
    """The seed a per-replicate stage runs for: `--seed N` on its command line (dvc.yaml's
    matrix passes each entry of `seeds`), or the only seed when `seeds` has one."""
    args = sys.argv[1:] if argv is None else argv
    if not args:
        if len(params.seeds) == 1:
            return params.seeds[0]
        raise UserError(f"this stage runs one replicate; allowed: --seed N with N one of seeds={params.seeds}")
    if len(args) != 2 or args[0] != "--seed":
        raise UserError(f"arguments {' '.join(args)!r} are invalid; allowed: --seed N")
    low, high = SEED_RANGE
    try:
        seed = int(args[1])
    except ValueError:
        seed = None
    if seed is None or not low <= seed <= high:
        raise UserError(f"--seed {args[1]} is invalid; allowed: an integer from {low} to {high}")
    return seed
