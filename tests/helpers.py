"""Shared test helpers: tiny models and data, and a throwaway copy of the project for DVC runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
import yaml

from stages.models import InputSpec, PrunableNet, build_model

ROOT = Path(__file__).resolve().parents[1]
# What a fresh clone needs to run the pipeline.
PROJECT_FILES = ["stages", "dvc.yaml", "params.yaml", ".dvc/config", ".dvcignore", ".gitignore"]

# A config small enough for CI: a few hundred pairs, one epoch, few random orders.
TINY_OVERRIDES: dict[str, Any] = {
    "data.n_pairs": 300,
    "train.epochs": 1,
    "prune.random_orders": 3,
    "plot.dpi": 40,
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
            shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__"))
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


def run(cmd: list[str], cwd: Path, check: bool = True, timeout: int = 600) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=tool_env(), capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def dvc(repo: Path, *args: str, check: bool = True, timeout: int = 600) -> subprocess.CompletedProcess:
    return run([str(Path(sys.executable).parent / "dvc"), *args], repo, check=check, timeout=timeout)


def stage(repo: Path, name: str, check: bool = False, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run one stage's entry point (python -m stages.<name>) in `repo`."""
    return run([sys.executable, "-m", f"stages.{name}"], repo, check=check, timeout=timeout)
