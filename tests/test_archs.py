"""The architectures beyond the lab's two CNNs: CIFAR ResNets (option B) and torchvision's by name."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from prunelab.data.spec import InputSpec
from prunelab.errors import UserError
from prunelab.models.archs import ARCHS, arch_of
from prunelab.models.nets import build_model, load_model
from prunelab.models.resnets import BasicBlock
from prunelab.params import validate
from tests.helpers import ROOT

CIFAR = InputSpec(3, 32, 10)
MNIST = InputSpec(1, 28, 10)
PAIRS = InputSpec(2, 28, 2)
# He et al. 2016, table 6 (option A: parameter-free shortcuts) and the usual MAC counts at 3×32×32.
PAPER = {"resnet20": (0.27e6, 41e6), "resnet56": (0.85e6, 126e6)}
CONVS = {"resnet20": 19 + 2, "resnet56": 55 + 2}  # 6n+1 convs, plus option B's two projections


def macs(model: nn.Module, spec: InputSpec) -> float:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model.eval()(torch.zeros(1, spec.channels, spec.size, spec.size))
    return counter.get_total_flops() / 2


def raw_params(**dotted: Any) -> dict[str, Any]:
    raw = copy.deepcopy(yaml.safe_load((ROOT / "params.yaml").read_text()))
    for key, value in dotted.items():
        section, name = key.split(".")
        raw[section][name] = value
    return raw


@pytest.mark.parametrize("arch", ["resnet20", "resnet56"])
def test_cifar_resnets_have_the_papers_depth_widths_and_names(arch: str) -> None:
    model = build_model(arch, CIFAR)
    convs = {name: m for name, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    assert len(convs) == CONVS[arch]
    assert {m.out_channels for m in convs.values()} == {16, 32, 64}
    blocks = (CONVS[arch] - 3) // 6  # n blocks per stage
    for stage, width in enumerate((16, 32, 64), start=1):
        for i in range(blocks):
            assert convs[f"layer{stage}.{i}.conv1"].out_channels == width
            assert convs[f"layer{stage}.{i}.conv2"].out_channels == width
    assert {name for name in convs if "shortcut" in name} == {"layer2.0.shortcut.0", "layer3.0.shortcut.0"}
    named = dict(model.named_modules())
    assert isinstance(named["layer2.0.shortcut.1"], nn.BatchNorm2d)
    assert isinstance(named["layer1.0.bn1"], nn.BatchNorm2d) and isinstance(named["layer1.0.bn2"], nn.BatchNorm2d)
    assert isinstance(named["layer1.0.shortcut"], nn.Identity)  # option B: identity where the shape stays
    assert convs["layer2.0.shortcut.0"].stride == (2, 2) and convs["layer2.0.shortcut.0"].kernel_size == (1, 1)
    assert convs["conv1"].in_channels == 3 and model.fc.out_features == 10 and model.fc.in_features == 64
    # ARCHS claims batchnorm: a BatchNorm right after every conv, projections included (bn_gamma ranks them).
    modules = [m for _, m in model.named_modules()]
    assert all(isinstance(modules[i + 1], nn.BatchNorm2d) for i, m in enumerate(modules) if isinstance(m, nn.Conv2d))
    assert ARCHS[arch].batchnorm


@pytest.mark.parametrize("arch", ["resnet20", "resnet56"])
@pytest.mark.parametrize("spec", [CIFAR, MNIST, InputSpec(2, 8, 2)], ids=["3x32", "1x28", "2x8"])
def test_cifar_resnets_give_logits_for_any_input(arch: str, spec: InputSpec) -> None:
    model = build_model(arch, spec).eval()
    with torch.no_grad():
        out = model(torch.randn(3, spec.channels, spec.size, spec.size))
    assert out.shape == (3, spec.n_classes) and torch.isfinite(out).all()


@pytest.mark.parametrize("arch", ["resnet20", "resnet56"])
def test_cifar_resnets_cost_what_the_paper_says(arch: str) -> None:
    """Option B's projections add 2 752 parameters and 0.26 M MACs; both stay within a few % of the paper."""
    model = build_model(arch, CIFAR)
    params, paper_params = sum(p.numel() for p in model.parameters()), PAPER[arch][0]
    assert abs(params - paper_params) / paper_params < 0.10
    assert params == {"resnet20": 272_474, "resnet56": 855_770}[arch]  # the resnets.py docstring's numbers
    counted, paper_macs = macs(model, CIFAR), PAPER[arch][1]
    assert abs(counted - paper_macs) / paper_macs < 0.05
    assert counted == {"resnet20": 40_813_184, "resnet56": 125_747_840}[arch]


def relu_calls(arch: str) -> dict[str, int]:
    """How often each ReLU module runs in one forward pass, counted by forward hooks."""
    model = build_model(arch, PAIRS).eval()
    calls: dict[str, int] = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.ReLU | nn.ReLU6):
            module.register_forward_hook(lambda *_, name=name: calls.__setitem__(name, calls.get(name, 0) + 1))
    with torch.no_grad():
        model(torch.randn(2, 2, 28, 28))
    return calls


@pytest.mark.parametrize("arch", ["resnet20", "resnet56", "torchvision:mobilenet_v2"])
def test_no_relu_module_is_called_twice_per_forward(arch: str) -> None:
    """A module called twice fires its forward hooks twice: activation statistics would mix two maps."""
    calls = relu_calls(arch)
    assert calls and set(calls.values()) == {1}


def test_torchvisions_resnets_reuse_one_relu_per_block() -> None:
    """torchvision's BasicBlock applies `self.relu` twice: hooks on it fire twice per forward, so
    whatever reads activations by hooking modules must not assume one call per module there."""
    calls = relu_calls("torchvision:resnet18")
    assert calls["layer1.0.relu"] == 2 and calls["relu"] == 1


def test_cifar_resnet_blocks_use_each_relu_once() -> None:
    block = BasicBlock(16, 32, stride=2)
    relus = [name for name, m in block.named_children() if isinstance(m, nn.ReLU)]
    assert relus == ["relu1", "relu2"]


@pytest.mark.parametrize("name", ["mobilenet_v2", "resnet18"])
def test_torchvision_models_build_untrained_for_any_channels(name: str) -> None:
    model = build_model(f"torchvision:{name}", PAIRS).eval()
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert first.in_channels == 2
    with torch.no_grad():
        out = model(torch.randn(2, 2, 28, 28))
    assert out.shape == (2, 2) and torch.isfinite(out).all()
    # The replaced conv keeps its path, so the state_dict keys are torchvision's own.
    import torchvision

    reference = torchvision.models.get_model(name, weights=None, num_classes=2)
    assert list(model.state_dict()) == list(reference.state_dict())


def test_torchvision_models_keep_the_first_conv_for_three_channels() -> None:
    model = build_model("torchvision:resnet18", CIFAR)
    assert model.conv1.in_channels == 3 and model.conv1.kernel_size == (7, 7) and model.fc.out_features == 10


def test_an_unknown_torchvision_name_is_refused_by_build_model_in_one_line() -> None:
    validate(raw_params(**{"model.arch": "torchvision:resnet19"}))  # the schema cannot know torchvision's names
    with pytest.raises(UserError) as err:
        build_model("torchvision:resnet19", PAIRS)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("model.arch=torchvision:resnet19: torchvision has no classification model 'resnet19'")
    assert "did you mean torchvision:resnet18?" in message and "list_models" in message
    with pytest.raises(UserError, match=r"model.arch=torchvision:fasterrcnn_resnet50_fpn: "):
        build_model("torchvision:fasterrcnn_resnet50_fpn", PAIRS)  # a detection model, not a classifier


@pytest.mark.parametrize("arch", ["resnet50", "torchvision:", "Torchvision:resnet18", ""])
def test_an_unknown_plain_name_is_refused_by_params_validation_in_one_line(arch: str) -> None:
    with pytest.raises(UserError) as err:
        validate(raw_params(**{"model.arch": arch}))
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"params.yaml: model.arch={arch!r} is invalid; allowed: one of pair_cnn, simple_cnn")
    assert "resnet20, resnet56" in message and "torchvision:<name>" in message
    with pytest.raises(UserError, match=r"^model\.arch=.* is invalid; allowed: one of pair_cnn, simple_cnn"):
        build_model(arch, PAIRS)  # the same refusal for callers that skip validation


@pytest.mark.parametrize("arch", ["resnet20", "resnet56", "torchvision:vgg11"])
def test_layer_checks_wait_for_the_traced_model(arch: str) -> None:
    """Layers known only after tracing: prune.layer, K < P and finetune K are the stages' checks."""
    assert arch_of(arch) is not None and arch_of(arch).layers is None
    params = validate(
        raw_params(**{"model.arch": arch, "prune.layer": "layer3.0.conv1", "prune.ks": [0, 5000], "export.k": 4000})
    )
    assert params.model.arch == arch


def test_bn_gamma_is_refused_only_where_batchnorm_is_known_to_be_missing() -> None:
    assert ARCHS["resnet20"].batchnorm and arch_of("torchvision:vgg11").batchnorm is None
    validate(raw_params(**{"model.arch": "resnet56"}))  # params.yaml ranks bn_gamma
    validate(raw_params(**{"model.arch": "torchvision:vgg11"}))  # no BN, but only the trace can tell
    with pytest.raises(UserError, match=r"has bn_gamma, but model\.arch=simple_cnn has no BatchNorm"):
        validate(raw_params(**{"model.arch": "simple_cnn"}))


def test_the_lab_cnns_keep_their_layer_checks() -> None:
    with pytest.raises(UserError, match=r"prune.layer='layer1.0.conv1' is not a conv layer of model.arch=pair_cnn"):
        validate(raw_params(**{"prune.layer": "layer1.0.conv1"}))
    with pytest.raises(UserError, match=r"prune.ks=\[0, 128\] contains K >= P"):
        validate(raw_params(**{"prune.ks": [0, 128]}))


def test_traced_archs_have_no_layer_facts_before_building() -> None:
    with pytest.raises(ValueError, match="known only after tracing"):
        _ = ARCHS["resnet20"].channels


def test_load_model_round_trips_a_resnet20_and_names_a_wrong_tensor(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model("resnet20", CIFAR).eval()
    path = tmp_path / "model.pt"
    torch.save(model.state_dict(), path)
    loaded = load_model(path, "resnet20", CIFAR)
    assert not loaded.training
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))

    state = model.state_dict()
    state["layer2.0.shortcut.0.weight"] = torch.zeros(32, 16, 3, 3)
    torch.save(state, path)
    with pytest.raises(UserError) as err:
        load_model(path, "resnet20", CIFAR)
    assert "\n" not in str(err.value)
    assert "model.arch=resnet20" in str(err.value)
    assert "layer2.0.shortcut.0.weight has shape (32, 16, 3, 3), expected (32, 16, 1, 1)" in str(err.value)
    # A resnet20 checkpoint does not fit a resnet56: the missing keys are named.
    torch.save(model.state_dict(), path)
    with pytest.raises(UserError, match=r"does not fit model.arch=resnet56 \(missing \['layer1.3"):
        load_model(path, "resnet56", CIFAR)
