"""Model shapes and the stem / block / head interface."""

from __future__ import annotations

import torch

from stages.models import ARCHS, InputSpec, build_model


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
