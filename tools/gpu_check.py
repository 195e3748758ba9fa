"""Time the study's replicates on a GPU and check that CUDA runs repeat bit for bit.

    python tools/gpu_check.py [--seeds 0 1 2 3 4] [--cifar-seeds 0 1 2 3 4] [--synthetic-cifar]
                              [--device cuda] [--budget-s 480] [--save DIR]

Runs every per-seed stage as `dvc repro` would but without DVC (the GPU machine need not have it),
one fresh interpreter per stage, with train.device set to --device, and prints one line per
measurement, in this order (the most wanted first, so that a run cut short still answers):

1. the start-up floor: a fresh interpreter importing every stage's modules and touching the device;
2. pairs, the first seed: each stage's time, and the stage work (the time beyond that floor);
3. a rerun of that seed's stages, comparing the bytes of model.pt and of every per-seed table;
4. the README's CIFAR-10 command (SimpleCNN, 9 criteria) for --cifar-seeds: the single-layer study's
   stages per seed, and the whole-network stages on the first seed;
5. pairs, the other seeds.

--synthetic-cifar writes a full-size CIFAR-10 (50,000 + 10,000 random images, in the real batch
format, trusted through $PRUNE_LAB_CHECKSUMS) when data/raw has none: a machine with no network
times the real shapes, though the scores mean nothing. A part that would start after --budget-s
seconds is skipped. Edits params.yaml in place: run it in a scratch copy of the project.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from prunelab.pruning.criteria import CRITERIA  # noqa: E402 - after the project root is on the path
from tools.machine import cpu_model  # noqa: E402

SINGLE_LAYER = ["prepare_data", "train", "collect_activations", "sweep_prune", "finetune"]
NETWORK = ["sensitivity", "budget"]
PER_SEED = SINGLE_LAYER + NETWORK
# The README's CIFAR-10 command (docs/cifar10.md): every criterion but bn_gamma, which SimpleCNN (no
# BatchNorm) refuses, in the registry's order.
CIFAR = {
    ("data", "source"): "cifar10",
    ("data", "task"): "classification",
    ("model", "arch"): "simple_cnn",
    ("prune", "criteria"): [name for name in CRITERIA if name != "bn_gamma"],
}
# What a CUDA rerun must reproduce byte for byte.
OUTPUTS = [
    "data/seeds/{s}/model.pt",
    "metrics/seeds/{s}/sweep.csv",
    "metrics/seeds/{s}/finetune.csv",
    "metrics/seeds/{s}/sensitivity.csv",
    "metrics/seeds/{s}/budget.csv",
]


def say(line: str) -> None:
    print(line, flush=True)


def stage(name: str, seed: int) -> float:
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", f"stages.{name}", "--seed", str(seed)], cwd=ROOT, capture_output=True, text=True
    )
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"stage {name} --seed {seed} failed ({result.returncode}):\n{tail}")
    return time.perf_counter() - start


def start_up_floor(code: str) -> float:
    """Median time of three fresh interpreters running `code`."""
    times = []
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def start_up_floors(device: str) -> dict[str, float]:
    """Per stage, what a fresh interpreter costs before any work: prepare_data imports no torch; every
    other stage imports the stages' modules and touches the device."""
    light = start_up_floor("import stages.prepare_data")
    imports = "; ".join(f"import stages.{name}" for name in PER_SEED)
    full = start_up_floor(f"{imports}; import torch; torch.zeros(1, device='{device}').sum().item()")
    return {name: light if name == "prepare_data" else full for name in PER_SEED}


def replicate(label: str, seed: int, stages: list[str], floors: dict[str, float]) -> float:
    times = {name: stage(name, seed) for name in stages}
    total = sum(times.values())
    work = total - sum(floors[name] for name in stages)
    detail = ", ".join(f"{name} {t:.1f}" for name, t in times.items())
    say(f"{label} seed {seed}: {total:.1f} s, stage work {work:.1f} s beyond start-up ({detail})")
    return total


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.exists() else "missing"


def digests(seed: int) -> dict[str, str]:
    return {pattern.format(s=seed): digest(ROOT / pattern.format(s=seed)) for pattern in OUTPUTS}


def set_params(changes: dict[tuple[str, ...], object]) -> None:
    params_file = ROOT / "params.yaml"
    raw = yaml.safe_load(params_file.read_text())
    for keys, value in changes.items():
        node = raw
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value
    params_file.write_text(yaml.safe_dump(raw, sort_keys=False))


def synthetic_cifar() -> None:
    """A full-size CIFAR-10 of random images, in the real format, trusted by checksum."""
    from tests.helpers import write_checksums, write_cifar10

    folder = ROOT / "data/raw/cifar-10-batches-py"
    if not folder.exists():
        write_cifar10(ROOT / "data/raw", per_batch=10_000, n_test=10_000)
        say("cifar10: synthetic, 50,000 train + 10,000 test random images (timings only; scores mean nothing)")
    sums = ROOT / "data/raw/cifar10-checksums.json"
    os.environ["PRUNE_LAB_CHECKSUMS"] = str(write_checksums(sums, sorted(folder.iterdir())))


def cpu_name() -> str:
    """The processor's model name (tools/machine.py) and the cores this process may use; else "CPU"."""
    from prunelab.workers import cpu_cores

    name = cpu_model()
    return f"{name} ({cpu_cores()} cores)" if name else "CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--cifar-seeds", type=int, nargs="*", default=[0, 1, 2, 3, 4])
    parser.add_argument("--synthetic-cifar", action="store_true")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--budget-s", type=float, default=480.0)
    parser.add_argument("--save", type=Path, help="copy each pairs seed's per-seed tables here")
    args = parser.parse_args()
    began = time.perf_counter()

    def in_budget(part: str) -> bool:
        if time.perf_counter() - began < args.budget_s:
            return True
        say(f"skipped (past --budget-s {args.budget_s:.0f}): {part}")
        return False

    import torch

    where = (
        torch.cuda.get_device_name(0) if args.device == "cuda" else f"{cpu_name()}, {torch.get_num_threads()} threads"
    )
    say(f"device: {where}, torch {torch.__version__}")
    params_file = ROOT / "params.yaml"
    original = params_file.read_text()
    set_params({("seeds",): args.seeds, ("train", "device"): args.device})

    def keep(seed: int) -> None:
        """A copy of a pairs seed's tables under --save (the CIFAR run reuses the seed folders)."""
        if args.save:
            shutil.copytree(ROOT / f"metrics/seeds/{seed}", args.save / f"pairs-{seed}", dirs_exist_ok=True)

    floors = start_up_floors(args.device)
    say(
        f"start-up floor: {floors['train']:.1f} s per stage (a fresh interpreter importing the stages, device"
        f" touched), {floors['prepare_data']:.1f} s for prepare_data (no torch)"
    )

    first, others = args.seeds[0], args.seeds[1:]

    def pairs_first() -> None:
        replicate("pairs", first, PER_SEED, floors)
        before = digests(first)
        keep(first)
        if in_budget("pairs rerun"):
            replicate("pairs rerun", first, PER_SEED[1:], floors)
            after = digests(first)
            verdicts = ", ".join(
                f"{Path(p).name} {'identical' if before[p] == after[p] else 'DIFFERENT'}" for p in before
            )
            say(f"rerun of pairs seed {first}: {verdicts}")

    def cifar() -> None:
        if args.synthetic_cifar:
            synthetic_cifar()
        set_params({("seeds",): args.cifar_seeds, **CIFAR})
        totals = []
        for seed in args.cifar_seeds:
            if not in_budget(f"cifar10 seed {seed}"):
                break
            totals.append(replicate("cifar10 single-layer", seed, SINGLE_LAYER, floors))
        say(f"cifar10 single-layer study, {len(totals)} seed{'s' * (len(totals) != 1)}: {sum(totals):.1f} s")
        if in_budget("cifar10 whole-network stages"):
            replicate("cifar10 whole-network", args.cifar_seeds[0], NETWORK, floors)

    def pairs_others() -> None:
        params_file.write_text(original)  # back to the pairs study
        set_params({("seeds",): args.seeds, ("train", "device"): args.device})
        for seed in others:
            if not in_budget(f"pairs seed {seed}"):
                break
            replicate("pairs", seed, PER_SEED, floors)
            keep(seed)

    # A failing part is reported and the next one still runs: one lease should answer as much as it can.
    for name, part, wanted in [
        ("pairs", pairs_first, True),
        ("cifar10", cifar, bool(args.cifar_seeds)),
        ("pairs, other seeds", pairs_others, bool(others)),
    ]:
        if wanted and in_budget(name):
            try:
                part()
            except (RuntimeError, OSError, subprocess.CalledProcessError) as err:
                say(f"FAILED {name}: {err}")
    say(f"total: {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
