"""Every conv layer is prunable: the chain is the forward pass, removal equals masking for any
layer and any set of layers, and the fast sweep of any layer equals pruning and evaluating per K."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from prunelab.data.spec import InputSpec
from prunelab.models.archs import ARCHS
from prunelab.models.cost import channel_cost, flops_per_sample, kept_fractions, layer_flops, parameter_count
from prunelab.pruning.collect import collect_stats
from prunelab.pruning.consumers import ConsumerParts, replacement_values
from prunelab.pruning.criteria import CRITERIA, RankingContext, removal_orders
from prunelab.pruning.surgery import channel_mask, layer_masks, remove_channels, zero_conv_weights
from prunelab.pruning.sweep import (
    block_outputs,
    seed_loop_confusions,
    sweep_confusions,
    sweep_logits,
)
from prunelab.scoring.scores import accuracy
from tests.helpers import tiny_model
from tests.test_fast_paths import N_CLASSES, SHAPES, centred, data, orders

CPU = torch.device("cpu")
ARCH_NAMES = ["pair_cnn", "simple_cnn"]
LAYERS = {"pair_cnn": {"conv1": 32, "conv2": 64, "conv3": 128}, "simple_cnn": {"conv1": 16, "conv2": 32}}


@pytest.mark.parametrize("arch", ARCH_NAMES)
def test_layers_are_named_in_forward_order_with_their_channels(arch: str) -> None:
    model = tiny_model(arch)
    assert {layer.name: layer.channels for layer in model.layers} == LAYERS[arch]
    # The registry knows the same facts without building the model (params validation reads them).
    assert dict(ARCHS[arch].layers) == LAYERS[arch]
    assert model.layer().name == model.layers[-1].name == ARCHS[arch].last_layer
    chain = model.chain()
    for layer in model.layers:
        assert isinstance(chain[layer.conv][1], nn.Conv2d)
        assert chain[layer.conv][1].out_channels == layer.channels
        assert isinstance(chain[layer.consumer][1], nn.Conv2d | nn.Linear)
        assert (layer.bn is not None) == ARCHS[arch].batchnorm
    with pytest.raises(ValueError, match="no layer 'conv9'"):
        model.layer("conv9")


@pytest.mark.parametrize("arch", ARCH_NAMES)
def test_the_chain_is_the_forward_pass(arch: str) -> None:
    model = tiny_model(arch).double()
    images, _ = data(arch, 5)
    with torch.no_grad():
        assert torch.equal(model.run(images), model(images))
        # Split anywhere, the two halves compose to the whole.
        for layer in model.layers:
            middle = model.run(images, 0, layer.output + 1)
            assert torch.equal(model.run(middle, layer.output + 1), model(images))


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
    for removed in _removal_sets(arch, seed=4):
        smaller = remove_channels(model, removed)
        with torch.no_grad():
            expected = model(images, layer_masks(model, removed))
            torch.testing.assert_close(smaller(images), expected, rtol=1e-10, atol=1e-10)
            # Masking does remove something: the logits move.
            assert not torch.allclose(expected, model(images))
        for layer in smaller.layers:
            gone = len(removed.get(layer.name, []))
            assert layer.channels == LAYERS[arch][layer.name] - gone


def test_removing_a_middle_layer_slices_its_conv_bn_and_the_next_conv() -> None:
    model = tiny_model("pair_cnn")
    smaller = remove_channels(model, {"conv2": [0, 5, 63]})
    conv2, bn2, conv3 = smaller.stem[1][0], smaller.stem[1][1], smaller.block.conv
    assert conv2.weight.shape == (61, 32, 3, 3) and conv2.bias.shape == (61,)
    assert bn2.running_var.shape == (61,) and bn2.weight.shape == (61,)
    assert conv3.weight.shape == (128, 61, 3, 3)
    kept = [c for c in range(64) if c not in (0, 5, 63)]
    torch.testing.assert_close(conv3.weight, model.block.conv.weight[:, kept])
    torch.testing.assert_close(bn2.running_mean, model.stem[1][1].running_mean[kept])
    assert smaller.head.fc1.weight.shape == model.head.fc1.weight.shape  # conv3 keeps its 128 channels
    # A bare list still means the lab's layer, the last conv.
    assert remove_channels(model, [1, 2]).block.conv.out_channels == 126


def test_zero_weights_zeroes_only_the_named_layer() -> None:
    model = tiny_model("simple_cnn")
    zeroed = zero_conv_weights(model, {"conv1": [3, 4]})
    assert zeroed.stem[0].weight[[3, 4]].abs().sum() == 0
    assert torch.equal(zeroed.stem[0].weight[5], model.stem[0].weight[5])
    assert torch.equal(zeroed.block.conv.weight, model.block.conv.weight)


@pytest.mark.parametrize("arch", ARCH_NAMES)
def test_layer_outputs_are_the_chain_up_to_the_layer(arch: str) -> None:
    model = tiny_model(arch).double()
    images, _ = data(arch, 7)
    for layer in model.layers:
        with torch.no_grad():
            expected = model.run(images, 0, layer.output + 1)
        torch.testing.assert_close(block_outputs(model, images, 3, CPU, layer.name), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("mode", ["remove", "zero_weights"])
def test_conv_consumer_prefix_subtraction_equals_the_masked_next_conv(mode: str) -> None:
    model = tiny_model("pair_cnn").double()
    images, _ = data("pair_cnn", 4, seed=5)
    layer = model.layer("conv2")
    with torch.no_grad():
        z = model.run(images, 0, layer.output + 1)
        parts = ConsumerParts.of(model, mode, torch.float64, CPU, tuple(z.shape[2:]), "conv2")
        full, delta = parts.contributions(z)
        conv3 = model.block.conv
        # H is flattened channels-last (h', w', C'): the layout the rest of the network runs in.
        torch.testing.assert_close(full, conv3(z).permute(0, 2, 3, 1).flatten(1), rtol=1e-12, atol=1e-12)
        constant = replacement_values(model, mode, tuple(z.shape[2:]), "conv2")
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
    for layer in model.layers[:-1]:  # the last layer: tests/test_fast_paths.py
        p = layer.channels
        ks = sorted({0, 1, 2, p // 3, p // 2, p - 1})
        removal = orders(p, 2, seed=len(layer.name) + p)
        outputs = block_outputs(model, images, 16, CPU, layer.name)
        # Small chunks and stashes: several chunks and K-blocks are walked, as on real data.
        fast = sweep_confusions(
            model, outputs, labels, removal, ks, n_classes, mode, chunk_elements=p * 4000, stash_elements=9000,
            layer=layer.name,
        )  # fmt: skip
        for r, order in enumerate(removal):
            slow = seed_loop_confusions(model, images, labels, order, ks, n_classes, mode, 16, layer.name)
            np.testing.assert_array_equal(fast[r], slow)
        assert len({acc.round(6) for acc in accuracy(fast).ravel()}) > 2, layer.name
        logits = sweep_logits(model, outputs, removal, ks, mode, torch.float64, layer=layer.name)
        pruned = remove_channels(model, {layer.name: removal[1][: ks[-1]].tolist()}) if mode == "remove" else None
        if pruned is not None:
            with torch.no_grad():
                torch.testing.assert_close(torch.from_numpy(logits[1, -1]), pruned(images), rtol=1e-9, atol=1e-9)


# --------------------------------------------------------------------------- statistics, criteria, cost per layer
def test_a_middle_layers_statistics_match_brute_force() -> None:
    """conv2 of the pairs model: means, APoZ and Taylor from its own maps, and the Gram of its
    contributions to conv3's pre-activation (the reconstruction criterion's error, exactly)."""
    model = tiny_model("pair_cnn").double()
    images, labels = data("pair_cnn", 7, seed=8)
    stats = collect_stats(model, images, labels, batch_size=3, device=CPU, layer="conv2")
    conv2, bn2, conv3 = model.stem[1][0], model.stem[1][1], model.block.conv
    with torch.no_grad():
        conv_out = conv2(model.stem[0](images))
    act = torch.relu(bn2(conv_out)).requires_grad_(True)
    pooled = nn.functional.max_pool2d(act, 2)
    loss = nn.functional.cross_entropy(model.run(pooled, model.layer("conv2").output + 1), labels, reduction="sum")
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
    stats = collect_stats(model, images, labels, batch_size=6, device=CPU, layer="conv1")
    ctx = RankingContext(stats, model, "l1_norm", seed=0, random_orders=2, layer="conv1")
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
    spec = InputSpec(*SHAPES[arch][:1], SHAPES[arch][1], N_CLASSES[arch])
    for layer in model.layers:
        cost = channel_cost(model, spec, layer.name)
        ks = [0, 1, layer.channels // 2, layer.channels - 1]
        fractions = kept_fractions(cost, ks)
        for i, k in enumerate(ks):
            pruned = remove_channels(model, {layer.name: list(range(k))})
            assert fractions["flops_kept"][i] * cost.total_flops == pytest.approx(flops_per_sample(pruned, spec))
            assert fractions["params_kept"][i] * cost.total_params == pytest.approx(parameter_count(pruned))


def test_a_two_layer_flop_count_by_hand() -> None:
    """Half of conv1 and a quarter of conv2 of the pairs model, by hand: pruning adjacent layers
    is not additive, conv2 loses work on both sides."""
    model = tiny_model("pair_cnn")
    spec = InputSpec(2, 28, 2)
    pruned = remove_channels(model, {"conv1": list(range(16)), "conv2": list(range(16))})
    c1, c2 = 16, 48
    macs = 2 * 9 * c1 * 28 * 28 + c1 * 9 * c2 * 14 * 14 + c2 * 9 * 128 * 7 * 7 + 128 * 9 * 256 + 256 * 2
    assert flops_per_sample(pruned, spec) == layer_flops(pruned, spec) == 2 * macs
