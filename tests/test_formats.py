"""The shipped format computes what the trained model computes: BatchNorm folded, channels-last."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from prunelab.data.spec import InputSpec
from prunelab.deploy.efficiency import model_parts
from prunelab.deploy.export import export_program
from prunelab.deploy.formats import deployed, fold_batchnorm
from prunelab.models.archs import ARCHS
from prunelab.models.groups import find_groups, group_named
from prunelab.models.nets import build_model
from prunelab.pruning.surgery import remove_channels
from tests.helpers import tiny_model
from tests.test_fast_paths import data


@pytest.mark.parametrize("arch", ["pair_cnn", "simple_cnn"])
def test_folding_and_channels_last_keep_the_function(arch: str) -> None:
    model = tiny_model(arch).double()  # randomised BN statistics and affine terms: folding has work to do
    images, _ = data(arch, 6)
    groups = find_groups(model, images[:1])
    pruned = remove_channels(model, groups, {"conv1": [0, 3], group_named(groups, "last").name: [1, 2, 5]}, images[:1])
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
    images, _ = data(arch, 3, dtype=torch.float32)
    parts = model_parts(net, images[:1])
    assert list(parts) == [*(name for name, _ in ARCHS[arch].layers), "head"]  # conv1, conv2, …, head
    h = images
    with torch.no_grad():
        for name, (before, part) in parts.items():
            # Each part starts where the parts before it end: contiguous, no overlap, the first at the input.
            torch.testing.assert_close(before(images), h, rtol=0, atol=0, msg=name)
            h = part(h)
        torch.testing.assert_close(h, net(images))


class CifarBlock(nn.Module):
    """A basic residual block with an option-B shortcut (1×1 conv + BN) where it downsamples."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(h)) + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(self, n_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layers = nn.Sequential(CifarBlock(16, 16, 1), CifarBlock(16, 32, 2), CifarBlock(32, 64, 2))
        self.fc = nn.Linear(64, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.layers(torch.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(h, 1), 1))


def any_model(name: str) -> tuple[nn.Module, torch.Tensor]:
    """A float32 model with random BN statistics and affine terms (folding then has work to do), in
    eval mode, and a batch of inputs for it."""
    torch.manual_seed(0)
    if name in ("pair_cnn", "simple_cnn", "resnet20"):
        spec = InputSpec(2, 28, 2) if name == "pair_cnn" else InputSpec(3, 32, 10)
        model = build_model(name, spec)
        shape = (spec.channels, spec.size, spec.size)
    elif name == "cifar_resnet":
        model, shape = CifarResNet(), (3, 32, 32)
    else:
        model, shape = torchvision.models.get_model(name, weights=None, num_classes=10), (3, 32, 32)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                n = module.num_features
                module.running_mean.copy_(torch.randn(n) * 0.3)
                module.running_var.copy_(torch.rand(n) + 0.5)
                module.weight.copy_(torch.randn(n))
                module.bias.copy_(torch.randn(n) * 0.5)
    return model.eval(), torch.randn(4, *shape)


def batchnorms(model: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())


# BatchNorm2d modules each model has, every one right after a conv (resnet18: stem, 8 blocks × 2, 3
# downsamples; mobilenet_v2: 52; the CIFAR ResNet: stem, 3 blocks × 2, 2 shortcuts; resnet20: stem, 9 blocks
# × 2, 2 option-B shortcuts).
BATCHNORMS = {
    "pair_cnn": 3, "simple_cnn": 0, "resnet20": 21, "resnet18": 20, "mobilenet_v2": 52, "cifar_resnet": 9,
}  # fmt: skip


@pytest.mark.parametrize("name", list(BATCHNORMS))
def test_every_conv_batchnorm_pair_of_any_model_folds_and_the_function_stays(name: str) -> None:
    model, images = any_model(name)
    before = {path: (type(m), m.training) for path, m in model.named_modules()}
    assert batchnorms(model) == BATCHNORMS[name]
    folded = fold_batchnorm(model)
    assert batchnorms(folded) == 0
    # The same module tree: only the BNs became Identity (the convs stay Conv2d, with a bias now).
    modules = dict(folded.named_modules())
    assert list(modules) == list(before)
    for path, (kind, _) in before.items():
        assert type(modules[path]) is (nn.Identity if kind is nn.BatchNorm2d else kind)
    assert not folded.training
    with torch.no_grad():
        expected = model(images)
        torch.testing.assert_close(folded(images), expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(deployed(model)(images), expected, rtol=1e-5, atol=1e-5)
    assert {path: (type(m), m.training) for path, m in model.named_modules()} == before  # input untouched


def test_the_deployed_resnet_exports_and_computes_the_same() -> None:
    model, images = any_model("cifar_resnet")
    shipped = deployed(model)
    assert batchnorms(shipped) == 0
    program = export_program(shipped, images[:2]).module()
    with torch.no_grad():
        expected = model(images)
        torch.testing.assert_close(program(images), expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(
            program(images.contiguous(memory_format=torch.channels_last)), expected, rtol=1e-5, atol=1e-5
        )


class NotFoldable(nn.Module):
    """BNs that must stay: after a conv called twice, after a sum, after a conv whose output is also
    used elsewhere; and one pair that folds."""

    def __init__(self):
        super().__init__()
        self.shared = nn.Conv2d(4, 4, 3, padding=1)
        self.bn_shared = nn.BatchNorm2d(4)
        self.bn_sum = nn.BatchNorm2d(4)
        self.tapped = nn.Conv2d(4, 4, 1)
        self.bn_tapped = nn.BatchNorm2d(4)
        self.conv = nn.Conv2d(4, 4, 1)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.bn_shared(self.shared(self.shared(x)))
        h = self.bn_sum(h + x)
        t = self.tapped(h)
        return self.bn(self.conv(self.bn_tapped(t) + t))


def randomise_batchnorms(model: nn.Module) -> nn.Module:
    torch.manual_seed(1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.3)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.normal_()
                module.bias.normal_(0, 0.5)
    return model.eval()


def test_only_a_batchnorm_whose_input_is_a_conv_used_nowhere_else_folds() -> None:
    model = randomise_batchnorms(NotFoldable())
    images = torch.randn(3, 4, 8, 8)
    folded = fold_batchnorm(model)
    kept = {path for path, m in folded.named_modules() if isinstance(m, nn.BatchNorm2d)}
    assert kept == {"bn_shared", "bn_sum", "bn_tapped"}
    assert isinstance(folded.bn, nn.Identity)
    with torch.no_grad():
        torch.testing.assert_close(folded(images), model(images), rtol=1e-5, atol=1e-5)


class Untraceable(nn.Module):
    """Data-dependent control flow: symbolic tracing fails."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.conv = nn.Conv2d(8, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)
        return self.bn(self.conv(h)) if h.sum() > 0 else h


def test_an_untraceable_model_folds_the_pairs_neighbouring_in_a_sequential() -> None:
    model = randomise_batchnorms(Untraceable())
    images = torch.rand(3, 3, 8, 8)
    with pytest.warns(UserWarning, match="cannot be symbolically traced"):
        folded = fold_batchnorm(model)
    assert isinstance(folded.features[1], nn.Identity)
    assert isinstance(folded.bn, nn.BatchNorm2d)  # not inside a Sequential: left as it is
    with torch.no_grad():
        torch.testing.assert_close(folded(images), model(images), rtol=1e-5, atol=1e-5)
