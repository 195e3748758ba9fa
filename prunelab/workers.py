"""Independent jobs of one stage, spread over the CPU's cores: each job in a forked process at one torch thread.

Small CNNs use a second torch thread poorly: on a 2-core Xeon the budget stage's 20 fine-tunes of seed 0
took 36.6 s at two threads and 51.9 s at one (CPU time 69.6 s against 51.3 s), while two such stages side
by side at one thread each took 54.7 s for both, against 73 s one after the other. So jobs that do not
depend on each other (the budget stage's fine-tunes) run one per core at one thread, the way
`torch.utils.data.DataLoader`'s workers do.

Every job runs at one torch thread on the CPU, however many processes there are, including when there is
one (a one-core machine runs them in the stage's own process at one thread). A job's floating-point bits
depend on its thread count, not on how many cores the machine has (tested: a fine-tune in a worker equals
one in the stage's process to the bit). On a GPU the jobs run one after the other in the stage's process:
CUDA does not survive a fork, and a GPU is not short of threads.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

import torch

from prunelab.runtime import progress

T = TypeVar("T")
R = TypeVar("R")

# The job a forked worker runs: set before the pool forks, so that a closure (which does not pickle) reaches
# the workers by inheritance; only indices and results cross the pipe.
_JOB: Callable[[int], object] | None = None


def cpu_cores() -> int:
    """The cores this process may run on (a container's or `taskset`'s limit, not the machine's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@contextmanager
def one_thread() -> Iterator[None]:
    """torch at one intra-op thread inside the block, as a worker runs; the previous count afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _worker_start() -> None:
    torch.set_num_threads(1)
    os.environ["TQDM_DISABLE"] = "1"  # the stage's own bar counts the jobs; a bar per worker would interleave


def _backward_runs() -> bool:
    x = torch.ones(2, requires_grad=True)
    try:
        (x * x).sum().backward()
    except RuntimeError:  # "Unable to handle autograd's threading in combination with fork-based multiprocessing"
        return False
    return True


def fork_keeps_autograd() -> bool:
    """Whether a process forked from this one can still run a backward pass. PyTorch refuses it in a child
    forked after the parent's autograd engine started its device threads
    (https://github.com/pytorch/pytorch/wiki/Autograd-and-Fork). On a CPU-only machine the engine starts
    them at the process's first backward if fake tensors were used before it (`torch.export`, which the
    export stage uses for the deploy format, or any `FakeTensorMode`), and never otherwise (measured,
    torch 2.14; tests/test_workers.py): seen in a pytest worker that had exported a model before it first
    trained, never in a stage process. Asked of one forked child each time, since it can change."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
        return pool.submit(_backward_runs).result()


def _run(index: int) -> object:
    assert _JOB is not None  # set by `map_jobs` before the fork
    return _JOB(index)


def map_jobs(
    job: Callable[[T], R], items: Sequence[T], device: torch.device, desc: str, workers: int | None = None
) -> list[R]:
    """[job(item) for item in items], in order. On the CPU each job runs at one torch thread, in up to
    `workers` (default: the cores) forked processes, or in this process where a fork could not run a
    backward pass (`fork_keeps_autograd`); on a GPU, one after the other in this process. Put the dearest
    jobs first: they are handed out in order."""
    workers = min(cpu_cores() if workers is None else workers, len(items))
    if device.type != "cpu":
        return [job(item) for item in progress(items, desc)]
    # Where a forked worker could not train, the jobs run here, at the same one thread: the same bits.
    if workers <= 1 or not fork_keeps_autograd():
        with one_thread():
            return [job(item) for item in progress(items, desc)]
    global _JOB
    _JOB = lambda index: job(items[index])  # noqa: E731 - a closure over this call's job and items
    try:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_start) as pool:
            return list(progress(pool.map(_run, range(len(items))), desc, total=len(items)))
    finally:
        _JOB = None
