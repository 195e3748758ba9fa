"""The private speed tricks (`prunelab._speed`): the same bits as their public fallbacks, switched
on only by a stage's entry point, never by a library call."""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest
import torch
from torch import nn

from prunelab import _speed
from prunelab._speed import FusedAdam, adam
from prunelab.data.spec import InputSpec
from prunelab.models.nets import PrunableNet, build_model
from prunelab.models.training import train_model
from tests.helpers import ROOT, run


@pytest.fixture
def enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tricks on, as in a stage process (the allocator setting is left alone: it is process-wide)."""
    monkeypatch.setattr(_speed, "_ENABLED", True)


def train_steps(make_optimizer: Callable[[PrunableNet], object], n_steps: int = 6) -> tuple[list, list]:
    """Parameters before and after a few steps, one of them with a gradient for the head only."""
    torch.manual_seed(0)
    model = build_model("pair_cnn", InputSpec(2, 28, 2)).to(memory_format=torch.channels_last)
    model.head.fc1.bias.requires_grad_(False)  # frozen: no state, no update
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = make_optimizer(model)
    gen = torch.Generator().manual_seed(1)
    for step in range(n_steps):
        x, y = torch.randn(16, 2, 28, 28, generator=gen), torch.randint(0, 2, (16,), generator=gen)
        optimizer.zero_grad(set_to_none=True)
        # Step 2 gives only the head a gradient: the other parameters must not move, nor count a step.
        z = torch.randn(16, 128, 3, 3, generator=gen) if step == 2 else model.block(model.stem(x))
        nn.functional.cross_entropy(model.head(z), y).backward()
        optimizer.step()
    return before, [p.detach().clone() for p in model.parameters()]


def trainable(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def test_fused_adam_is_torch_adam_bit_for_bit(enabled: None) -> None:
    before, ours = train_steps(lambda m: adam(m, lr=1e-3))
    _, torch_fused = train_steps(lambda m: torch.optim.Adam(trainable(m), lr=1e-3, fused=True))
    assert isinstance(adam(nn.Linear(2, 2), 1e-3), FusedAdam)
    for ours_p, fused_p in zip(ours, torch_fused, strict=True):
        assert torch.equal(ours_p, fused_p)
    names = [name for name, _ in build_model("pair_cnn", InputSpec(2, 28, 2)).named_parameters()]
    moved = {name for name, a, b in zip(names, before, ours, strict=True) if not torch.equal(a, b)}
    assert moved == set(names) - {"head.fc1.bias"}


def test_mixed_dtypes_fall_back_to_torch_adam(enabled: None) -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2).double())
    assert isinstance(adam(model, 1e-3), torch.optim.Adam)


@pytest.mark.integration  # a fresh interpreter (imports torch): the whole suite's tier
def test_training_does_not_load_the_compiler() -> None:
    """torch.optim's constructor would import TorchDynamo (~2.8 s of the train stage). A fresh
    interpreter, so no other test has loaded it first."""
    probe = (
        "import sys, torch\n"
        "import prunelab._speed\n"
        "prunelab._speed.enable()  # as stage_main does\n"
        "from prunelab.models.nets import build_model\n"
        "from prunelab.data.spec import InputSpec\n"
        "from prunelab.models.training import train_model\n"
        "x, y = torch.randn(8, 2, 28, 28), torch.randint(0, 2, (8,))\n"
        "train_model(build_model('pair_cnn', InputSpec(2, 28, 2)), (x, y), (x, y), n_classes=2, epochs=1,\n"
        "            batch_size=4, lr=1e-3, class_weight='none', device=torch.device('cpu'), seed=0)\n"
        "print('torch._dynamo' in sys.modules, 'torch._inductor' in sys.modules)\n"
    )
    assert run([sys.executable, "-c", probe], cwd=ROOT).stdout.split() == ["False", "False"]


def test_a_library_user_gets_the_public_adam() -> None:
    assert not _speed.enabled()
    assert isinstance(adam(nn.Linear(2, 2), 1e-3), torch.optim.Adam)


def tiny_training(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    model = build_model("pair_cnn", InputSpec(2, 28, 2))
    gen = torch.Generator().manual_seed(seed)
    x, y = torch.randn(48, 2, 28, 28, generator=gen), torch.randint(0, 2, (48,), generator=gen)
    train_model(model, (x, y), (x[:8], y[:8]), n_classes=2, epochs=2, batch_size=16, lr=1e-3,
                class_weight="none", device=torch.device("cpu"), seed=seed)  # fmt: skip
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_training_gives_the_same_bits_with_and_without_the_tricks(monkeypatch: pytest.MonkeyPatch) -> None:
    plain = tiny_training()
    monkeypatch.setattr(_speed, "_ENABLED", True)
    fast = tiny_training()
    assert plain.keys() == fast.keys()
    assert all(torch.equal(plain[k], fast[k]) for k in plain)


@pytest.mark.integration  # a fresh interpreter (imports torch): the whole suite's tier
def test_library_calls_change_no_process_setting() -> None:
    """A notebook that trains, collects block outputs and seeds gets torch's public behaviour:
    no glibc allocator change, deterministic mode through the public call (which keeps its NaN
    fill of new tensors). A fresh interpreter, so no test switched anything on first."""
    probe = (
        "import torch\n"
        "from prunelab import _speed\n"
        "from prunelab.runtime import seed_everything\n"
        "from prunelab.models.nets import build_model\n"
        "from prunelab.data.spec import InputSpec\n"
        "from prunelab.models.training import train_model\n"
        "from prunelab.models.groups import find_groups, group_named\n"
        "from prunelab.pruning.sweep import block_outputs\n"
        "from prunelab.pruning.views import GroupView\n"
        "seed_everything(0)\n"
        "model = build_model('pair_cnn', InputSpec(2, 28, 2))\n"
        "x, y = torch.randn(8, 2, 28, 28), torch.randint(0, 2, (8,))\n"
        "train_model(model, (x, y), (x, y), n_classes=2, epochs=1, batch_size=4, lr=1e-3, class_weight='none',\n"
        "            device=torch.device('cpu'), seed=0)\n"
        "view = GroupView.of(model, group_named(find_groups(model, x[:1]), 'last'))\n"
        "block_outputs(view, x, 4, torch.device('cpu'))\n"
        "print(_speed.enabled(), _speed._MEMORY_KEPT, torch.are_deterministic_algorithms_enabled(),\n"
        "      torch.utils.deterministic.fill_uninitialized_memory)\n"
    )
    assert run([sys.executable, "-c", probe], cwd=ROOT).stdout.split() == ["False", "None", "True", "True"]


@pytest.mark.integration  # a fresh interpreter (imports torch): the whole suite's tier
def test_a_stage_entry_point_switches_the_tricks_on() -> None:
    probe = (
        "from prunelab import _speed\n"
        "from prunelab.runtime import stage_main\n"
        "stage_main(lambda: None)\n"
        "print(_speed.enabled(), _speed._MEMORY_KEPT is not None)\n"
    )
    assert run([sys.executable, "-c", probe], cwd=ROOT).stdout.split() == ["True", "True"]
