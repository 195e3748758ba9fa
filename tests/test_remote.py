"""Seeds spread over several machines through a shared DVC remote, as docs/remote.md says (tiny config).

Worker A runs seed 0's stages and worker B seed 1's, at the same time, each in its own clone of one
commit; each pushes its data to a local-directory DVC remote and its dvc.lock and metrics/seeds/<s>/ to
a branch of a bare git repo. The aggregator, a third clone with no data, merges the branches (dvc.lock
through the doc's merge driver) and runs `dvc repro --pull`. It must run only the study stages and end
with the metrics/ and dvc.lock of one machine that ran both seeds (`tiny_repo`), the export's measured
latencies aside.
"""

from __future__ import annotations

import json
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import (
    PER_SEED_STAGES,
    ROOT,
    STUDY_STAGES,
    TIMED,
    declared_files,
    dvc,
    file_bytes,
    headline_without_timing,
    lock_without_timings,
    project_copy,
    run,
    running_stages,
)

# One worker runs the module: its `spread` fixture (two workers and an aggregator) is built once.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("remote")]

WORKERS = {"seeds-0": [0], "seeds-1": [1]}  # branch: its seeds (tiny_repo's two seeds, one per worker)
# The export's measured CPU latencies (and the speed-ups computed from them) differ from run to run.


def git(repo: Path, *args: str) -> str:
    return run(["git", *args], repo).stdout


def merge_driver() -> str:
    """The dvc.lock merge driver as docs/remote.md prints it (its one Python block)."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "remote.md").read_text(), re.DOTALL)
    assert len(blocks) == 1, "docs/remote.md should hold exactly one Python block: the merge driver"
    return blocks[0]


def worker(origin: Path, repo: Path, branch: str, seeds: list[int]) -> str:
    """Machine A or B: its seeds' stages, data to the DVC remote, results to its git branch."""
    run(["git", "clone", "-q", str(origin), str(repo)], origin.parent)
    # The replicate's two last stages (docs/remote.md): finetune@s and budget@s, with their deps.
    pattern = f"*@[{''.join(str(s) for s in seeds)}]"  # one-digit seeds: *@[0]
    log = dvc(repo, "repro", "--glob", f"finetune{pattern}", f"budget{pattern}").stdout
    # `dvc push --glob` matches file paths, not stage names: name the stages (finetune@{0..4} in bash).
    dvc(repo, "push", "--with-deps", *(f"{stage}@{s}" for stage in ("finetune", "budget") for s in seeds))
    git(repo, "switch", "-qc", branch)
    git(repo, "add", "dvc.lock", "metrics/seeds")
    git(repo, "commit", "-qm", branch)
    git(repo, "push", "-q", "origin", branch)
    return log


@pytest.fixture(scope="module")
def spread(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("remote")
    main = project_copy(base / "main")
    dvc(main, "remote", "add", "-d", "shared", str(base / "dvc-remote"))
    git(main, "add", ".dvc/config")
    git(main, "commit", "-qm", "shared remote")
    origin = base / "origin.git"
    run(["git", "clone", "-q", "--bare", str(main), str(origin)], base)

    with ThreadPoolExecutor(len(WORKERS)) as pool:
        jobs = {b: pool.submit(worker, origin, base / b, b, seeds) for b, seeds in WORKERS.items()}
        worker_logs = {branch: job.result() for branch, job in jobs.items()}

    agg = base / "aggregator"
    run(["git", "clone", "-q", str(origin), str(agg)], base)
    had_data = (agg / "data" / "seeds").exists()  # data/raw (an input, kept in git by its README) is there
    driver = agg / ".git" / "dvc_lock_merge.py"
    driver.write_text(merge_driver())
    git(agg, "config", "merge.dvc-lock.driver", f"python {driver} %O %A %B")
    (agg / ".git" / "info").mkdir(exist_ok=True)
    with (agg / ".git" / "info" / "attributes").open("a") as handle:
        handle.write("dvc.lock merge=dvc-lock\n")
    git(agg, "fetch", "-q", "origin")
    for branch in WORKERS:
        git(agg, "merge", "--no-edit", f"origin/{branch}")
    aggregated = dvc(agg, "repro", "--pull").stdout
    git(agg, "add", "dvc.lock", "metrics")
    git(agg, "commit", "-qm", "study")
    return {"workers": {b: base / b for b in WORKERS}, "worker_logs": worker_logs, "aggregator": agg,
            "had_data": had_data, "aggregated": aggregated}  # fmt: skip


def untimed(node: Any) -> Any:
    """A JSON document without its measured latencies: latency_* keys and speed-ups made from them."""
    if isinstance(node, dict):
        return {k: untimed(v) for k, v in node.items() if not k.startswith(("latency", "speedup"))}
    return node


def metric_files(repo: Path) -> list[str]:
    return sorted(str(p.relative_to(repo)) for p in (repo / "metrics").rglob("*") if p.is_file())


def test_remote_workers_run_only_their_own_seeds(spread: dict[str, Any]) -> None:
    for branch, seeds in WORKERS.items():
        expected = [f"{name}@{seed}" for name in PER_SEED_STAGES for seed in seeds]
        assert sorted(running_stages(spread["worker_logs"][branch])) == sorted(expected), spread["worker_logs"][branch]


def test_remote_aggregator_runs_no_per_seed_stage(spread: dict[str, Any]) -> None:
    """It started with no data, pulled every seed's, and ran the four study stages only, and the latency
    table the export checks its predictions against (measured on the machine that exports; a FLOPs budget
    study never reads it, so the workers did not run it)."""
    assert not spread["had_data"]
    assert running_stages(spread["aggregated"]) == ["latency", *STUDY_STAGES], spread["aggregated"]
    agg = spread["aggregator"]
    assert all((agg / f"data/seeds/{s}/model.pt").is_file() for seeds in WORKERS.values() for s in seeds)
    assert "Data and pipelines are up to date" in dvc(agg, "status").stdout
    assert running_stages(dvc(agg, "repro").stdout) == []


def test_remote_aggregator_metrics_equal_one_machines_byte_for_byte(spread: dict[str, Any], tiny_repo: Path) -> None:
    agg = spread["aggregator"]
    files = metric_files(tiny_repo)
    assert metric_files(agg) == files
    assert {"metrics/seeds/1/finetune.csv", "metrics/metrics.json", "metrics/plots/efficiency.png"} <= set(files)
    differ = [f for f in files if f not in TIMED and (agg / f).read_bytes() != (tiny_repo / f).read_bytes()]
    assert differ == []
    for name in sorted(n for n in TIMED if n.endswith(".json")):
        ours, one_machine = (json.loads((repo / name).read_text()) for repo in (agg, tiny_repo))
        assert untimed(ours) != ours, f"{name} holds no latency: compare it byte for byte"
        assert untimed(ours) == untimed(one_machine), name


def test_remote_aggregator_lock_equals_one_machines(spread: dict[str, Any], tiny_repo: Path) -> None:
    """Every per-seed entry is a worker's, merged stage by stage; the study entries are the aggregator's."""
    assert lock_without_timings(spread["aggregator"]) == lock_without_timings(tiny_repo)


def test_a_study_computed_anew_elsewhere_gives_the_same_bytes(spread: dict[str, Any], tiny_repo: Path) -> None:
    """Bit for bit: every declared output but the measured latencies, computed from scratch in other clones
    (each seed on its worker, the study stages on the aggregator), equals tiny_repo's, file by file."""
    files = [f for f in declared_files(tiny_repo) if f not in TIMED]
    assert {"data/seeds/1/model.pt", "metrics/metrics.json", "metrics/seeds/1/sweep.csv"} <= set(files)
    assert {"data/export/model.pt2", "data/export/model.onnx"} <= set(files)
    elsewhere, here = file_bytes(spread["aggregator"], files), file_bytes(tiny_repo, files)
    assert [f for f in files if elsewhere[f] != here[f]] == []
    assert headline_without_timing(spread["aggregator"]) == headline_without_timing(tiny_repo)


def test_remote_run_cache_holds_no_stage_with_an_uncached_output(spread: dict[str, Any]) -> None:
    """Why the recipe sends dvc.lock and metrics/seeds/ through git: DVC saves no run-cache entry for
    a stage with a `cache: false` out (prepare_data, train, sweep_prune, finetune), so `dvc push
    --run-cache` could carry collect_activations only."""
    for branch, seeds in WORKERS.items():
        runs = (spread["workers"][branch] / ".dvc" / "cache" / "runs").rglob("*")
        commands = sorted(yaml.safe_load(p.read_text())["cmd"] for p in runs if p.is_file())
        assert commands == [f"python -m stages.collect_activations --seed {s}" for s in seeds]


# --------------------------------------------------------------------------- the merge driver alone
def merge_locks(tmp_path: Path, base: dict, ours: dict, theirs: dict) -> tuple[int, dict, str]:
    """Run the doc's driver as git would (%O %A %B); return its status, the merged lock and stderr."""
    driver = tmp_path / "dvc_lock_merge.py"
    driver.write_text(merge_driver())
    paths = []
    for name, stages in (("base", base), ("ours", ours), ("theirs", theirs)):
        path = tmp_path / name
        path.write_text(yaml.safe_dump({"schema": "2.0", "stages": stages}) if stages is not None else "")
        paths.append(str(path))
    result = run([sys.executable, str(driver), *paths], tmp_path, check=False)
    return result.returncode, yaml.safe_load((tmp_path / "ours").read_text()), result.stderr


def test_remote_lock_merge_takes_each_sides_stages(tmp_path: Path) -> None:
    entry = {"cmd": "python -m stages.train --seed 0", "outs": [{"path": "m", "md5": "a", "size": 1}]}
    base = {"aggregate": {"cmd": "old"}, "plot": {"cmd": "plot"}}
    ours = {**base, "train@0": entry, "aggregate": {"cmd": "new"}}
    theirs = {"train@1": {**entry, "cmd": "python -m stages.train --seed 1"}, "aggregate": {"cmd": "old"}}
    status, merged, _ = merge_locks(tmp_path, base, ours, theirs)
    assert status == 0
    assert merged == {"schema": "2.0", "stages": {"aggregate": {"cmd": "new"}, "train@0": entry,
                                                  "train@1": theirs["train@1"]}}  # fmt: skip
    # No common ancestor (git's add/add): the union.
    status, merged, _ = merge_locks(tmp_path, None, {"train@0": entry}, theirs)
    assert status == 0
    assert merged["stages"] == {"train@0": entry, **theirs}


def test_remote_lock_merge_refuses_a_stage_both_sides_ran_differently(tmp_path: Path) -> None:
    entry = {"cmd": "python -m stages.train --seed 0", "outs": [{"path": "m", "md5": "a", "size": 1}]}
    other = {**entry, "outs": [{"path": "m", "md5": "b", "size": 1}]}
    status, _, stderr = merge_locks(tmp_path, {}, {"train@0": entry}, {"train@0": entry})
    assert status == 0  # the same result on both sides is no conflict
    status, _, stderr = merge_locks(tmp_path, {}, {"train@0": entry}, {"train@0": other})
    assert status != 0
    assert "train@0" in stderr
