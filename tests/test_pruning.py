"""Pruning is real: removal gives a smaller model equal to masking; the seed's zeroing differs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from prunelab.models.groups import group_named
from prunelab.pruning.surgery import channel_mask, remove_channels, zero_conv_weights
from prunelab.pruning.views import GroupView, masked_net
from tests.helpers import lab_example, lab_groups, tiny_model


@pytest.mark.parametrize("arch", ["pair_cnn", "simple_cnn"])
@pytest.mark.parametrize("k", [1, 5, 17, 31])
def test_removal_equals_masking(arch: str, k: int) -> None:
    model = tiny_model(arch).double()
    groups = lab_groups(model, arch)
    group = group_named(groups, "last")  # the lab's layer
    view = GroupView.of(model, group)
    shape = (6, 2, 28, 28) if arch == "pair_cnn" else (6, 3, 32, 32)
    x = torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(k))
    removed = np.random.default_rng(k).permutation(group.channels)[:k].tolist()
    smaller = remove_channels(model, groups, {group.name: removed}, lab_example(model, arch))
    with torch.no_grad():
        expected = masked_net(view.gm, [view.mask_points])(x, channel_mask(group.channels, removed))
        actual = smaller(x)
    torch.testing.assert_close(actual, expected, rtol=1e-10, atol=1e-10)


def test_removed_model_is_physically_smaller() -> None:
    model = tiny_model("pair_cnn")
    groups, example = lab_groups(model, "pair_cnn"), lab_example(model, "pair_cnn")
    smaller = remove_channels(model, groups, {"conv3": [0, 7, 100]}, example)
    assert smaller.block.conv.weight.shape == (125, 64, 3, 3)
    assert smaller.block.conv.bias.shape == (125,)
    assert smaller.block.bn.running_mean.shape == (125,)
    assert smaller.block.bn.weight.shape == (125,)
    assert smaller.head.fc1.weight.shape == (256, 125 * 9)
    # The kept channels keep their own parameters, in order.
    kept = [c for c in range(128) if c not in (0, 7, 100)]
    torch.testing.assert_close(smaller.block.conv.weight, model.block.conv.weight[kept])
    torch.testing.assert_close(smaller.block.bn.running_var, model.block.bn.running_var[kept])
    # The original is untouched.
    assert model.block.conv.weight.shape == (128, 64, 3, 3)


def test_zero_weights_is_not_removal_when_batchnorm_follows() -> None:
    model = tiny_model("pair_cnn").double()
    groups = lab_groups(model, "pair_cnn")
    x = torch.randn(8, 2, 28, 28, dtype=torch.float64)
    removed = {"conv3": list(range(0, 128, 4))}
    with torch.no_grad():
        zeroed = zero_conv_weights(model, groups, removed)(x)
        removed_logits = remove_channels(model, groups, removed, lab_example(model, "pair_cnn"))(x)
    assert not torch.allclose(zeroed, removed_logits, atol=1e-3)
    # The zeroed channels still emit a constant: relu(BN(bias)), not zero.
    zeroed_model = zero_conv_weights(model, groups, removed)
    with torch.no_grad():
        z = zeroed_model.block(zeroed_model.stem(x))[:, removed["conv3"]]
    constant = z[0, :, 0, 0]
    assert (constant > 0).any()
    torch.testing.assert_close(z, constant.view(1, -1, 1, 1).expand_as(z))


def test_zero_weights_keeps_the_seed_codes_literal_behaviour() -> None:
    model = tiny_model("pair_cnn")
    zeroed = zero_conv_weights(model, lab_groups(model, "pair_cnn"), {"conv3": [3, 4]})
    assert zeroed.block.conv.weight[[3, 4]].abs().sum() == 0
    torch.testing.assert_close(zeroed.block.conv.bias, model.block.conv.bias)
    torch.testing.assert_close(zeroed.block.bn.weight, model.block.bn.weight)
    assert model.block.conv.weight[[3, 4]].abs().sum() > 0
