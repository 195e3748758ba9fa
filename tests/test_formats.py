"""The shipped format computes what the trained model computes: BatchNorm folded, channels-last."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from prunelab.deploy.efficiency import part_ranges
from prunelab.deploy.export import export_program
from prunelab.deploy.formats import deployed, fold_batchnorm
from prunelab.pruning.surgery import remove_channels
from tests.helpers import tiny_model
from tests.test_fast_paths import data


@pytest.mark.parametrize("arch", ["pair_cnn", "simple_cnn"])
def test_folding_and_channels_last_keep_the_function(arch: str) -> None:
    model = tiny_model(arch).double()  # randomised BN statistics and affine terms: folding has work to do
    images, _ = data(arch, 6)
    pruned = remove_channels(model, {"conv1": [0, 3], model.layers[-1].name: [1, 2, 5]})
    for net in (model, pruned):
        folded = fold_batchnorm(net)
        assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
        with torch.no_grad():
            expected = net(images)
            torch.testing.assert_close(folded(images), expected, rtol=1e-10, atol=1e-10)
            shipped = deployed(net)
            assert not any(isinstance(m, nn.BatchNorm2d) for m in shipped.modules())
            torch.testing.assert_close(shipped(images), expected, rtol=1e-10, atol=1e-10)
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == (arch == "pair_cnn")  # input untouched


def test_the_deployed_program_takes_either_layout() -> None:
    model = tiny_model("pair_cnn")
    images, _ = data("pair_cnn", 5, dtype=torch.float32)
    program = export_program(deployed(model), images[:2]).module()
    with torch.no_grad():
        expected = model(images)
        torch.testing.assert_close(program(images), expected, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(
            program(images.contiguous(memory_format=torch.channels_last)), expected, rtol=1e-4, atol=1e-4
        )


@pytest.mark.parametrize("arch", ["pair_cnn", "simple_cnn"])
def test_the_timed_parts_are_the_layers_and_the_head_and_compose_to_the_model(arch: str) -> None:
    net = deployed(tiny_model(arch)).net
    ranges = part_ranges(net)
    assert list(ranges) == [*(layer.name for layer in net.layers), "head"]
    bounds = list(ranges.values())
    assert bounds[0][0] == 0 and bounds[-1][1] == len(net.chain())
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))  # contiguous, no overlap
    images, _ = data(arch, 3, dtype=torch.float32)
    h = images
    with torch.no_grad():
        for start, stop in bounds:
            h = net.run(h, start, stop)
        torch.testing.assert_close(h, net(images))
