"""Shared test helpers: tiny models and data, and a throwaway copy of the project for DVC runs."""

from __future__ import annotations

import functools
import gzip
import hashlib
import importlib.util
import json
import os
import pickle
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
import yaml

from prunelab.data.spec import InputSpec
from prunelab.models.nets import PrunableNet, build_model

ROOT = Path(__file__).resolve().parents[1]
# What a fresh clone needs to run the pipeline.
PROJECT_FILES = [
    "prunelab", "stages", "examples", "data/raw/README.md", "metrics/cost/flops/README.md", "dvc.yaml", "params.yaml",
    ".dvc/config", ".dvc/plots",
    ".dvcignore", ".gitignore",
]  # fmt: skip

# A config small enough for CI: two seeds, a few hundred pairs, one epoch, few random orders.
TINY_OVERRIDES: dict[str, Any] = {
    "seeds": [0, 1],
    "data.n_pairs": 300,
    "train.epochs": 1,
    "prune.random_orders": 3,
    "sensitivity.fractions": [0.5],
    "sensitivity.random_orders": 1,
    "budget.flops": [0.5],
    "budget.finetune_epochs": 0.1,
    "latency.rounds": 5,
    "export.rounds": 5,
    "plot.dpi": 40,
}


# The study's settings cut small, for end-to-end repros of other models (tests/test_any_model.py,
# tests/test_your_model.py): one of everything the whole-network stages need, random among it.
SMALL_STUDY: dict[str, Any] = {
    "prune.k_step": 4,
    "prune.random_orders": 2,
    "finetune.criteria": ["headline", "random"],
    "sensitivity.fractions": [0.5],
    "sensitivity.criteria": ["l1_norm", "random"],
    "sensitivity.random_orders": 1,
    "budget.flops": [0.5],
    "budget.strategies": ["uniform", "global"],
    "budget.criteria": ["l1_norm", "random"],
    "latency.rounds": 2,
    "latency.counts": 2,
}


def randomized(model: PrunableNet, seed: int = 0) -> PrunableNet:
    """Give BatchNorm non-trivial statistics and affine terms, so BN bugs cannot hide."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                n = module.num_features
                module.running_mean.copy_(torch.randn(n, generator=gen) * 0.3)
                module.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
                module.weight.copy_(torch.randn(n, generator=gen))
                module.bias.copy_(torch.randn(n, generator=gen) * 0.5)
    return model.eval()


def tiny_model(arch: str = "pair_cnn", spec: InputSpec | None = None, seed: int = 0) -> PrunableNet:
    torch.manual_seed(seed)
    spec = spec or (InputSpec(2, 28, 2) if arch == "pair_cnn" else InputSpec(3, 32, 10))
    return randomized(build_model(arch, spec), seed)


@functools.cache
def tool_module(name: str) -> ModuleType:
    """tools/<name>.py, imported once from its path (the tools are scripts, run as `python tools/<name>.py`)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def set_params(params_file: Path, overrides: dict[str, Any]) -> None:
    """Apply {'section.key': value} overrides to a params.yaml."""
    params = yaml.safe_load(params_file.read_text())
    for dotted, value in overrides.items():
        *path, last = dotted.split(".")
        node = params
        for part in path:
            node = node[part]
        node[last] = value
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))


def project_copy(dest: Path, overrides: dict[str, Any] | None = None, git: bool = True) -> Path:
    """Copy the project into `dest` (a git repo with one commit) with params overrides."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        src = ROOT / name
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            # *.pt: the example's weights, which a user makes (examples/your_model/make_example.py)
            shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__", "*.pt"))
        else:
            shutil.copy2(src, target)
    set_params(dest / "params.yaml", {**TINY_OVERRIDES, **(overrides or {})})
    if git:
        run(["git", "init", "-q"], dest)
        run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A"], dest)
        run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"], dest)
    return dest


def tool_env() -> dict[str, str]:
    """Environment for subprocesses: this interpreter's bin first, quiet progress bars."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["CI"] = "true"
    env["DVC_NO_ANALYTICS"] = "1"
    env["GIT_AUTHOR_NAME"] = env["GIT_COMMITTER_NAME"] = "test"
    env["GIT_AUTHOR_EMAIL"] = env["GIT_COMMITTER_EMAIL"] = "test@example.com"
    return env


def run(
    cmd: list[str], cwd: Path, check: bool = True, timeout: int = 600, env_extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    env = {**tool_env(), **(env_extra or {})}
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def dvc(repo: Path, *args: str, check: bool = True, timeout: int = 600) -> subprocess.CompletedProcess:
    return run([str(Path(sys.executable).parent / "dvc"), *args], repo, check=check, timeout=timeout)


PER_SEED_STAGES = ["prepare_data", "train", "collect_activations", "sweep_prune", "finetune", "sensitivity", "budget"]
STUDY_STAGES = ["aggregate", "export", "plot", "headline"]


def stage(
    repo: Path, name: str, seed: int | None = 0, check: bool = False, timeout: int = 600
) -> subprocess.CompletedProcess:
    """Run one stage's entry point in `repo`: python -m stages.<name> [--seed <seed>] (per-seed stages)."""
    args = ["--seed", str(seed)] if name in PER_SEED_STAGES and seed is not None else []
    return run([sys.executable, "-m", f"stages.{name}", *args], repo, check=check, timeout=timeout)


def experiments(shown: list[dict]) -> dict[str, dict]:
    """{experiment name: its data} from `dvc exp show --json`."""
    found = {}
    for commit in shown:
        for exp in commit.get("experiments") or []:
            for rev in exp["revs"]:
                found[rev["name"]] = rev["data"]
    return found


# Outputs holding measured CPU latencies: the one thing that differs from run to run (by design).
# The headline quotes one of them (shipped.speedup).
# What holds a measured latency, so changes from run to run: the export's measurements, the headline's
# speed-up, and the figure that marks the shipped model with its measured speed-up.
# The latency table (the latency stage's folder, and its file) and the export's check of its predictions too.
TIMED = {
    "metrics/efficiency.json", "metrics/headline.json", "metrics/plots/efficiency.png", "metrics/cost/latency",
    "metrics/cost/latency/table.csv", "metrics/latency.md",
}  # fmt: skip


def headline_without_timing(repo: Path) -> dict:
    """metrics/headline.json without the shipped model's measured speed-up."""
    headline = json.loads((repo / "metrics/headline.json").read_text())
    headline["shipped"].pop("speedup")
    return headline


def lock_without_timings(repo: Path) -> dict:
    """dvc.lock, parsed, with the hashes of the TIMED files blanked."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    for stage_spec in lock["stages"].values():
        for key in ("deps", "outs"):
            for entry in stage_spec.get(key, []):
                if entry["path"] in TIMED:
                    entry.pop("md5", None)
                    entry.pop("size", None)
    return lock


def study_order(seeds: list[int]) -> list[str]:
    """The stages of dvc.yaml for these seeds, in its order (`dvc stage list`): the latency table (one
    instance, measured once for every seed) sits just before the budget stage that may read it."""
    per_seed = [f"{name}@{seed}" for name in PER_SEED_STAGES for seed in seeds]
    first_budget = per_seed.index(f"budget@{seeds[0]}")
    return [*per_seed[:first_budget], "latency", *per_seed[first_budget:], *STUDY_STAGES]


# --------------------------------------------------------------------------- dataset files in their real formats
def md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def write_idx(path: Path, array: np.ndarray) -> Path:
    """An IDX file as MNIST ships it: magic 0x0000_08_<ndim> (ubyte data), big-endian uint32
    dims, then the bytes. gzip'd when `path` ends in .gz."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    payload = struct.pack(f">I{array.ndim}I", 0x0800 | array.ndim, *array.shape) + array.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(payload, mtime=0) if path.suffix == ".gz" else payload)
    return path


def balanced_labels(n: int, rng: np.random.Generator) -> np.ndarray:
    """n labels, each of the 10 classes as often as n allows, in random order."""
    return rng.permutation(np.arange(n) % 10).astype(np.uint8)


def write_mnist_family(
    raw_dir: Path, class_name: str, n_train: int, n_test: int, gz: bool = True, seed: int = 0
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """torchvision's four files for MNIST / FashionMNIST (random 28×28 images) in
    raw_dir/<class_name>/raw. Returns {"train" | "t10k": (images N×28×28, labels N)}."""
    rng = np.random.default_rng(seed)
    folder = raw_dir / class_name / "raw"
    suffix = ".gz" if gz else ""
    written = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = balanced_labels(n, rng)
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels)
        written[prefix] = (images, labels)
    return written


class Python2Pickler(pickle._Pickler):
    """Writes str and bytes as Python 2 `str` (BINSTRING opcodes), as the CIFAR-10 python
    batches were written by cPickle: loaded with encoding="latin1" (torchvision) the keys are
    "data" and "labels"; with encoding="bytes" they are b"data" and b"labels"."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_python2_str(self, obj: str | bytes) -> None:
        data = obj if isinstance(obj, bytes) else obj.encode("latin1")
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = save_python2_str
    dispatch[bytes] = save_python2_str


CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_cifar10(
    raw_dir: Path, per_batch: int, n_test: int, seed: int = 0
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The CIFAR-10 python version in raw_dir/cifar-10-batches-py: data_batch_1..5 and
    test_batch, each a pickled dict with "data" (uint8 N×3072: the 1024 red, then green,
    then blue values, row-major) and "labels" (a list of ints), and batches.meta with
    "label_names". Returns {"train" | "test": (images N×3×32×32, labels N)}."""
    rng = np.random.default_rng(seed)
    folder = raw_dir / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)

    def dump(name: str, obj: dict) -> None:
        with (folder / name).open("wb") as handle:
            Python2Pickler(handle, protocol=2).dump(obj)

    parts: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {"train": [], "test": []}
    batches = [(f"data_batch_{i}", "train", per_batch) for i in range(1, 6)] + [("test_batch", "test", n_test)]
    for name, split, n in batches:
        images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        labels = balanced_labels(n, rng)
        dump(
            name,
            {
                "batch_label": f"{name} (test-written)",
                "labels": labels.tolist(),
                "data": images.reshape(n, 3072),
                "filenames": [f"{name}_{i}.png" for i in range(n)],
            },
        )
        parts[split].append((images, labels.astype(np.int64)))
    dump("batches.meta", {"num_cases_per_batch": per_batch, "label_names": CIFAR10_NAMES, "num_vis": 3072})
    return {
        split: (np.concatenate([c[0] for c in chunks]), np.concatenate([c[1] for c in chunks]))
        for split, chunks in parts.items()
    }


def write_checksums(path: Path, files: dict[str, bytes] | list[Path]) -> Path:
    """The JSON file named by $PRUNE_LAB_CHECKSUMS: {file name: md5} of the given files
    (paths), or of the given {name: content}."""
    contents = files if isinstance(files, dict) else {f.name: f.read_bytes() for f in files}
    path.write_text(json.dumps({name: md5_hex(data) for name, data in contents.items()}))
    return path


# --------------------------------------------------------------------------- runs, outputs and leftovers
def copy_repo(src: Path, dest: Path) -> Path:
    """A private copy of a repo (e.g. the session's `tiny_repo`), DVC cache and git included."""
    shutil.copytree(src, dest, symlinks=True)
    return dest


def running_stages(output: str) -> list[str]:
    """The stages a `dvc repro` / `dvc exp run` log says it ran, in order."""
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")]


def file_bytes(repo: Path, paths: list[str]) -> dict[str, bytes]:
    """{path: content} of files in `repo`, to compare outputs byte for byte."""
    return {path: (repo / path).read_bytes() for path in paths}


def temp_leftovers(repo: Path) -> list[Path]:
    """Temporary files of `prunelab.runtime.atomic_path` anywhere in the work tree (not .dvc, .git)."""
    return [p for p in repo.rglob(".*.tmp") if not ({".dvc", ".git"} & set(p.relative_to(repo).parts))]


def expanded_stages(repo: Path) -> dict[str, dict]:
    """dvc.yaml's stages with the seed matrix expanded as DVC does it (`train@3`), for the
    seeds in the repo's params.yaml: `${item.seed}` and `${seeds.0}` substituted."""
    spec = yaml.safe_load((repo / "dvc.yaml").read_text())
    seeds = yaml.safe_load((repo / "params.yaml").read_text())["seeds"]

    def fill(node: Any, seed: int | None) -> Any:
        if isinstance(node, str):
            node = node.replace("${seeds.0}", str(seeds[0]))
            return node.replace("${item.seed}", str(seed)) if seed is not None else node
        if isinstance(node, list):
            return [fill(n, seed) for n in node]
        if isinstance(node, dict):
            return {fill(k, seed): fill(v, seed) for k, v in node.items()}
        return node

    stages = {}
    for name, stage_spec in spec["stages"].items():
        if "matrix" in stage_spec:
            body = {k: v for k, v in stage_spec.items() if k != "matrix"}
            stages.update({f"{name}@{seed}": fill(body, seed) for seed in seeds})
        else:
            stages[name] = fill(stage_spec, None)
    return stages


def declared_outputs(repo: Path) -> list[str]:
    """Every path the pipeline declares as an output (outs, metrics, plots), seeds expanded."""
    return [
        next(iter(entry)) if isinstance(entry, dict) else entry
        for stage_spec in expanded_stages(repo).values()
        for key in ("outs", "metrics", "plots")
        for entry in stage_spec.get(key, [])
    ]


def declared_files(repo: Path) -> list[str]:
    """Every file the pipeline declares as an output, folders expanded."""
    files = []
    for declared in declared_outputs(repo):
        path = repo / declared
        found = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        files.extend(str(p.relative_to(repo)) for p in found)
    return files


def start_until(cmd: list[str], repo: Path, marker: str) -> subprocess.Popen:
    """Start `cmd` in its own process group and return once a line starting with `marker`
    appeared on its output (the stage is then inside its training loop). The output up to that
    line is the process's `seen` attribute."""
    proc = subprocess.Popen(
        cmd,
        cwd=repo,
        env=tool_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    watchdog = threading.Timer(300, lambda: os.killpg(proc.pid, signal.SIGKILL))
    watchdog.start()
    seen = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if line.startswith(marker):
                proc.seen = "".join(seen)  # type: ignore[attr-defined]
                return proc
    finally:
        watchdog.cancel()
    raise AssertionError(f"{cmd} ended before {marker!r}:\n{''.join(seen)}")


def kill(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> tuple[int, str]:
    """Send `sig` to the process group; return the exit status and the rest of the output."""
    os.killpg(proc.pid, sig)
    rest, _ = proc.communicate(timeout=120)
    return proc.returncode, rest


# --------------------------------------------------------------------------- channel groups of the lab's CNNs
LAB_SPECS = {"pair_cnn": InputSpec(2, 28, 2), "simple_cnn": InputSpec(3, 32, 10)}  # tiny_model's defaults


def lab_example(model: torch.nn.Module, arch: str) -> torch.Tensor:
    """The one-sample trace input of `tiny_model(arch)` (zeros), in the model's dtype, so that
    tracing and removal also run on float64 models."""
    from prunelab.models.groups import example_input

    return example_input(LAB_SPECS[arch]).to(next(model.parameters()).dtype)


def lab_groups(model: torch.nn.Module, arch: str) -> tuple:
    """`find_groups` of a lab CNN built by `tiny_model(arch)`: conv1, conv2, … in forward order."""
    from prunelab.models.groups import find_groups

    return find_groups(model, lab_example(model, arch))


def lab_view(model: torch.nn.Module, arch: str, name: str = "last"):  # -> GroupView
    """The `GroupView` of one group of a lab CNN (`last`: the lab's layer)."""
    from prunelab.models.groups import group_named
    from prunelab.pruning.views import GroupView

    return GroupView.of(model, group_named(lab_groups(model, arch), name))


# --------------------------------------------------------------------------- the experiment queue
# The experiments the `dvc exp` tests read, each a variant of the tiny study: queued on one copy of
# `tiny_repo` and run two at a time (the `experiment_grid` fixture), then each test applies its own.
EXPERIMENTS: dict[str, list[str]] = {
    # Another layer and other criteria, shipping the single-layer model: statistics, sweeps and fine-tuning
    # follow the layer, the models stay.
    "conv2": ["prune.layer=conv2", "prune.criteria=[l1_norm,taylor,random]", "export.budget=none"],
    # Budgets in milliseconds, against the latency table the tiny study measured.
    "latency": ["budget.target=latency"],
}


def wait_for_queue(repo: Path, timeout: float = 540) -> str:
    """Poll `dvc queue status` until no task is queued or running; return the last status."""
    deadline = time.monotonic() + timeout
    while True:
        status = dvc(repo, "queue", "status").stdout
        if not any(word in status for word in ("Queued", "Running")):
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"the queue did not finish in {timeout:.0f} s:\n{status}")
        time.sleep(2)


@dataclass(frozen=True)
class Grid:
    """`EXPERIMENTS`, run through `dvc queue start -j 2` in `repo`: the queue's last status and each
    experiment's log."""

    repo: Path
    status: str
    logs: dict[str, str]

    def applied(self, name: str, dest: Path) -> Path:
        """A private copy of the grid's repo with experiment `name` applied to its workspace (`dvc exp apply`)."""
        repo = copy_repo(self.repo, dest)
        dvc(repo, "exp", "apply", name)
        return repo


def run_grid(repo: Path) -> Grid:
    """Commit `repo`'s workspace, queue every experiment of EXPERIMENTS, run the queue two at a time."""
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "tiny run"], repo)
    try:
        for name, settings in EXPERIMENTS.items():
            dvc(repo, "exp", "run", "--queue", *(arg for s in settings for arg in ("-S", s)), "-n", name)
        dvc(repo, "queue", "start", "-j", "2")
        status = wait_for_queue(repo)
        logs = {name: dvc(repo, "queue", "logs", name).stdout for name in EXPERIMENTS}
    finally:
        dvc(repo, "queue", "stop", "--kill", check=False)
    return Grid(repo, status, logs)
