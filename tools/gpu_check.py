"""Time the study's replicates on a GPU and check that CUDA runs repeat bit for bit.

    python tools/gpu_check.py [--seeds 0 1 2 3 4]

Runs the per-seed stages (prepare_data, train, collect_activations, sweep_prune, finetune) for each
seed with train.device=cuda, as `dvc repro` would but without DVC (the GPU machine need not
have it), timing each replicate; then reruns seed 0's train and sweep and compares the bytes
of its model and sweep table with the first run. Edits params.yaml in place: run it in a
scratch copy of the project. Prints one line per measurement.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PER_SEED = ["prepare_data", "train", "collect_activations", "sweep_prune", "finetune"]


def stage(name: str, seed: int) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", f"stages.{name}", "--seed", str(seed)], cwd=ROOT, check=True)
    return time.perf_counter() - start


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    args = parser.parse_args()
    params_file = ROOT / "params.yaml"
    raw = yaml.safe_load(params_file.read_text())  # the file's mapping, edited and written back
    raw["seeds"], raw["train"]["device"] = args.seeds, "cuda"
    params_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    import torch

    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}", flush=True)
    for seed in args.seeds:
        times = {name: stage(name, seed) for name in PER_SEED}
        detail = ", ".join(f"{name} {t:.1f} s" for name, t in times.items())
        print(f"seed {seed}: replicate {sum(times.values()):.1f} s ({detail})", flush=True)
    seed = args.seeds[0]
    model, sweep = ROOT / f"data/seeds/{seed}/model.pt", ROOT / f"metrics/seeds/{seed}/sweep.csv"
    first = digest(model), digest(sweep)
    tuned = ROOT / f"metrics/seeds/{seed}/finetune.csv"
    first = (*first, digest(tuned))
    for name in ("train", "collect_activations", "sweep_prune", "finetune"):
        stage(name, seed)
    second = digest(model), digest(sweep), digest(tuned)
    verdicts = ["identical" if a == b else "DIFFERENT" for a, b in zip(first, second, strict=True)]
    print(
        f"rerun of seed {seed}: model.pt {verdicts[0]}, sweep.csv {verdicts[1]}, finetune.csv {verdicts[2]}", flush=True
    )


if __name__ == "__main__":
    main()
