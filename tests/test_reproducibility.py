"""Same numbers twice, bit for bit; and an interrupted stage never loses or half-writes a result."""

from __future__ import annotations

import os
import signal
import stat
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from prunelab.data.spec import InputSpec
from prunelab.models.groups import find_groups, group_named
from prunelab.models.nets import build_model
from prunelab.models.training import train_model
from prunelab.pruning.collect import collect_stats
from prunelab.pruning.views import GroupView
from prunelab.runtime import atomic_path, save_torch, seed_everything, stage_main, write_json
from tests.helpers import (
    ROOT,
    copy_repo,
    declared_files,
    dvc,
    file_bytes,
    kill,
    run,
    running_stages,
    set_params,
    start_until,
    temp_leftovers,
)

# Written by stages that run after train@0 (or by other seeds): a killed train must not touch them.
DOWNSTREAM_RESULTS = [
    "metrics/seeds/0/data.json", "metrics/metrics.json", "metrics/seeds/0/sweep.csv",
    "data/seeds/0/activations.npz", "data/seeds/1/model.pt",
]  # fmt: skip


# --------------------------------------------------------------------------- bit for bit
# A second full run gives the same bytes: tests/test_remote.py compares every declared output of a study
# computed anew in other clones (workers, then an aggregator) with tiny_repo's, file by file.


def test_save_torch_bytes_do_not_depend_on_the_file_name(tmp_path: Path) -> None:
    """torch.save(obj, name) names the archive after the (random) temporary file."""
    state = build_model("pair_cnn", InputSpec(2, 28, 2)).state_dict()
    save_torch(tmp_path / "a.pt", state)
    save_torch(tmp_path / "sub" / "model.pt", state)
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "sub" / "model.pt").read_bytes()
    loaded = torch.load(tmp_path / "a.pt", weights_only=True)
    assert all(torch.equal(loaded[k], v) for k, v in state.items())


def tiny_run(threads: int) -> tuple[dict[str, torch.Tensor], dict[str, object]]:
    """Train one epoch and collect statistics with `threads` intra-op threads."""
    previous = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    try:
        seed_everything(0)
        gen = torch.Generator().manual_seed(1)
        x, y = torch.randn(48, 2, 28, 28, generator=gen), torch.randint(0, 2, (48,), generator=gen)
        model = build_model("pair_cnn", InputSpec(2, 28, 2))
        cpu = torch.device("cpu")
        train_model(
            model, (x, y), (x[:16], y[:16]), n_classes=2, epochs=1, batch_size=16, lr=1e-3,
            class_weight="balanced", device=cpu, seed=0,
        )  # fmt: skip
        view = GroupView.of(model.eval(), group_named(find_groups(model, x[:1]), "last"))
        stats = collect_stats(view, x, y, batch_size=20, device=cpu)
        return model.state_dict(), vars(stats)
    finally:
        torch.set_num_threads(previous[0])
        torch.use_deterministic_algorithms(previous[1])


@pytest.mark.parametrize("threads", [1, 3])
def test_training_and_statistics_repeat_bit_for_bit_at_a_given_thread_count(threads: int) -> None:
    """Twice the same bits for one thread count, odd counts included. (Across thread counts
    the first conv's weight gradient can differ in the last bits: oneDNN splits its batch
    reduction by thread; set OMP_NUM_THREADS alike to compare machines bit for bit.)"""
    state_a, stats_a = tiny_run(threads)
    state_b, stats_b = tiny_run(threads)
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    for key, value in stats_a.items():
        assert np.array_equal(value, stats_b[key]), key


# --------------------------------------------------------------------------- atomic writes
def test_a_failing_write_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    write_json(target, {"auc": 1.0})
    before = target.read_bytes()
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text('{"auc": 0.')  # half a file, then the writer dies
        raise RuntimeError("disk full")
    assert target.read_bytes() == before
    assert list(tmp_path.iterdir()) == [target]


def test_a_temp_left_by_a_killed_write_is_removed_by_the_next_write(tmp_path: Path) -> None:
    """SIGKILL skips clean-up; the next write of the same output removes the leftover, and
    writes of other outputs leave it alone."""
    leftover = tmp_path / ".sweep.csv.k1ll3d00.tmp"
    leftover.write_text("k,acc\n0,9")
    write_json(tmp_path / "metrics.json", {})
    assert leftover.exists()
    with atomic_path(tmp_path / "sweep.csv") as tmp:
        tmp.write_text("k,acc\n0,90\n")
    assert not leftover.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", "sweep.csv"]


def test_sigterm_during_a_write_keeps_the_old_file_and_removes_the_temp(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    target = tmp_path / "model.pt"
    target.write_bytes(b"the previous checkpoint")

    def main() -> None:
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half a ch")
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises before this ends

    handler = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as exit_info:
        stage_main(main)
    assert exit_info.value.code == 128 + signal.SIGTERM
    assert capsys.readouterr().err == "terminated: no partial outputs were written\n"
    assert target.read_bytes() == b"the previous checkpoint"
    assert list(tmp_path.iterdir()) == [target]
    assert signal.getsignal(signal.SIGTERM) is handler  # stage_main restores the handler


def test_outputs_get_the_permissions_of_a_plain_write(tmp_path: Path) -> None:
    """Temporary files are created 0600; the output must be readable as a plain open() makes it."""
    (tmp_path / "plain").write_text("x")
    write_json(tmp_path / "atomic.json", {})
    mode = stat.S_IMODE((tmp_path / "atomic.json").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain").stat().st_mode)


@pytest.mark.integration
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killed_stage_leaves_every_previous_output_intact(tiny_repo: Path, tmp_path: Path, sig: int) -> None:
    """Kill `python -m stages.train --seed 0` mid-training: its own previous outputs and everything
    after it are byte-identical, and no temporary file is left. SIGTERM is reported in one
    line with status 143; SIGKILL cannot be caught (status -9)."""
    repo = copy_repo(tiny_repo, tmp_path / "repo")
    files = declared_files(repo)
    before = file_bytes(repo, files)
    set_params(repo / "params.yaml", {"train.epochs": 10_000})
    status, rest = kill(
        start_until([sys.executable, "-m", "stages.train", "--seed", "0"], repo, "seed 0 epoch 1:"), sig
    )
    if sig == signal.SIGTERM:
        assert status == 128 + signal.SIGTERM
        assert rest.strip().splitlines()[-1] == "terminated: no partial outputs were written"
        assert "Traceback" not in rest
    else:
        assert status == -signal.SIGKILL
    assert file_bytes(repo, files) == before
    assert temp_leftovers(repo) == []


@pytest.mark.integration
def test_killed_dvc_repro_then_plain_repro_completes(tiny_repo: Path, tmp_path: Path) -> None:
    """SIGKILL a `dvc repro` while train@0 runs. DVC itself removed train's outputs before
    starting it (they stay in git and the DVC cache); every other result is intact. A plain
    `dvc repro` afterwards reruns train@0 only and restores the very same bytes."""
    repo = copy_repo(tiny_repo, tmp_path / "repo")
    files = declared_files(repo)
    before = file_bytes(repo, [*files, "dvc.lock"])
    set_params(repo / "params.yaml", {"train.epochs": 10_000})
    kill(start_until([str(Path(sys.executable).parent / "dvc"), "repro"], repo, "seed 0 epoch 1:"))
    assert file_bytes(repo, [*DOWNSTREAM_RESULTS, "dvc.lock"]) == {
        p: before[p] for p in [*DOWNSTREAM_RESULTS, "dvc.lock"]
    }
    assert temp_leftovers(repo) == []

    set_params(repo / "params.yaml", {"train.epochs": 1})
    result = dvc(repo, "repro")
    assert running_stages(result.stdout) == ["train@0"]
    assert file_bytes(repo, [*files, "dvc.lock"]) == before
    assert "up to date" in dvc(repo, "status").stdout


@pytest.mark.integration
def test_leftover_temp_files_do_not_change_dvc_status(tiny_repo: Path, tmp_path: Path) -> None:
    """What a SIGKILL during a write would leave next to the outputs is not an output."""
    repo = copy_repo(tiny_repo, tmp_path / "repo")
    (repo / "metrics/.metrics.json.k1ll3d00.tmp").write_text('{"auc": ')
    (repo / "data/seeds/0/.model.pt.k1ll3d00.tmp").write_bytes(b"PK\x03\x04")
    (repo / "metrics/plots/.criteria.png.k1ll3d00.tmp").write_bytes(b"\x89PNG")
    assert "up to date" in dvc(repo, "status").stdout


@pytest.mark.integration  # a fresh interpreter (imports torch): the whole suite's tier
def test_seeding_makes_kernels_deterministic_without_loading_the_compiler() -> None:
    """seed_everything switches on deterministic kernels without importing inductor or
    TorchDynamo, which cost ~3 s in every stage, and without the NaN fill of new tensors
    (about 8 % of a training step). A fresh interpreter, so no other test loaded them first."""
    probe = (
        "import sys, torch\n"
        "import prunelab.pruning.collect, prunelab.scoring.curves, prunelab.pruning.criteria, prunelab.data.prepared\n"
        "import prunelab.pruning.sweep, prunelab.models.training, prunelab._speed\n"
        "from prunelab.runtime import seed_everything\n"
        "prunelab._speed.enable()  # as stage_main does\n"
        "seed_everything(0)\n"
        "print(torch.are_deterministic_algorithms_enabled(), torch.utils.deterministic.fill_uninitialized_memory,\n"
        "      'torch._inductor' in sys.modules, 'torch._dynamo' in sys.modules)\n"
    )
    assert run([sys.executable, "-c", probe], cwd=ROOT).stdout.split() == ["True", "False", "False", "False"]
