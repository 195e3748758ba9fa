"""prunelab.workers: independent jobs on every core, each at one torch thread, with the bits of one thread."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from prunelab.pruning.finetune import finetune_pruned
from prunelab.workers import map_jobs, one_thread
from tests.helpers import lab_groups, tiny_model

CPU = torch.device("cpu")


def where_and_how(item: int) -> tuple[int, int, int]:
    return item * item, os.getpid(), torch.get_num_threads()


@pytest.mark.parametrize("workers", [1, 2])
def test_jobs_come_back_in_order_each_run_at_one_thread(workers: int) -> None:
    before = torch.get_num_threads()
    results = map_jobs(where_and_how, list(range(7)), CPU, desc="test", workers=workers)
    assert [square for square, _, _ in results] == [i * i for i in range(7)]
    assert {threads for _, _, threads in results} == {1}
    pids = {pid for _, pid, _ in results}
    # Two workers: every job in a forked process (not this one); one worker: this process, no fork.
    assert (os.getpid() not in pids) if workers == 2 else (pids == {os.getpid()})
    assert torch.get_num_threads() == before  # the stage's own thread count is put back


def test_a_closure_reaches_the_workers_and_an_error_comes_back() -> None:
    """The job may be a closure (the budget stage's is): it reaches the workers by the fork, not by pickle."""
    offset = 10
    assert map_jobs(lambda item: item + offset, [1, 2, 3], CPU, desc="test", workers=2) == [11, 12, 13]

    def fails(item: int) -> int:
        if item == 2:
            raise ValueError("job 2 failed")
        return item

    with pytest.raises(ValueError, match="job 2 failed"):
        map_jobs(fails, [1, 2, 3], CPU, desc="test", workers=2)


def test_a_finetune_in_a_worker_equals_one_in_this_process_bit_for_bit() -> None:
    """What makes the budget stage's table independent of the machine's core count: a job's bits depend on
    its one thread only, not on the process it runs in."""
    model = tiny_model("pair_cnn")
    groups = lab_groups(model, "pair_cnn")
    generator = torch.Generator().manual_seed(3)
    images, labels = torch.randn(64, 2, 28, 28, generator=generator), torch.randint(0, 2, (64,), generator=generator)
    removals = [{}, {"conv3": np.arange(64)}, {"conv1": np.arange(8), "conv3": np.arange(32)}]

    def tuned(removed: dict) -> dict[str, torch.Tensor]:
        pruned, _ = finetune_pruned(
            model, groups, removed, (images, labels), (images, labels), n_classes=2, epochs=0.5, lr=1e-3,
            batch_size=16, class_weight="none", device=CPU, seed=0, score=False,
        )  # fmt: skip
        return pruned.state_dict()

    forked = map_jobs(tuned, removals, CPU, desc="test", workers=2)
    with one_thread():
        here = [tuned(removed) for removed in removals]
    for a, b in zip(forked, here, strict=True):
        assert a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)
    assert forked[0]["block.conv.weight"].shape[0] == 128 and forked[1]["block.conv.weight"].shape[0] == 64
