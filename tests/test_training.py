"""The training loop's own Adam: the same updates as torch.optim.Adam, without its import cost."""

from __future__ import annotations

import sys
from collections.abc import Callable

import torch
from torch import nn

from prunelab._speed import FusedAdam, adam
from prunelab.data.spec import InputSpec
from prunelab.models.nets import PrunableNet, build_model
from tests.helpers import ROOT, run


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


def test_fused_adam_is_torch_adam_bit_for_bit() -> None:
    before, ours = train_steps(lambda m: adam(m, lr=1e-3))
    _, torch_fused = train_steps(lambda m: torch.optim.Adam(trainable(m), lr=1e-3, fused=True))
    assert isinstance(adam(nn.Linear(2, 2), 1e-3), FusedAdam)
    for ours_p, fused_p in zip(ours, torch_fused, strict=True):
        assert torch.equal(ours_p, fused_p)
    names = [name for name, _ in build_model("pair_cnn", InputSpec(2, 28, 2)).named_parameters()]
    moved = {name for name, a, b in zip(names, before, ours, strict=True) if not torch.equal(a, b)}
    assert moved == set(names) - {"head.fc1.bias"}


def test_mixed_dtypes_fall_back_to_torch_adam() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2).double())
    assert isinstance(adam(model, 1e-3), torch.optim.Adam)


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
