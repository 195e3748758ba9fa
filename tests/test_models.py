"""Model shapes and the stem / block / head interface."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from prunelab.data.spec import InputSpec
from prunelab.models.archs import ARCHS
from prunelab.models.nets import PrunableNet, build_model
from tests.helpers import tiny_model


def test_pair_cnn_is_the_reports_network() -> None:
    model = build_model("pair_cnn", InputSpec(2, 28, 2))
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.padding) for c in convs] == [
        (2, 32, (3, 3), (1, 1)),
        (32, 64, (3, 3), (1, 1)),
        (64, 128, (3, 3), (1, 1)),
    ]
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == 3
    assert (model.head.fc1.in_features, model.head.fc1.out_features) == (1152, 256)
    assert model.channels == ARCHS["pair_cnn"].channels == 128


def test_pair_cnn_feature_map_is_7x7_and_block_output_3x3() -> None:
    model = build_model("pair_cnn", InputSpec(2, 28, 2)).eval()
    x = torch.randn(4, 2, 28, 28)
    conv_out = model.block.conv(model.stem(x))
    assert conv_out.shape == (4, 128, 7, 7)
    assert model.block(model.stem(x)).shape == (4, 128, 3, 3)
    assert model(x).shape == (4, 2)


def test_interface_composes_to_the_forward_pass() -> None:
    model = build_model("pair_cnn", InputSpec(2, 28, 2)).eval()
    x = torch.randn(3, 2, 28, 28)
    by_parts = model.head(model.block.finish(model.block.conv(model.stem(x))))
    torch.testing.assert_close(model(x), by_parts)
    # An all-ones mask is the identity; an all-zeros mask leaves only the head's biases.
    torch.testing.assert_close(model(x, torch.ones(128)), model(x))
    zero = model(x, torch.zeros(128))
    torch.testing.assert_close(zero, zero[:1].expand(3, -1))


def literal_order(model: PrunableNet) -> nn.Sequential:
    """The same layers, with every ReLU before its max pool as the report and handout write
    them: conv → [BN] → ReLU → MaxPool. Shares the model's parameters."""
    layers: list[nn.Module] = []
    stages = [*model.stem] if isinstance(model.stem[0], nn.Sequential) else [model.stem]
    for stage in stages:
        layers += [m for m in stage if isinstance(m, nn.Conv2d | nn.BatchNorm2d)] + [nn.ReLU(), nn.MaxPool2d(2)]
    block = model.block
    layers += [block.conv] + ([block.bn] if block.bn is not None else []) + [nn.ReLU(), nn.MaxPool2d(2)]
    return nn.Sequential(*layers, model.head)


@pytest.mark.parametrize("arch", ["pair_cnn", "simple_cnn"])
@pytest.mark.parametrize("train_mode", [True, False])
def test_pooling_before_relu_is_the_literal_network_exactly(arch: str, train_mode: bool) -> None:
    """Our blocks run the ReLU after the pool (faster); outputs and every gradient must be
    bit-for-bit those of the literal conv → BN → ReLU → pool order."""
    model = tiny_model(arch, seed=3).train(train_mode)
    literal = literal_order(model).train(train_mode)
    assert sum(isinstance(m, nn.ReLU) for m in literal.modules()) == sum(
        isinstance(m, nn.ReLU) for m in model.modules()
    )
    spec = InputSpec(2, 28, 2) if arch == "pair_cnn" else InputSpec(3, 32, 10)
    x = torch.randn(16, spec.channels, spec.size, spec.size, generator=torch.Generator().manual_seed(1))
    y = torch.arange(16) % spec.n_classes

    def outputs_and_grads(net: nn.Module) -> tuple[torch.Tensor, list[torch.Tensor]]:
        state = {k: v.clone() for k, v in model.state_dict().items()}  # BN running stats move in train mode
        out = net(x)
        grads = torch.autograd.grad(nn.functional.cross_entropy(out, y), list(model.parameters()))
        model.load_state_dict(state)
        return out.detach(), list(grads)

    ours, our_grads = outputs_and_grads(model)
    ref, ref_grads = outputs_and_grads(literal)
    assert torch.equal(ours, ref)
    # Some pooling windows are all-negative after BN: the case where the two orders could differ.
    pre_pool = model.block.bn(model.block.conv(model.stem(x))) if model.block.bn else model.block.conv(model.stem(x))
    assert (nn.functional.max_pool2d(pre_pool, 2) < 0).any()
    for (name, _), ours_g, ref_g in zip(model.named_parameters(), our_grads, ref_grads, strict=True):
        assert torch.equal(ours_g, ref_g), name


@pytest.mark.parametrize("name", list(ARCHS))
def test_each_registered_arch_has_the_facts_it_claims(name: str) -> None:
    """ARCHS is read torch-free by params validation; its facts must be those of the built model.
    Traced architectures (layers None) claim only BatchNorm: the checks in tests/test_archs.py."""
    spec = InputSpec(2, 28, 2) if name == "pair_cnn" else InputSpec(3, 32, 10)
    model = build_model(name, spec)
    if ARCHS[name].traced:
        assert ARCHS[name].batchnorm == any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
        return
    assert model.channels == ARCHS[name].channels
    assert (model.block.bn is not None) == ARCHS[name].batchnorm
