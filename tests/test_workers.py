"""prunelab.workers: independent jobs on every core, each at one torch thread, with the bits of one thread.

The forked path is tested in a fresh interpreter: a pytest worker that ran other tests first may hold an
autograd engine whose forks cannot train (`fork_keeps_autograd`: one that used fake tensors, as
`torch.export` does, before its first backward), and then `map_jobs` rightly stays home (tested on that
real cause in a second fresh interpreter)."""

from __future__ import annotations

import os
import sys

import pytest
import torch

import prunelab.workers
from prunelab.workers import map_jobs
from tests.helpers import ROOT, run

CPU = torch.device("cpu")


def where_and_how(item: int) -> tuple[int, int, int]:
    return item * item, os.getpid(), torch.get_num_threads()


FORKED = r"""
import os

import numpy as np
import torch

from prunelab.pruning.finetune import finetune_pruned
from prunelab.workers import fork_keeps_autograd, map_jobs, one_thread
from tests.helpers import lab_groups, tiny_model

CPU = torch.device("cpu")
torch.set_num_threads(2)
assert fork_keeps_autograd()

# In order, each job at one thread, each in a forked process; the stage's own thread count is put back.
found = map_jobs(lambda i: (i * i, os.getpid(), torch.get_num_threads()), list(range(7)), CPU, "t", workers=2)
assert [square for square, _, _ in found] == [i * i for i in range(7)], found
assert {threads for _, _, threads in found} == {1} and os.getpid() not in {pid for _, pid, _ in found}, found
assert torch.get_num_threads() == 2

# A job's error comes back to the stage.
def fails(item):
    if item == 2:
        raise ValueError("job 2 failed")
    return item

try:
    map_jobs(fails, [1, 2, 3], CPU, "t", workers=2)
    raise AssertionError("no error")
except ValueError as error:
    assert str(error) == "job 2 failed"

# What makes the budget table independent of the core count: a fine-tune in a worker equals one in the
# stage's process at one thread, bit for bit.
model = tiny_model("pair_cnn")
groups = lab_groups(model, "pair_cnn")
generator = torch.Generator().manual_seed(3)
images, labels = torch.randn(64, 2, 28, 28, generator=generator), torch.randint(0, 2, (64,), generator=generator)
removals = [{}, {"conv3": np.arange(64)}, {"conv1": np.arange(8), "conv3": np.arange(32)}]

def tuned(removed):
    pruned, _ = finetune_pruned(
        model, groups, removed, (images, labels), (images, labels), n_classes=2, epochs=0.5, lr=1e-3,
        batch_size=16, class_weight="none", device=CPU, seed=0, score=False,
    )
    return pruned.state_dict()

forked = map_jobs(tuned, removals, CPU, "t", workers=2)
with one_thread():
    here = [tuned(removed) for removed in removals]
for a, b in zip(forked, here, strict=True):
    assert a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)
assert forked[1]["block.conv.weight"].shape[0] == 64
print("forked jobs ok")
"""


@pytest.mark.integration  # a fresh interpreter (imports torch): the whole suite's tier
def test_forked_jobs_run_in_order_at_one_thread_with_one_threads_bits() -> None:
    assert run([sys.executable, "-c", FORKED], cwd=ROOT).stdout.strip().endswith("forked jobs ok")


FAKE_FIRST = r"""
import os

import torch

from prunelab.workers import fork_keeps_autograd, map_jobs, one_thread

net = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3), torch.nn.Flatten(), torch.nn.Linear(144, 2))
x = torch.randn(3, 2, 8, 8)
torch.export.export(net, (x,))  # fake tensors before this process's first backward
net(x).sum().backward()  # ... so this one starts the autograd engine's device threads
assert not fork_keeps_autograd()

def trains(seed):
    torch.manual_seed(seed)
    net.zero_grad()
    net(torch.randn(3, 2, 8, 8)).sum().backward()
    return os.getpid(), torch.get_num_threads(), net[0].weight.grad.sum().item()

found = map_jobs(trains, [0, 1, 2], torch.device("cpu"), "t", workers=2)
assert [(pid, threads) for pid, threads, _ in found] == [(os.getpid(), 1)] * 3, found
with one_thread():  # the same gradients as the jobs trained alone at one thread
    assert [grad for _, _, grad in found] == [trains(seed)[2] for seed in (0, 1, 2)]
print("stayed home")
"""


@pytest.mark.integration  # a fresh interpreter (imports torch): the whole suite's tier
def test_after_fake_tensors_the_jobs_stay_in_the_stages_process() -> None:
    """The real cause, not a monkeypatch: torch.export before the first backward leaves forks unable to
    train; the jobs then run in the stage's process, at one thread, and still train."""
    assert run([sys.executable, "-c", FAKE_FIRST], cwd=ROOT).stdout.strip().endswith("stayed home")


def test_one_core_runs_the_jobs_here_at_one_thread() -> None:
    before = torch.get_num_threads()
    results = map_jobs(where_and_how, list(range(5)), CPU, desc="test", workers=1)
    assert results == [(i * i, os.getpid(), 1) for i in range(5)]
    assert torch.get_num_threads() == before


def test_where_a_fork_cannot_train_the_jobs_run_here_at_one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prunelab.workers, "fork_keeps_autograd", lambda: False)
    assert map_jobs(where_and_how, [3, 4], CPU, desc="test", workers=2) == [(9, os.getpid(), 1), (16, os.getpid(), 1)]
