"""The fast paths are correct: the K sweep equals the lab's prune-and-evaluate loop exactly,
its prefix subtractions equal masked matmuls, and the block outputs equal a plain forward
pass. Correctness only: how fast they are is for benchmarks/run.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from prunelab.models.groups import group_named
from prunelab.models.nets import PrunableNet
from prunelab.models.training import train_model
from prunelab.pruning.consumers import ConsumerParts, replacement_values
from prunelab.pruning.surgery import channel_mask, remove_channels, zero_conv_weights
from prunelab.pruning.sweep import (
    block_outputs,
    default_sizes,
    seed_loop_confusions,
    sweep_confusions,
    sweep_logits,
)
from prunelab.pruning.views import GroupView
from prunelab.scoring.scores import accuracy
from tests.helpers import lab_example, lab_groups, lab_view, tiny_model

CPU = torch.device("cpu")
SHAPES = {"pair_cnn": (2, 28, 28), "simple_cnn": (3, 32, 32)}
N_CLASSES = {"pair_cnn": 2, "simple_cnn": 10}


def data(arch: str, n: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    images = torch.randn(n, *SHAPES[arch], generator=gen, dtype=dtype)
    return images, torch.randint(0, N_CLASSES[arch], (n,), generator=gen)


def centred(model: PrunableNet, images: torch.Tensor) -> PrunableNet:
    """Shift the last layer's bias so that every class is predicted about equally often on
    `images`: a random model otherwise answers one class whatever is pruned, and an exact
    comparison of confusion matrices would prove nothing."""
    last = model.head.rest[-1]
    with torch.no_grad():
        last.bias -= model(images).median(dim=0).values
    return model


def orders(channels: int, count: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(channels) for _ in range(count)])


# K values for the exact comparisons: all of them for SimpleCNN (P=32); for the pairs model
# (P=128, a float64 forward pass per K) a spread that includes both ends.
KS = {"pair_cnn": [0, 1, 2, 5, 30, 64, 100, 127], "simple_cnn": list(range(32))}


@pytest.mark.parametrize("arch", ["pair_cnn", "simple_cnn"])
@pytest.mark.parametrize("mode", ["remove", "zero_weights"])
def test_sweep_equals_seed_loop_exactly_in_float64(arch: str, mode: str) -> None:
    images, labels = data(arch, 40)
    model = centred(tiny_model(arch).double(), images)
    groups = lab_groups(model, arch)
    view = GroupView.of(model, group_named(groups, "last"))  # the lab's layer
    ks = KS[arch]
    removal = orders(view.group.channels, 2, seed=1)
    outputs = block_outputs(view, images, batch_size=25, device=CPU)
    fast = sweep_confusions(view, outputs, labels, removal, ks, N_CLASSES[arch], mode)
    assert fast.shape == (2, len(ks), N_CLASSES[arch], N_CLASSES[arch])
    for r, order in enumerate(removal):
        slow = seed_loop_confusions(
            model, groups, view.group.name, images, labels, order, ks, N_CLASSES[arch], mode, batch_size=25
        )
        np.testing.assert_array_equal(fast[r], slow)
    # The comparison has teeth: pruning changes the predictions along the way.
    assert len({acc.round(6) for acc in accuracy(fast).ravel()}) > 2


@pytest.mark.parametrize("arch", ["pair_cnn", "simple_cnn"])
@pytest.mark.parametrize("mode", ["remove", "zero_weights"])
def test_prefix_subtraction_equals_masked_matmul(arch: str, mode: str) -> None:
    """full − Σ_{c in prefix} delta_c, walked up K as the sweep does, is fc1 of the block output
    with the prefix channels removed (zero) or replaced by their constant (zero_weights)."""
    model = tiny_model(arch).double()
    view = lab_view(model, arch)  # the lab's layer: its consumer is fc1
    p = view.group.channels
    images, _ = data(arch, 9, seed=2)
    with torch.no_grad():
        z = model.block(model.stem(images))
    head = ConsumerParts.of(view, mode, torch.float64, CPU, tuple(z.shape[2:]))
    full, delta = head.contributions(z)
    fc1 = model.head.fc1
    assert view.consumer is fc1
    torch.testing.assert_close(full, fc1(z.flatten(1)), rtol=1e-12, atol=1e-12)
    constant = replacement_values(view, mode, tuple(z.shape[2:])).double()
    order = orders(p, 1, seed=3)[0]
    running = full.clone()
    for k in range(1, p + 1):
        running -= delta[order[k - 1]]
        if k % 5 and k != p:
            continue
        keep = channel_mask(p, order[:k].tolist()).double().view(1, -1, 1, 1)
        pruned_input = z * keep + constant.unsqueeze(0) * (1 - keep)
        with torch.no_grad():
            expected = fc1(pruned_input.flatten(1))
        torch.testing.assert_close(running, expected, rtol=1e-9, atol=1e-9)


def test_zero_weights_sweep_equals_a_zero_conv_weights_model() -> None:
    """The seed's method on a model with BN after the conv: zeroed channels still emit relu(BN(bias))."""
    images, labels = data("pair_cnn", 50, seed=4)
    model = centred(tiny_model("pair_cnn").double(), images)
    groups = lab_groups(model, "pair_cnn")
    view = GroupView.of(model, group_named(groups, "conv3"))
    order = orders(view.group.channels, 1, seed=5)[0]
    outputs = block_outputs(view, images, batch_size=50, device=CPU)
    ks = [0, 10, 40, 90, 127]
    fast = sweep_confusions(view, outputs, labels, order[None], ks, 2, "zero_weights")[0]
    removed = sweep_confusions(view, outputs, labels, order[None], ks, 2, "remove")[0]
    for i, k in enumerate(ks):
        zeroed = zero_conv_weights(model, groups, {"conv3": order[:k].tolist()})
        with torch.no_grad():
            predictions = zeroed(images).argmax(1)
        expected = np.zeros((2, 2), dtype=np.int64)
        np.add.at(expected, (labels.numpy(), predictions.numpy()), 1)
        np.testing.assert_array_equal(fast[i], expected)
    assert not np.array_equal(fast, removed)  # the two modes really differ here


@pytest.mark.parametrize("mode", ["remove", "zero_weights"])
def test_ks_subsets_give_the_same_rows_as_all_ks(mode: str) -> None:
    view = lab_view(tiny_model("pair_cnn"), "pair_cnn", "conv3")
    images, labels = data("pair_cnn", 40, seed=6, dtype=torch.float32)
    outputs = block_outputs(view, images, batch_size=40, device=CPU)
    removal = orders(view.group.channels, 4, seed=7)
    everything = sweep_confusions(view, outputs, labels, removal, range(128), 2, mode)
    for ks in ([0, 5, 17, 127], [64], [3, 1, 3, 0], [100, 2]):  # sorted, one, unsorted with a repeat
        subset = sweep_confusions(view, outputs, labels, removal, ks, 2, mode)
        np.testing.assert_array_equal(subset, everything[:, ks])


@pytest.mark.parametrize(("arch", "layer"), [("pair_cnn", "last"), ("simple_cnn", "last"), ("simple_cnn", "conv1")])
def test_logits_of_ks_subsets_and_any_sizes_are_the_rows_of_all_ks(arch: str, layer: str) -> None:
    """The logits are written per K row: consecutive rows in one copy, others (unsorted, repeated) one
    by one; either way, and with the CPU's or a GPU's default sizes, each row holds its K's logits."""
    model = tiny_model(arch)
    images, _ = data(arch, 23, seed=10, dtype=torch.float32)
    view = lab_view(model, arch, layer)
    outputs = block_outputs(view, images, batch_size=23, device=CPU)
    conv_consumer = isinstance(view.consumer, nn.Conv2d)  # the last layer's is fc1, conv1's the next conv
    assert conv_consumer == (layer != "last")
    removal = orders(view.group.channels, 3, seed=11)
    everything = sweep_logits(view, outputs, removal, range(view.group.channels))
    chunk, stash = default_sizes(conv_consumer, torch.device("cuda"))
    for ks in ([0, 5, 15], [6], [3, 1, 3, 0], [12, 2]):
        subset = sweep_logits(view, outputs, removal, ks)
        np.testing.assert_array_equal(subset, everything[:, ks])
        large = sweep_logits(view, outputs, removal, ks, chunk_elements=chunk, stash_elements=stash)
        np.testing.assert_array_equal(large, everything[:, ks])
    assert default_sizes(conv_consumer, torch.device("cuda"))[0] > default_sizes(conv_consumer, CPU)[0]


def test_chunking_and_order_blocks_do_not_change_results() -> None:
    """Sample chunks and order blocks are an implementation detail: tiny ones give the same
    confusions as one chunk and one block, and stacked orders the same as one at a time."""
    view = lab_view(tiny_model("simple_cnn"), "simple_cnn", "conv2")
    images, labels = data("simple_cnn", 37, seed=8, dtype=torch.float32)
    outputs = block_outputs(view, images, batch_size=16, device=CPU)
    removal = orders(view.group.channels, 5, seed=9)
    ks = list(range(0, 32, 3))
    reference = sweep_confusions(view, outputs, labels, removal, ks, 10, chunk_elements=1 << 30)
    tiny = sweep_confusions(view, outputs, labels, removal, ks, 10, chunk_elements=1, stash_elements=1)
    odd = sweep_confusions(view, outputs, labels, removal, ks, 10, chunk_elements=32 * 256 * 7, stash_elements=1)
    one_by_one = np.concatenate([sweep_confusions(view, outputs, labels, o[None], ks, 10) for o in removal])
    for other in (tiny, odd, one_by_one):
        np.testing.assert_array_equal(other, reference)
    assert reference.sum(axis=(-2, -1)).tolist() == [[37] * len(ks)] * 5


@pytest.mark.parametrize("arch", ["pair_cnn", "simple_cnn"])
def test_block_outputs_equal_a_plain_forward_pass(arch: str) -> None:
    model = tiny_model(arch)
    view = lab_view(model, arch)  # the lab's layer: its read point is the block output
    images, _ = data(arch, 300, seed=10, dtype=torch.float32)
    with torch.no_grad():
        expected = model.block(model.stem(images))
    for batch_size in (1000, 7):
        outputs = block_outputs(view, images, batch_size, CPU)
        torch.testing.assert_close(outputs.maps, expected)
        assert outputs.extras == ()  # nothing after fc1 reads anything else


def test_removal_sweep_agrees_with_physically_smaller_models() -> None:
    """Sanity on the reference itself: the seed loop's `remove` is a real smaller model."""
    model = tiny_model("simple_cnn").double()
    groups = lab_groups(model, "simple_cnn")
    images, labels = data("simple_cnn", 30, seed=11)
    order = orders(32, 1, seed=12)[0]
    slow = seed_loop_confusions(model, groups, "conv2", images, labels, order, [9], 10, "remove")[0]
    with torch.no_grad():
        smaller = remove_channels(model, groups, {"conv2": order[:9].tolist()}, lab_example(model, "simple_cnn"))
        predictions = smaller(images).argmax(1)
    assert int(np.trace(slow)) == int((predictions == labels).sum())


def test_train_model_leaves_a_plain_model_that_learns() -> None:
    """Whatever memory format training uses inside, the model comes back in the default one."""
    torch.manual_seed(0)
    model = tiny_model("simple_cnn")
    images, labels = data("simple_cnn", 96, seed=13, dtype=torch.float32)
    labels = (images[:, 0].mean(dim=(1, 2)) > 0).long()  # learnable
    history = train_model(
        model,
        (images, labels),
        (images[:32], labels[:32]),
        n_classes=10,
        epochs=3,
        batch_size=16,
        lr=0.003,
        class_weight="none",
        device=CPU,
        seed=0,
    )
    assert history[-1].train_loss < history[0].train_loss
    assert all(p.is_contiguous() for p in model.parameters())


def test_sweep_refuses_a_k_beyond_the_orders() -> None:
    view = lab_view(tiny_model("simple_cnn"), "simple_cnn", "conv2")
    images, labels = data("simple_cnn", 4, dtype=torch.float32)
    outputs = block_outputs(view, images, batch_size=4, device=CPU)
    with pytest.raises(ValueError, match="K=12"):
        sweep_confusions(view, outputs, labels, orders(32, 1)[:, :10], [0, 12], 10)


def test_benchmark_sides_see_the_same_data() -> None:
    """benchmarks/run.py: the handout's per-sample PIL + ToTensor + Normalize pipeline and the
    in-memory tensors train_model gets hold the same normalised images."""
    from torchvision import transforms

    from benchmarks.run import CIFAR, HandoutCIFAR, normalised, random_pixels

    pixels, labels = random_pixels(5, CIFAR, seed=0)
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])
    dataset = HandoutCIFAR(pixels, labels, transform)
    tensors = normalised(pixels)
    for i in range(5):
        image, label = dataset[i]
        torch.testing.assert_close(image, tensors[i])
        assert label == labels[i]
