"""Every channel group of the lab's CNNs is prunable: the groups are the conv layers in forward
order, a group's view cuts the forward pass into pieces that compose to it, removal equals
masking for any group and any set of groups, and the fast sweep of any group equals pruning and
evaluating per K."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from prunelab.data.spec import InputSpec
from prunelab.errors import UserError
from prunelab.models.archs import ARCHS
from prunelab.models.cost import cost_models, flops_per_sample, kept_fractions, layer_flops, parameter_count
from prunelab.models.graph import trace
from prunelab.models.groups import ChannelGroup, example_input, find_groups, group_named
from prunelab.pruning.collect import collect_stats
from prunelab.pruning.consumers import ConsumerParts, replacement_values
from prunelab.pruning.criteria import CRITERIA, RankingContext, removal_orders
from prunelab.pruning.surgery import channel_mask, remove_channels, zero_conv_weights
from prunelab.pruning.sweep import (
    block_outputs,
    seed_loop_confusions,
    sweep_confusions,
    sweep_logits,
)
from prunelab.pruning.views import GroupView, apply, masked_net
from prunelab.scoring.scores import accuracy
from tests.helpers import tiny_model
from tests.test_fast_paths import N_CLASSES, SHAPES, centred, data, orders

CPU = torch.device("cpu")
ARCH_NAMES = ["pair_cnn", "simple_cnn"]
LAYERS = {"pair_cnn": {"conv1": 32, "conv2": 64, "conv3": 128}, "simple_cnn": {"conv1": 16, "conv2": 32}}
# Where each group's consumer reads its channels (after BN, pooling and ReLU): the module whose
# output a mask multiplies and the sweep starts from.
READ_AT = {
    "pair_cnn": {"conv1": "stem.0.3", "conv2": "stem.1.3", "conv3": "block.relu"},
    "simple_cnn": {"conv1": "stem.2", "conv2": "block.relu"},
}


def spec_of(arch: str) -> InputSpec:
    return InputSpec(*SHAPES[arch][:2], N_CLASSES[arch])


def example_of(model: nn.Module, arch: str) -> torch.Tensor:
    """The one-sample trace input of `arch`, in the model's dtype (a float64 model traces on float64)."""
    return example_input(spec_of(arch)).to(next(model.parameters()).dtype)


def groups_of(model: nn.Module, arch: str) -> tuple[ChannelGroup, ...]:
    return find_groups(model, example_of(model, arch))


def as_tuple(value: torch.Tensor | tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return value if isinstance(value, tuple) else (value,)


@torch.no_grad()
def output_of(model: nn.Module, path: str, images: torch.Tensor) -> torch.Tensor:
    """What module `path` outputs in a plain forward pass of `model` on `images` (called once)."""
    seen: list[torch.Tensor] = []
    hook = model.get_submodule(path).register_forward_hook(lambda _m, _i, out: seen.append(out))
    try:
        model(images)
    finally:
        hook.remove()
    assert len(seen) == 1, path
    return seen[0]


@pytest.mark.parametrize("arch", ARCH_NAMES)
def test_groups_are_named_in_forward_order_with_their_channels(arch: str) -> None:
    model = tiny_model(arch)
    groups = groups_of(model, arch)
    assert [(g.name, g.channels) for g in groups] == list(LAYERS[arch].items())
    # The registry knows the same facts without building the model (params validation reads them).
    assert dict(ARCHS[arch].layers) == LAYERS[arch]
    assert group_named(groups, "last").name == groups[-1].name == ARCHS[arch].last_layer
    for group in groups:
        assert len(group.producers) == 1 and len(group.consumers) == 1 and not group.depthwise
        producer = model.get_submodule(group.producer)
        assert isinstance(producer, nn.Conv2d) and producer.out_channels == group.channels
        assert isinstance(model.get_submodule(group.consumers[0]), nn.Conv2d | nn.Linear)
        assert bool(group.norms) == ARCHS[arch].batchnorm
    # A chain: each group's channels are read by the next group's conv, the last's by fc1.
    assert [g.consumers[0] for g in groups] == [*(g.producer for g in groups[1:]), "head.fc1"]
    with pytest.raises(UserError, match="'conv9' names no channel group"):
        group_named(groups, "conv9")


@pytest.mark.parametrize("arch", ARCH_NAMES)
def test_each_groups_view_cuts_the_forward_pass_into_pieces_that_compose_to_it(arch: str) -> None:
    model = tiny_model(arch).double()
    images, _ = data(arch, 5)
    gm = trace(model)
    with torch.no_grad():
        whole = model(images)
        for group in groups_of(model, arch):
            view = GroupView.of(model, group, gm)
            assert view.fast, (group.name, view.fast_reason)  # one linear consumer: the fast sweep
            assert [str(n.target) for n in gm.graph.nodes if n.name in view.mask_points] == [READ_AT[arch][group.name]]
            # Before the producer, the producer, its per-channel ops, what follows the read point.
            before, *extras = as_tuple(view.before_producer(images))
            read = apply(view.pooling, apply(view.activation, view.producer(before)))
            assert torch.equal(read, output_of(model, READ_AT[arch][group.name], images))
            assert torch.equal(view.after_read(read, *extras), whole)
            # Split at the consumer instead (the fast sweep's cut), the halves compose likewise.
            read, *extras = as_tuple(view.before_read(images))
            consumed = view.consumer(read if isinstance(view.consumer, nn.Conv2d) else read.flatten(1))
            assert torch.equal(view.after_consumer(consumed, *extras), whole)


@torch.no_grad()
def masked_logits(model: nn.Module, arch: str, masks: dict[str, torch.Tensor], images: torch.Tensor) -> torch.Tensor:
    """The model's logits with each named group's channels multiplied by its mask (1 keeps a
    channel, 0 removes it) where its consumer reads them, in a plain forward pass."""
    hooks = [
        model.get_submodule(READ_AT[arch][name]).register_forward_hook(
            lambda _m, _i, out, mask=mask: out * mask.to(out.dtype).view(1, -1, 1, 1)
        )
        for name, mask in masks.items()
    ]
    try:
        return model(images)
    finally:
        for hook in hooks:
            hook.remove()


def _removal_sets(arch: str, seed: int) -> list[dict[str, list[int]]]:
    """One layer at a time, each pair of layers, and every layer at once, random channels."""
    rng = np.random.default_rng(seed)
    names = list(LAYERS[arch])

    def pick(name: str) -> list[int]:
        p = LAYERS[arch][name]
        return rng.permutation(p)[: int(rng.integers(1, p))].tolist()

    sets = [{name: pick(name)} for name in names]
    sets += [{a: pick(a), b: pick(b)} for i, a in enumerate(names) for b in names[i + 1 :]]
    sets.append({name: pick(name) for name in names})
    return sets


@pytest.mark.parametrize("arch", ARCH_NAMES)
def test_removal_equals_masking_for_every_layer_and_sets_of_layers(arch: str) -> None:
    model = tiny_model(arch).double()
    images, _ = data(arch, 6, seed=3)
    groups = groups_of(model, arch)
    gm = trace(model)
    masked = masked_net(gm, [GroupView.of(model, g, gm).mask_points for g in groups])  # one mask per group
    for removed in _removal_sets(arch, seed=4):
        smaller = remove_channels(model, groups, removed, images[:1])
        masks = {name: channel_mask(LAYERS[arch][name], chosen) for name, chosen in removed.items()}
        with torch.no_grad():
            expected = masked_logits(model, arch, masks, images)
            torch.testing.assert_close(smaller(images), expected, rtol=1e-10, atol=1e-10)
            # The library's masking (the per-K sweep's) masks the same maps.
            every = [masks.get(g.name, torch.ones(g.channels)) for g in groups]
            torch.testing.assert_close(masked(images, *every), expected, rtol=1e-10, atol=1e-10)
            # Masking does remove something: the logits move.
            assert not torch.allclose(expected, model(images))
        for group in groups_of(smaller, arch):
            gone = len(removed.get(group.name, []))
            assert group.channels == LAYERS[arch][group.name] - gone


def test_removing_a_middle_layer_slices_its_conv_bn_and_the_next_conv() -> None:
    model = tiny_model("pair_cnn")
    groups = groups_of(model, "pair_cnn")
    example = example_of(model, "pair_cnn")
    smaller = remove_channels(model, groups, {"conv2": [0, 5, 63]}, example)
    conv2, bn2, conv3 = smaller.stem[1][0], smaller.stem[1][1], smaller.block.conv
    assert conv2.weight.shape == (61, 32, 3, 3) and conv2.bias.shape == (61,)
    assert bn2.running_var.shape == (61,) and bn2.weight.shape == (61,)
    assert conv3.weight.shape == (128, 61, 3, 3)
    kept = [c for c in range(64) if c not in (0, 5, 63)]
    torch.testing.assert_close(conv3.weight, model.block.conv.weight[:, kept])
    torch.testing.assert_close(bn2.running_mean, model.stem[1][1].running_mean[kept])
    assert smaller.head.fc1.weight.shape == model.head.fc1.weight.shape  # conv3 keeps its 128 channels
    # `last` is the lab's layer, the last conv.
    last = group_named(groups, "last").name
    assert remove_channels(model, groups, {last: [1, 2]}, example).block.conv.out_channels == 126
    with pytest.raises(ValueError, match="no channel group 'conv9'"):
        remove_channels(model, groups, {"conv9": [0]}, example)


def test_zero_weights_zeroes_only_the_named_layer() -> None:
    model = tiny_model("simple_cnn")
    zeroed = zero_conv_weights(model, groups_of(model, "simple_cnn"), {"conv1": [3, 4]})
    assert zeroed.stem[0].weight[[3, 4]].abs().sum() == 0
    assert torch.equal(zeroed.stem[0].weight[5], model.stem[0].weight[5])
    assert torch.equal(zeroed.block.conv.weight, model.block.conv.weight)


@pytest.mark.parametrize("arch", ARCH_NAMES)
def test_block_outputs_are_each_groups_maps_where_its_consumer_reads_them(arch: str) -> None:
    model = tiny_model(arch).double()
    images, _ = data(arch, 7)
    for group in groups_of(model, arch):
        expected = output_of(model, READ_AT[arch][group.name], images)
        outputs = block_outputs(GroupView.of(model, group), images, 3, CPU)
        assert outputs.extras == ()
        torch.testing.assert_close(outputs.maps, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("mode", ["remove", "zero_weights"])
def test_conv_consumer_prefix_subtraction_equals_the_masked_next_conv(mode: str) -> None:
    model = tiny_model("pair_cnn").double()
    images, _ = data("pair_cnn", 4, seed=5)
    view = GroupView.of(model, group_named(groups_of(model, "pair_cnn"), "conv2"))
    with torch.no_grad():
        z = output_of(model, READ_AT["pair_cnn"]["conv2"], images)
        parts = ConsumerParts.of(view, mode, torch.float64, CPU, tuple(z.shape[2:]))
        full, delta = parts.contributions(z)
        conv3 = model.block.conv
        # H is flattened channels-last (h', w', C'): the layout the rest of the network runs in.
        torch.testing.assert_close(full, conv3(z).permute(0, 2, 3, 1).flatten(1), rtol=1e-12, atol=1e-12)
        constant = replacement_values(view, mode, tuple(z.shape[2:]))
        order = orders(64, 1, seed=6)[0]
        running = full.clone()
        for k in range(1, 64):
            running -= delta[order[k - 1]]
            if k % 9:
                continue
            keep = channel_mask(64, order[:k].tolist()).double().view(1, -1, 1, 1)
            expected = conv3(z * keep + constant.unsqueeze(0) * (1 - keep)).permute(0, 2, 3, 1).flatten(1)
            torch.testing.assert_close(running, expected, rtol=1e-9, atol=1e-9)
        # What follows the consumer, run on its pre-activation, gives the model's logits.
        torch.testing.assert_close(parts.finish(full), model(images), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("arch", ARCH_NAMES)
@pytest.mark.parametrize("mode", ["remove", "zero_weights"])
def test_every_layers_sweep_equals_pruning_per_k_exactly_in_float64(arch: str, mode: str) -> None:
    images, labels = data(arch, 30)
    model = centred(tiny_model(arch).double(), images)
    n_classes = N_CLASSES[arch]
    groups = groups_of(model, arch)
    for group in groups[:-1]:  # the last layer: tests/test_fast_paths.py
        p = group.channels
        ks = sorted({0, 1, 2, p // 3, p // 2, p - 1})
        removal = orders(p, 2, seed=len(group.name) + p)
        view = GroupView.of(model, group)
        outputs = block_outputs(view, images, 16, CPU)
        # Small chunks and stashes: several chunks and K-blocks are walked, as on real data.
        fast = sweep_confusions(
            view, outputs, labels, removal, ks, n_classes, mode, chunk_elements=p * 4000, stash_elements=9000
        )
        for r, order in enumerate(removal):
            slow = seed_loop_confusions(model, groups, group.name, images, labels, order, ks, n_classes, mode, 16)
            np.testing.assert_array_equal(fast[r], slow)
        assert len({acc.round(6) for acc in accuracy(fast).ravel()}) > 2, group.name
        logits = sweep_logits(view, outputs, removal, ks, mode, torch.float64)
        if mode == "remove":
            pruned = remove_channels(model, groups, {group.name: removal[1][: ks[-1]].tolist()}, images[:1])
            with torch.no_grad():
                torch.testing.assert_close(torch.from_numpy(logits[1, -1]), pruned(images), rtol=1e-9, atol=1e-9)


# --------------------------------------------------------------------------- statistics, criteria, cost per layer
def test_a_middle_layers_statistics_match_brute_force() -> None:
    """conv2 of the pairs model: means, APoZ and Taylor from its own maps, and the Gram of its
    contributions to conv3's pre-activation (the reconstruction criterion's error, exactly)."""
    model = tiny_model("pair_cnn").double()
    images, labels = data("pair_cnn", 7, seed=8)
    view = GroupView.of(model, group_named(groups_of(model, "pair_cnn"), "conv2"))
    stats = collect_stats(view, images, labels, batch_size=3, device=CPU)
    conv2, bn2, conv3 = model.stem[1][0], model.stem[1][1], model.block.conv
    with torch.no_grad():
        conv_out = conv2(model.stem[0](images))
    act = torch.relu(bn2(conv_out)).requires_grad_(True)
    pooled = nn.functional.max_pool2d(act, 2)
    # Everything after conv2's pooled maps: conv3's block, then the head.
    loss = nn.functional.cross_entropy(model.head(model.block(pooled)), labels, reduction="sum")
    (grad,) = torch.autograd.grad(loss, act)
    act = act.detach()
    assert stats.feature_maps.shape == (64, 14, 14)
    np.testing.assert_allclose(stats.conv_mean, conv_out.mean(dim=(0, 2, 3)).numpy(), rtol=1e-10)
    np.testing.assert_allclose(stats.feature_maps, act.mean(dim=0).numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(stats.apoz, (act == 0).double().mean(dim=(0, 2, 3)).numpy(), rtol=1e-12)
    taylor = (act * grad).mean(dim=(2, 3)).abs().mean(dim=0)
    np.testing.assert_allclose(stats.taylor, taylor.numpy(), rtol=1e-9, atol=1e-12)
    # Removing a set R with its mean contributions folded in moves conv3's pre-activation by Σ_{R×R} G.
    with torch.no_grad():
        pooled = pooled.detach()
        removed = [3, 10, 11, 40]
        keep = channel_mask(64, removed).double().view(1, -1, 1, 1)
        shift = conv3(pooled) - conv3(pooled * keep)  # what R contributes, per sample
        error = float(((shift - shift.mean(dim=0)) ** 2).sum())
    assert float(stats.contribution_gram[np.ix_(removed, removed)].sum()) == pytest.approx(error, rel=1e-9)


def test_criteria_rank_the_named_layer() -> None:
    model = tiny_model("pair_cnn")
    images, labels = data("pair_cnn", 6, dtype=torch.float32)
    group = group_named(groups_of(model, "pair_cnn"), "conv1")
    view = GroupView.of(model, group)
    stats = collect_stats(view, images, labels, batch_size=6, device=CPU)
    ctx = RankingContext(stats, model, "l1_norm", seed=0, random_orders=2, group=group, fast=view.fast)
    l1 = model.stem[0][0].weight.detach().double().abs().sum(dim=(1, 2, 3)).numpy()
    np.testing.assert_array_equal(removal_orders("l1_norm", ctx)[0], np.argsort(l1, kind="stable"))
    gamma = model.stem[0][1].weight.detach().double().abs().numpy()
    np.testing.assert_array_equal(removal_orders("bn_gamma", ctx)[0], np.argsort(gamma, kind="stable"))
    for name in CRITERIA:
        orders_ = removal_orders(name, ctx)
        assert sorted(orders_[0].tolist()) == list(range(32)), name


@pytest.mark.parametrize("arch", ARCH_NAMES)
def test_a_channels_cost_is_exact_for_every_layer(arch: str) -> None:
    model = tiny_model(arch)
    spec = spec_of(arch)
    example = example_of(model, arch)
    groups = groups_of(model, arch)
    flops, params = cost_models(model, groups, example)
    for group in groups:
        ks = [0, 1, group.channels // 2, group.channels - 1]
        fractions = kept_fractions(flops, params, group.name, ks)
        for i, k in enumerate(ks):
            pruned = remove_channels(model, groups, {group.name: list(range(k))}, example)
            assert fractions["flops_kept"][i] * flops.total == pytest.approx(flops_per_sample(pruned, spec))
            assert fractions["params_kept"][i] * params.total == pytest.approx(parameter_count(pruned))


def test_a_two_layer_flop_count_by_hand() -> None:
    """Half of conv1 and a quarter of conv2 of the pairs model, by hand: pruning adjacent layers
    is not additive, conv2 loses work on both sides."""
    model = tiny_model("pair_cnn")
    spec = InputSpec(2, 28, 2)
    groups = groups_of(model, "pair_cnn")
    pruned = remove_channels(model, groups, {"conv1": list(range(16)), "conv2": list(range(16))}, example_input(spec))
    c1, c2 = 16, 48
    macs = 2 * 9 * c1 * 28 * 28 + c1 * 9 * c2 * 14 * 14 + c2 * 9 * 128 * 7 * 7 + 128 * 9 * 256 + 256 * 2
    assert flops_per_sample(pruned, spec) == layer_flops(pruned, spec) == 2 * macs
