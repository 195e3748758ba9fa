"""The fuzzer's parts: random damage to each kind of intermediate file, random params, and a
runner that feeds them to a stage in-process and classifies what happened.

Per example the runner damages one file (or params.yaml) of a private copy of the tiny study,
runs one stage through its real entry function (`stage_main(<stage>.main)`), compares every
declared output with its bytes before, and puts the file back. The outcomes:

* `refused`: SystemExit 2, exactly one line on stderr (`error: …`), no traceback, every declared
  output byte for byte as before and no temporary file left;
* `same_bytes`: the stage ran and wrote exactly the undamaged run's bytes;
* `valid_params_runs`: the stage ran under a valid change to a param it declares in dvc.yaml,
  so its outputs were meant to change;
* `plausible_numbers`: the damage left a well-formed file that differs only in the value of a
  number (a digit turned into another, a point or sign into a digit: `12.5` → `17.5`), and no
  other file the stage reads holds that number to check it against: such a file cannot be told
  from a real result without a checksum, so it is counted, not failed;

and the failures:

* `tracebacks`: any exception other than the stage's one-line refusal;
* `messy_refusals`: a refusal with another exit status, or not exactly one clean stderr line;
* `partial_outputs`: a refused run that changed an output or left a temporary file, or any run
  that wrote outside the stage's declared outputs;
* `silent_differences`: a run that succeeded with other bytes than the undamaged run's (or that
  accepted params the schema must refuse, or ran differently under a param it does not declare).
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import io
import json
import math
import re
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from hypothesis import strategies as st

from prunelab.runtime import stage_main
from tests.helpers import PER_SEED_STAGES, expanded_stages, temp_leftovers

OUTCOMES = ("refused", "same_bytes", "valid_params_runs", "plausible_numbers")
FAILURES = ("tracebacks", "messy_refusals", "partial_outputs", "silent_differences")

Damage = tuple[str, bytes]  # (what was done, the damaged file's bytes)


# --------------------------------------------------------------------------- damage to files
def anywhere(n: int) -> st.SearchStrategy[int]:
    """An index in 0..n-1: half the time hypothesis' own choice (which favours the ends and small
    values), half the time uniform over the whole range (from a seeded `random.Random`: still
    reproducible under derandomize), so damage lands anywhere in a 100 kB table, not only near its top."""
    return st.one_of(st.integers(0, n - 1), st.randoms(use_true_random=True).map(lambda r: r.randrange(n)))


def truncations(data: bytes) -> st.SearchStrategy[Damage]:
    """Cut at any byte (the file made strictly shorter)."""
    return anywhere(max(len(data), 1)).map(lambda at: (f"truncated to {at} of {len(data)} bytes", data[:at]))


def flips(data: bytes) -> st.SearchStrategy[Damage]:
    """One to three bytes XORed with a random non-zero byte (bit rot, a bad copy)."""

    def flip(changes: list[tuple[int, int]]) -> Damage:
        out = bytearray(data)
        for position, mask in changes:
            out[position] ^= mask
        return f"bytes flipped at {sorted(p for p, _ in changes)}", bytes(out)

    masks = st.one_of(st.sampled_from([1 << bit for bit in range(8)]), st.integers(1, 255))  # a bit, or a byte
    pair = st.tuples(anywhere(len(data)), masks)
    return st.lists(pair, min_size=1, max_size=3, unique_by=lambda c: c[0]).map(flip)


def bytes_damage(data: bytes) -> st.SearchStrategy[Damage]:
    return st.one_of(truncations(data), flips(data))


def csv_damage(data: bytes) -> st.SearchStrategy[Damage]:
    """Truncation, flips, a dropped or repeated row, a dropped column, a NaN-like field."""
    lines = data.decode().removesuffix("\n").split("\n")
    n_rows, n_cols = len(lines) - 1, len(lines[0].split(","))

    def joined(new: list[str]) -> bytes:
        return ("\n".join(new) + "\n").encode()

    def drop_row(i: int) -> Damage:
        return f"row {i} dropped", joined(lines[:i] + lines[i + 1 :])

    def repeat_row(i: int) -> Damage:
        return f"row {i} repeated", joined(lines[: i + 1] + lines[i:])

    def drop_column(j: int) -> Damage:
        return f"column {j} dropped", joined([",".join(f for c, f in enumerate(x.split(",")) if c != j) for x in lines])

    def nan_field(where: tuple[int, int, str]) -> Damage:
        i, j, token = where
        fields = lines[i].split(",")
        fields[j] = token
        return f"row {i} column {j} set to {token!r}", joined([*lines[:i], ",".join(fields), *lines[i + 1 :]])

    options = [bytes_damage(data), st.integers(0, n_cols - 1).map(drop_column)]
    if n_rows:
        rows = anywhere(n_rows).map(lambda i: i + 1)
        tokens = st.sampled_from(["", "nan", "NaN", "inf", "-inf", "NA"])
        options += [
            rows.map(drop_row),
            rows.map(repeat_row),
            st.tuples(rows, st.integers(0, n_cols - 1), tokens).map(nan_field),
        ]
    return st.one_of(options)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path of a JSON document (objects only; the stages' JSON holds no lists of numbers but info.json's)."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            found.append((*prefix, key))
            found.extend(_paths(value, (*prefix, key)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found.append((*prefix, i))
            found.extend(_paths(value, (*prefix, i)))
    return found


def json_damage(data: bytes) -> st.SearchStrategy[Damage]:
    """Truncation, flips, a value replaced by NaN, infinity, null, text or a bool, a key dropped."""
    doc = json.loads(data)
    paths = _paths(doc)
    leaves = [p for p in paths if not isinstance(_at(doc, p), dict | list)]

    def dumped(new: Any) -> bytes:
        return (json.dumps(new, indent=2) + "\n").encode()  # as prunelab.runtime.write_json

    def replace(where: tuple[tuple, Any]) -> Damage:
        path, value = where
        new = copy.deepcopy(doc)
        _at(new, path[:-1])[path[-1]] = value
        return f"{'.'.join(map(str, path))} set to {value!r}", dumped(new)

    def drop(path: tuple) -> Damage:
        new = copy.deepcopy(doc)
        parent = _at(new, path[:-1])
        if isinstance(parent, list):
            parent.pop(path[-1])
        else:
            del parent[path[-1]]
        return f"{'.'.join(map(str, path))} dropped", dumped(new)

    values = st.sampled_from([math.nan, math.inf, -math.inf, None, "text", True])
    return st.one_of(
        bytes_damage(data),
        st.tuples(st.sampled_from(leaves), values).map(replace),
        st.sampled_from(paths).map(drop),
    )


def _at(doc: Any, path: tuple) -> Any:
    for part in path:
        doc = doc[part]
    return doc


def _npz(arrays: dict[str, np.ndarray]) -> bytes:
    handle = io.BytesIO()
    np.savez(handle, **arrays)  # as save_prepared and save_stats: uncompressed
    return handle.getvalue()


def _arrays(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as raw:
        return {name: raw[name] for name in raw.files}


def split_damage(data: bytes, n_classes: int) -> st.SearchStrategy[Damage]:
    """A prepared split: truncation, flips, a label out of range, rows dropped from one array,
    another dtype, a NaN label."""
    arrays = _arrays(data)
    n = len(arrays["labels"])

    def label(where: tuple[int, int]) -> Damage:
        i, value = where
        new = {**arrays, "labels": arrays["labels"].copy()}
        new["labels"][i] = value
        return f"label {i} set to {value}", _npz(new)

    def dropped(where: tuple[str, int]) -> Damage:
        name, count = where
        return f"{count} rows dropped from {name}", _npz({**arrays, name: arrays[name][count:]})

    def retyped(where: tuple[str, str]) -> Damage:
        name, dtype = where
        return f"{name} as {dtype}", _npz({**arrays, name: arrays[name].astype(dtype)})

    def nan_label(i: int) -> Damage:
        labels = arrays["labels"].astype(np.float64)
        labels[i] = np.nan
        return f"label {i} set to NaN", _npz({**arrays, "labels": labels})

    outside = st.one_of(st.integers(n_classes, n_classes + 100), st.integers(-100, -1))
    return st.one_of(
        bytes_damage(data),
        st.tuples(anywhere(n), outside).map(label),
        st.tuples(st.sampled_from(["images", "labels", "image_ids"]), st.integers(1, 3)).map(dropped),
        st.tuples(st.sampled_from(["images", "labels"]), st.sampled_from(["float32", "int32", "int16"])).map(retyped),
        anywhere(n).map(nan_label),
    )


def stats_damage(data: bytes) -> st.SearchStrategy[Damage]:
    """Activation statistics: truncation, flips, NaN or infinity in an array, a share above 1 or
    a mean after ReLU below 0, channels dropped from one array, no samples."""
    arrays = _arrays(data)
    floats = ["conv_mean", "act_mean", "feature_maps", "apoz", "taylor", "contribution_gram"]

    def poisoned(where: tuple[str, int, float]) -> Damage:
        name, i, value = where
        values = arrays[name].copy()
        values.flat[i % values.size] = value
        return f"{name}[{i % values.size}] set to {value}", _npz({**arrays, name: values})

    def dropped(where: tuple[str, int]) -> Damage:
        name, count = where
        return f"{count} channels dropped from {name}", _npz({**arrays, name: arrays[name][count:]})

    def no_samples(_: Any) -> Damage:
        return "n_samples set to 0", _npz({**arrays, "n_samples": np.asarray(0)})

    bad = st.sampled_from([math.nan, math.inf, -math.inf])
    return st.one_of(
        bytes_damage(data),
        st.tuples(st.sampled_from(floats), anywhere(10_000), bad).map(poisoned),
        st.tuples(st.just("apoz"), anywhere(10_000), st.sampled_from([1.5, -0.25])).map(poisoned),
        st.tuples(st.sampled_from(["act_mean", "taylor"]), anywhere(10_000), st.just(-1.0)).map(poisoned),
        st.tuples(st.sampled_from(floats), st.integers(1, 3)).map(dropped),
        st.just(None).map(no_samples),
    )


NUMBER = re.compile(rb"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def numbers_only(before: bytes, after: bytes) -> bool:
    """Whether a text file's damage changed only the values of numbers (`12.5` → `17.5`,
    `-4.4` → `54.4`): the same text around the same count of numbers."""
    return before != after and NUMBER.sub(b"#", before) == NUMBER.sub(b"#", after)


# --------------------------------------------------------------------------- params
@dataclass(frozen=True)
class Change:
    """One edit of params.yaml: set (or drop, value=DROP) a dotted key; `valid`: whether the
    schema must accept it on its own (a valid value may still break a relation: then any clean refusal is fine)."""

    key: str
    value: Any
    valid: bool


DROP = "<dropped>"

# Keys that name a file or folder: any text is valid to the schema, and the stage that reads the path
# checks it exists (train: model.source and model.weights; prepare_data: an image folder's data.path).
PATH_KEYS = ("data.path", "model.source", "model.weights")
# Valid alternatives to the tiny config's values, key by key.
VALID: dict[str, list[Any]] = {
    **{key: ["nope"] for key in PATH_KEYS},
    "seeds": [[1, 0], [0], [0, 1, 2], [5]],
    "data.source": ["mnist", "fashion_mnist", "cifar10"],
    "data.task": ["classification"],
    "data.n_pairs": [10, 200, 6000],
    "data.test_fraction": [0.2, 0.5],
    "data.same_fraction": [0.01, 0.5],
    "data.val_fraction": [0.1],
    "model.arch": ["simple_cnn"],
    "train.epochs": [2],
    "train.batch_size": [1, 32],
    "train.lr": [1, 0.01],
    "train.device": ["cpu"],
    "train.class_weight": ["balanced"],
    "activations.split": ["train", "val"],
    "activations.batch_size": [1, 100],
    "prune.criteria": [["mean_activation", "random"], ["taylor", "random", "mean_activation"]],
    "prune.mode": ["zero_weights"],
    "prune.ks": [[0, 5, 64], [3]],
    "prune.k_step": [2, 127],
    "prune.random_orders": [1, 5],
    "prune.compare_zero_weights": [False],
    "recalibrate.split": ["val"],
    "recalibrate.max_samples": [10, 500],
    "finetune.ks": [[], ["half"], ["quarter", 10]],
    "finetune.criteria": [[], ["headline"], ["random", "taylor"]],
    "finetune.epochs": [0.5, 2],
    "finetune.lr": [0.1],
    "sensitivity.fractions": [[0.5], [0.1, 0.9]],
    "sensitivity.criteria": [["random"], ["taylor", "random"]],
    "sensitivity.random_orders": [1, 3],
    "budget.flops": [[0.5, 0.25], [0.9]],
    "budget.strategies": [["global"], ["uniform", "sensitivity"]],
    "budget.round_to": [1, 16],
    "budget.criteria": [["random"], ["l1_norm", "random"]],
    "budget.finetune_epochs": [0.2],
    "export.budget": ["none", 0.5],
    "export.strategy": ["uniform", "global"],
    "export.criterion": ["random", "taylor"],
    "export.k": [0, 3, 127],
    **{f"study.margins.{score}": [0.5, 100] for score in ("acc", "bacc", "roc_auc", "recal_acc", "recal_bacc")},
    "plot.dpi": [30, 41],
    "plot.cmap": ["magma", "gray"],
}
# Invalid values beyond the generic ones for the key's type.
SPECIFIC_INVALID: dict[str, list[Any]] = {
    "seeds": [[], [-1], [0, 0], ["a"], [1.5], [2**31]],
    "prune.criteria": [[], ["random", "mean_activation"], ["nope"], ["mean_activation", "mean_activation"]],
    "prune.ks": [[-1], [0, 128], "some", [], [1.5]],
    "prune.k_step": [0, 128],
    "finetune.ks": [[0], [128], ["most"], [1, 1], "half"],
    "finetune.criteria": [["nope"], ["random", "random"], "random"],
    "export.k": [-1, 128, "most", 1.5],
    "sensitivity.fractions": [[], [0.0], [1.0], [0.5, 0.5]],
    "sensitivity.criteria": [[], ["l1_norm"], ["nope", "random"]],
    "budget.flops": [[], [1.0], [0.5, 0.5]],
    "budget.strategies": [[], ["greedy"], ["uniform", "uniform"]],
    "budget.round_to": [0, 33],
    "budget.criteria": [["reconstruction", "random"], ["l1_norm"]],
    "export.budget": [0.3, 1.0, "most"],
    "export.strategy": ["greedy"],
    "data.test_fraction": [0.0, 1.0],
    "data.val_fraction": [1.0],
    "plot.dpi": [5, 601],
    "prune.random_orders": [0, 10_001],
    "recalibrate.split": ["test"],
    "recalibrate.max_samples": [9],
    "data.n_pairs": [9],
}


def invalid_values(key: str, base: Any) -> list[Any]:
    """Values the schema must refuse for `key`: wrong types, out of range, unknown names."""
    common: list[Any] = [None, {"a": 1}]
    if isinstance(base, bool):
        typed = ["maybe", 2, [True]]
    elif isinstance(base, int):
        typed = [-1, 1.5, "3", True, [base]]
    elif isinstance(base, float):
        typed = [-1.0, math.nan, math.inf, "x", True, [base]]
    elif isinstance(base, str):
        # A path that does not exist is no schema error: the stage that reads the file refuses it (VALID).
        typed = ([] if key in PATH_KEYS else ["nope"]) + [[base], True] + ([] if key == "export.k" else [3])
    else:
        typed = [3, "x"]
    return common + typed + SPECIFIC_INVALID.get(key, [])


def leaves(params: dict, prefix: str = "") -> dict[str, Any]:
    """{dotted key: value} of every leaf of params.yaml."""
    out = {}
    for key, value in params.items():
        if isinstance(value, dict):
            out.update(leaves(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def params_changes(base: dict, exclude: Callable[[Change], bool] = lambda c: False) -> st.SearchStrategy[list[Change]]:
    """One or two edits of params.yaml: valid and invalid values of every key, wrong types,
    unknown keys (top level and in a section), a dropped key or section, a section that is no mapping."""
    keys = leaves(base)
    sections = list(base)
    candidates = [Change(k, v, True) for k, vs in VALID.items() for v in vs]
    candidates += [Change(k, v, False) for k, b in keys.items() for v in invalid_values(k, b)]
    candidates += [Change(k, DROP, False) for k in [*keys, *sections]]
    candidates += [Change(f"{s}.zz_extra", 1, False) for s in sections if isinstance(base[s], dict)]
    candidates += [Change("zz_extra", 1, False), *(Change(s, 5, False) for s in sections if isinstance(base[s], dict))]
    candidates = [c for c in candidates if not exclude(c)]
    return st.lists(st.sampled_from(candidates), min_size=1, max_size=2, unique_by=lambda c: c.key)


def applied(base: dict, changes: list[Change]) -> dict:
    params = copy.deepcopy(base)
    for change in changes:
        *path, last = change.key.split(".")
        node = params
        for part in path:
            if not isinstance(node.get(part), dict):
                node = None
                break
            node = node[part]
        if node is None:
            continue  # an earlier change replaced the section
        if change.value == DROP:
            node.pop(last, None)
        else:
            node[last] = copy.deepcopy(change.value)
    return params


def declares(stage_params: list[str], key: str) -> bool:
    """Whether a stage's dvc.yaml `params` cover `key` (a section covers its keys, a key its section)."""
    return any(key == p or key.startswith(f"{p}.") or p.startswith(f"{key}.") for p in stage_params)


# --------------------------------------------------------------------------- the runner
@dataclass
class Run:
    code: int | None  # None: the stage returned; else its SystemExit status
    stderr: str
    trace: str | None  # a traceback of anything but SystemExit


@dataclass
class Tally:
    counts: Counter = field(default_factory=Counter)
    targets: dict[str, Counter] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def add(self, target: str, kind: str, outcome: str, what: str, run: Run) -> None:
        self.counts["cases"] += 1
        self.counts[f"{kind}_cases"] += 1
        self.counts[outcome] += 1
        self.targets.setdefault(target, Counter())[outcome] += 1
        if outcome in FAILURES:
            detail = run.trace or run.stderr
            self.failures.append(f"{outcome}: {target}: {what}\n{detail[-1500:]}")

    def summary(self, seconds: float) -> dict[str, Any]:
        keys = ["cases", "params_cases", "file_cases", *OUTCOMES, *FAILURES]
        return {
            **{key: self.counts[key] for key in keys},
            "seconds": round(seconds),
            "targets": {
                name: {"cases": sum(c.values()), **dict(sorted(c.items()))} for name, c in self.targets.items()
            },
        }


class Fuzzer:
    """A copy of the tiny study, its undamaged bytes, and a way to run one stage on it in-process."""

    def __init__(self, repo: Path, set_argv: Callable[[list[str]], None]) -> None:
        self.repo, self.set_argv = repo, set_argv
        self.stages = expanded_stages(repo)
        self.pristine = self._snapshot()
        self.params_text = (repo / "params.yaml").read_text()
        self.base_params = yaml.safe_load(self.params_text)
        self.tally = Tally()
        self.references: dict[tuple[str, str], dict[str, bytes]] = {}

    # --- files
    def _tree(self) -> set[str]:
        roots = [self.repo / "metrics", self.repo / "data"]
        found = {str(p.relative_to(self.repo)) for root in roots for p in root.rglob("*") if p.is_file()}
        return found | {p.name for p in self.repo.iterdir() if p.is_file()}

    def _snapshot(self) -> dict[str, bytes]:
        return {path: (self.repo / path).read_bytes() for path in self._tree()}

    def read(self, path: str) -> bytes | None:
        target = self.repo / path
        return target.read_bytes() if target.is_file() else None

    def write(self, path: str, data: bytes) -> None:
        """A new file, never written through a link into the DVC cache."""
        target = self.repo / path
        target.unlink(missing_ok=True)
        target.write_bytes(data)

    def restore(self) -> None:
        for path in self._tree() - set(self.pristine):
            (self.repo / path).unlink()
        for leftover in temp_leftovers(self.repo):
            leftover.unlink()
        for path, data in self.pristine.items():
            if self.read(path) != data:
                self.write(path, data)

    def outputs(self, stage: str) -> list[str]:
        """The stage's declared output files (folders expanded to the files they hold)."""
        name = f"{stage}@0" if stage in PER_SEED_STAGES else stage
        spec = self.stages[name]
        declared = [
            next(iter(e)) if isinstance(e, dict) else e
            for key in ("outs", "metrics", "plots")
            for e in spec.get(key, [])
        ]
        return [p for p in self.pristine if any(p == d or p.startswith(f"{d}/") for d in declared)]

    def stage_params(self, stage: str) -> list[str]:
        name = f"{stage}@0" if stage in PER_SEED_STAGES else stage
        return list(self.stages[name].get("params", []))

    # --- running
    def execute(self, stage: str) -> Run:
        module = importlib.import_module(f"stages.{stage}")
        self.set_argv([stage, "--seed", "0"] if stage in PER_SEED_STAGES else [stage])
        err = io.StringIO()
        code, trace = None, None
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                stage_main(module.main)
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else -1
            except Exception as exc:  # noqa: BLE001 - what the fuzzer looks for
                trace = "".join(traceback.format_exception(exc))
        return Run(code, err.getvalue(), trace)

    def reference(self, stage: str, params_text: str | None = None, rerun: bool = True) -> dict[str, bytes]:
        """The stage's outputs from an undamaged run (in this process, as the cases run), under
        `params_text` (default: the study's); `rerun=False` takes dvc repro's bytes as they are."""
        key = (stage, params_text or "")
        if key not in self.references:
            if rerun or params_text:
                if params_text:
                    (self.repo / "params.yaml").write_text(params_text)
                run = self.execute(stage)
                assert run.code is None and run.trace is None, f"undamaged {stage} failed:\n{run.trace or run.stderr}"
                self.references[key] = {p: self.read(p) for p in self.outputs(stage)}
                self.restore()
                if not params_text:
                    differ = [p for p, data in self.references[key].items() if data != self.pristine[p]]
                    assert not differ, f"undamaged {stage} run in-process differs from dvc repro's: {differ}"
            else:
                self.references[key] = {p: self.pristine[p] for p in self.outputs(stage)}
        return self.references[key]

    def case(
        self,
        target: str,
        stage: str,
        what: str,
        damaged: dict[str, bytes],
        reference: dict[str, bytes],
        *,
        params: list[Change] | None = None,
        plausible: bool = False,
    ) -> str:
        """Damage, run, classify, restore; returns the outcome."""
        for path, data in damaged.items():
            self.write(path, data)
        run = self.execute(stage)
        outcome = self.classify(stage, run, set(damaged), reference, params, plausible)
        self.tally.add(target, "params" if params is not None else "file", outcome, what, run)
        self.restore()
        return outcome

    def classify(
        self,
        stage: str,
        run: Run,
        damaged: set[str],
        reference: dict[str, bytes],
        params: list[Change] | None,
        plausible: bool,
    ) -> str:
        if run.trace is not None:
            return "tracebacks"
        now = self._tree()
        changed = sorted(p for p in self.pristine if p not in damaged and self.read(p) != self.pristine[p])
        stray = sorted(now - set(self.pristine)) + [str(p) for p in temp_leftovers(self.repo)]
        if run.code is not None:
            lines = run.stderr.strip().splitlines()
            if run.code != 2 or len(lines) != 1 or not lines[0].startswith("error: ") or "Traceback" in run.stderr:
                return "messy_refusals"
            return "partial_outputs" if changed or stray else "refused"
        outputs = set(self.outputs(stage))
        if stray or any(p not in outputs for p in changed):
            return "partial_outputs"
        if params is not None and not all(c.valid for c in params):
            return "silent_differences"  # params the schema must refuse were accepted
        if all(self.read(p) == data for p, data in reference.items()):
            return "same_bytes"
        if params is not None and any(declares(self.stage_params(stage), c.key) for c in params):
            return "valid_params_runs"
        if plausible:
            return "plausible_numbers"
        return "silent_differences"


def params_text(params: dict) -> str:
    return yaml.safe_dump(params, sort_keys=False)
