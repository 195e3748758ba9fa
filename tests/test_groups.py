"""Channel groups, the one model interface: found by Torch-Pruning's dependency graph, removed by its
surgery, masked, swept and costed the same way on every architecture."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch_pruning as tp
from torch import nn

from prunelab.data.spec import InputSpec
from prunelab.errors import UserError
from prunelab.models.archs import ARCHS
from prunelab.models.cost import cost_models, flops_per_sample, parameter_count
from prunelab.models.graph import trace
from prunelab.models.groups import example_input, find_groups, group_named, output_layer, remove_channels
from prunelab.models.nets import build_model
from prunelab.pruning.criteria import RankingContext, l1_norm_scores
from prunelab.pruning.sweep import SweepInputs, block_outputs, sweep_logits
from prunelab.pruning.views import GroupView, masked_net
from tests.helpers import randomized

CIFAR = InputSpec(3, 32, 10)
PAIRS = InputSpec(2, 28, 2)
ANY_MODEL = ["resnet20", "torchvision:mobilenet_v2"]


def built(arch: str, spec: InputSpec = CIFAR, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return randomized(build_model(arch, spec), seed)


@pytest.fixture(scope="module", params=ANY_MODEL)
def any_model(request: pytest.FixtureRequest) -> tuple[str, nn.Module, tuple]:
    model = built(request.param)
    return request.param, model, find_groups(model, example_input(CIFAR))


@pytest.mark.parametrize(("arch", "spec"), [("pair_cnn", PAIRS), ("simple_cnn", CIFAR)])
def test_the_lab_cnns_groups_are_their_conv_layers(arch: str, spec: InputSpec) -> None:
    model = build_model(arch, spec)
    groups = find_groups(model, example_input(spec))
    assert [(g.name, g.channels) for g in groups] == list(ARCHS[arch].layers)
    assert all(len(g.producers) == 1 and len(g.consumers) == 1 for g in groups)
    assert group_named(groups, "last").name == ARCHS[arch].last_layer
    assert all(GroupView.of(model, g).fast for g in groups)


def test_resnet20_has_an_inner_group_per_block_and_a_stream_per_stage() -> None:
    model = built("resnet20")
    groups = find_groups(model, example_input(CIFAR))
    inner = [g for g in groups if len(g.producers) == 1]
    streams = [g for g in groups if len(g.producers) > 1]
    assert len(inner) == 9 and len(streams) == 3
    assert [g.channels for g in streams] == [16, 32, 64]
    # Stage 1's stream: the stem and each block's second conv, read by every block's first conv.
    assert set(streams[0].producers) == {"conv1", "layer1.0.conv2", "layer1.1.conv2", "layer1.2.conv2"}
    assert "layer2.0.shortcut.0" in streams[1].producers  # option B: the projection is part of stage 2's stream
    graph = trace(model)
    paths = {g.name: GroupView.of(model, g, graph).path for g in groups}
    assert all(paths[g.name] == "fast" for g in inner) and all(paths[g.name] == "per_k" for g in streams)
    assert output_layer(model, example_input(CIFAR)) == "fc"


def test_mobilenet_v2_carries_depthwise_convs_in_its_expanded_groups() -> None:
    model = built("torchvision:mobilenet_v2")
    groups = find_groups(model, example_input(CIFAR))
    assert len(groups) >= 17
    expanded = group_named(groups, "features.2.conv.0.0")
    assert expanded.depthwise == ("features.2.conv.1.0",) and expanded.consumers == ("features.2.conv.2",)
    assert GroupView.of(model, expanded).fast  # mask after the depthwise conv's activation, consumer: projection


def _some_channels(groups: tuple, seed: int) -> dict[str, list[int]]:
    rng = np.random.default_rng(seed)
    return {g.name: sorted(rng.choice(g.channels, max(1, g.channels // 3), replace=False).tolist()) for g in groups}


def test_removal_equals_masking_for_every_group_and_all_at_once(any_model: tuple) -> None:
    _, model, groups = any_model
    example = example_input(CIFAR)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    graph = trace(model)
    views = [GroupView.of(model, g, graph) for g in groups]
    removed = _some_channels(groups, 2)
    masks = {g.name: torch.ones(g.channels).index_fill_(0, torch.tensor(removed[g.name]), 0.0) for g in groups}
    with torch.no_grad():
        for view in views:
            name = view.group.name
            smaller = remove_channels(model, groups, {name: removed[name]}, example)
            masked = masked_net(graph, [view.mask_points])(x, masks[name])
            torch.testing.assert_close(smaller(x), masked, rtol=1e-4, atol=1e-4, msg=f"group {name}")
        everything = remove_channels(model, groups, removed, example)
        masked_all = masked_net(graph, [v.mask_points for v in views])(x, *(masks[v.group.name] for v in views))
        torch.testing.assert_close(everything(x), masked_all, rtol=1e-4, atol=1e-4)
    assert parameter_count(everything) < parameter_count(model)


def _reference_logits(model: nn.Module, groups: tuple, name: str, order: np.ndarray, ks: list[int], x: torch.Tensor):
    """Physical removal per K: the lab's loop, the reference both sweep paths must equal."""
    with torch.no_grad():
        return torch.stack([remove_channels(model, groups, {name: order[:k].tolist()}, x[:1])(x) for k in ks])


@pytest.mark.parametrize(
    ("arch", "name", "path"),
    [
        ("resnet20", "layer2.1.conv1", "fast"),
        ("resnet20", "layer2.0.conv2", "per_k"),
        ("torchvision:mobilenet_v2", "features.4.conv.0.0", "fast"),
        ("torchvision:mobilenet_v2", "features.4.conv.2", "per_k"),
    ],
)
def test_both_sweep_paths_equal_removal_per_k(arch: str, name: str, path: str) -> None:
    model = built(arch).double()
    groups = find_groups(model, example_input(CIFAR).double())
    view = GroupView.of(model, group_named(groups, name))
    assert view.path == path
    x = torch.randn(6, 3, 32, 32, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    p = view.group.channels
    orders = np.stack([np.random.default_rng(s).permutation(p) for s in range(3)])
    ks = [0, 1, 2, p // 2, p - 1]
    inputs = block_outputs(view, x, 4, torch.device("cpu"))
    logits = sweep_logits(view, inputs, orders, ks, out_dtype=torch.float64, chunk_elements=1 << 12)
    for r, order in enumerate(orders):
        expected = _reference_logits(model, groups, name, order, ks, x)
        torch.testing.assert_close(torch.as_tensor(logits[r]), expected, rtol=1e-9, atol=1e-9)


def test_a_fast_group_reads_the_skip_tensor_computed_once() -> None:
    model = built("resnet20")
    view = GroupView.of(model, group_named(find_groups(model, example_input(CIFAR)), "layer1.0.conv1"))
    inputs = block_outputs(view, torch.randn(3, 3, 32, 32), 2, torch.device("cpu"))
    assert isinstance(inputs, SweepInputs) and len(inputs.extras) == 1  # the block's identity input
    assert inputs.maps.shape == (3, 16, 32, 32) and inputs.extras[0].shape == (3, 16, 32, 32)


@pytest.mark.parametrize(
    ("arch", "spec"), [("pair_cnn", PAIRS), ("resnet20", CIFAR), ("torchvision:mobilenet_v2", CIFAR)]
)
def test_cost_models_equal_the_counters_of_smaller_models(arch: str, spec: InputSpec) -> None:
    model = built(arch, spec)
    example = example_input(spec)
    groups = find_groups(model, example)
    flops, params = cost_models(model, groups, example)
    assert flops.total == flops_per_sample(model, spec) and params.total == parameter_count(model)
    for seed in range(2):
        removed = _some_channels(groups, seed)
        smaller = remove_channels(model, groups, removed, example)
        kept = {g.name: g.channels - len(removed[g.name]) for g in groups}
        assert flops.kept(kept) * flops.total == pytest.approx(flops_per_sample(smaller, spec), rel=1e-12)
        assert params.kept(kept) * params.total == pytest.approx(parameter_count(smaller), rel=1e-12)
    one = groups[1]
    alone = remove_channels(model, groups, {one.name: list(range(3))}, example)
    assert flops.total - 3 * flops.per_channel(one.name) == flops_per_sample(alone, spec)


class ProducerL1(tp.importance.GroupMagnitudeImportance):
    """Torch-Pruning's magnitude importance (p=1, group_reduction="mean", no normaliser) over the
    group's producing convs' filters: the members our `l1_norm` reduces over."""

    def __init__(self) -> None:
        super().__init__(p=1, group_reduction="mean", normalizer=None, target_types=[nn.Conv2d])

    @torch.no_grad()
    def __call__(self, group: tp.Group) -> torch.Tensor:
        imps, idxs = [], []
        for i, (dep, chosen) in enumerate(group):
            if dep.pruning_fn == tp.prune_conv_out_channels and dep.layer.groups == 1:
                imps.append(dep.layer.weight.data[chosen].flatten(1).abs().double().sum(1))
                idxs.append(group[i].root_idxs)
        return self._reduce(imps, idxs) if imps else None  # a group with no producing conv is not pruned


@pytest.mark.parametrize("arch", ANY_MODEL)
def test_uniform_l1_pruning_removes_what_torch_pruning_removes(arch: str) -> None:
    """The peer cross-check: uniform L1-norm pruning at half the channels of every group removes the
    same channels as Torch-Pruning's BasePruner with the matching importance, and the pruned models
    compute the same outputs."""
    model = built(arch)
    example = example_input(CIFAR)
    groups = find_groups(model, example)
    ratio = 0.5
    ours = {}
    for group in groups:
        scores = l1_norm_scores(RankingContext(None, model, "l1_norm", 0, 1, group))  # type: ignore[arg-type]
        k = group.channels - int(group.channels * (1 - ratio))
        ours[group.name] = sorted(np.argsort(scores, kind="stable")[:k].tolist())
    smaller = remove_channels(model, groups, ours, example)

    theirs = build_model(arch, CIFAR)
    theirs.load_state_dict(model.state_dict())
    theirs.eval()
    pruner = tp.pruner.BasePruner(
        theirs, example, importance=ProducerL1(), pruning_ratio=ratio, global_pruning=False,
        ignored_layers=[theirs.get_submodule(output_layer(theirs, example))],
    )  # fmt: skip
    pruner.step()
    assert {k: tuple(v.shape) for k, v in smaller.state_dict().items()} == {
        k: tuple(v.shape) for k, v in theirs.state_dict().items()
    }
    for key, value in smaller.state_dict().items():
        assert torch.equal(value, theirs.state_dict()[key]), key  # the same channels kept, in the same order
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(smaller(x), theirs(x))


def test_an_unknown_group_is_refused_in_one_line_naming_the_key() -> None:
    model = built("resnet20")
    groups = find_groups(model, example_input(CIFAR))
    with pytest.raises(UserError) as err:
        group_named(groups, "layer9.0.conv1")
    message = str(err.value)
    assert "\n" not in message and "prune.layer='layer9.0.conv1'" in message
    assert "conv1, layer1.0.conv1" in message and "2 more" in message  # the first ten, and how to see all


def test_a_model_without_prunable_groups_is_refused() -> None:
    class OnlyLinear(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(12, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x.flatten(1))

    with pytest.raises(UserError, match=r"^model\.arch: the model has no prunable channel group"):
        find_groups(OnlyLinear(), torch.zeros(1, 3, 2, 2))

    class OneConv(nn.Module):  # its only conv makes the logits: nothing can be removed
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x).mean((2, 3))

    with pytest.raises(UserError, match=r"^model\.arch: the model has no prunable channel group"):
        find_groups(OneConv(), torch.zeros(1, 3, 4, 4))


def test_a_model_fx_cannot_trace_is_refused_naming_model_arch() -> None:
    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            return y if y.sum() > 0 else -y  # control flow on a tensor's value

    with pytest.raises(UserError) as err:
        trace(Branchy())
    assert str(err.value).startswith("model.arch: Branchy.forward(x) cannot be traced") and "\n" not in str(err.value)


def test_an_input_the_model_cannot_take_is_refused_naming_model_arch() -> None:
    spec = InputSpec(1, 28, 10)
    model = build_model("torchvision:vit_b_16", spec)  # wants 3×224×224
    with pytest.raises(UserError) as err:
        find_groups(model, example_input(spec))
    message = str(err.value)
    assert message.startswith("model.arch: the model cannot take the prepared data's input (1×28×28)")
    assert "\n" not in message


def test_params_that_need_the_traced_groups_are_checked_against_them() -> None:
    """For an architecture known only after tracing, the train stage checks prune.layer, the K values
    and bn_gamma against the model's groups (params.check_groups), each in one line naming the key."""
    from prunelab.params import load_params, validate
    from tests.helpers import ROOT

    raw = load_params(ROOT / "params.yaml").model_dump()
    model = built("resnet20")
    groups = find_groups(model, example_input(CIFAR))
    fine = validate(
        {**raw, "model": {**raw["model"], "arch": "resnet20"}, "prune": {**raw["prune"], "layer": "layer2.0.conv1"}}
    )
    fine.check_groups(groups)  # a group of resnet20: accepted
    cases = {
        "prune.layer": ({"layer": "layer4.0.conv1"}, "prune.layer='layer4.0.conv1' names no channel group"),
        "prune.ks": ({"ks": [0, 64]}, "prune.ks=[0, 64] contains K >= P"),  # the last group has 64 channels
    }
    for key, (change, expected) in cases.items():
        params = validate({**raw, "model": {**raw["model"], "arch": "resnet20"}, "prune": {**raw["prune"], **change}})
        with pytest.raises(UserError) as err:
            params.check_groups(groups)
        message = str(err.value)
        assert message.startswith("params.yaml: ") and expected in message and "\n" not in message, key


def test_weight_zeroing_on_a_per_k_group_equals_zeroed_models_per_k() -> None:
    """The lab's weight zeroing is no mask: on a per-K group the sweep zeroes the producers' filters
    per K, the same as `zero_conv_weights` then a full pass."""
    from prunelab.pruning.surgery import zero_conv_weights

    model = built("resnet20").double()
    groups = find_groups(model, example_input(CIFAR))
    view = GroupView.of(model, group_named(groups, "layer2.0.conv2"))
    assert view.path == "per_k"
    x = torch.randn(5, 3, 32, 32, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    order = np.random.default_rng(4).permutation(view.group.channels)
    ks = [0, 3, 17]
    inputs = block_outputs(view, x, 4, torch.device("cpu"))
    logits = sweep_logits(view, inputs, order[None], ks, mode="zero_weights", out_dtype=torch.float64)
    with torch.no_grad():
        expected = torch.stack([zero_conv_weights(model, groups, {view.group.name: order[:k].tolist()})(x) for k in ks])
    torch.testing.assert_close(torch.as_tensor(logits[0]), expected, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(expected[2], expected[0])  # zeroing did change the model
