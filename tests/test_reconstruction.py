"""The `reconstruction` criterion (ThiNet's greedy selection on fc1): the greedy order against a
brute-force greedy, the collected Gram matrix against a full-batch computation, and the error it
claims against the error of the actually pruned model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from prunelab.data.spec import InputSpec
from prunelab.models.nets import PrunableNet
from prunelab.pruning import collect as activations
from prunelab.pruning.collect import collect_stats
from prunelab.pruning.criteria import CRITERIA, RankingContext, greedy_reconstruction_order, removal_orders
from prunelab.pruning.surgery import remove_channels
from tests.helpers import lab_example, lab_groups, lab_view, randomized, tiny_model

CPU = torch.device("cpu")


# --------------------------------------------------------------------------- the greedy order
def brute_force_greedy(u: np.ndarray) -> list[int]:
    """Greedy on per-sample contributions u (P×n×H), no Gram identity: at each step, for every
    candidate c, the squared error Σ_n ||Σ_{c'∈R∪{c}} ũ_c'(n)||² recomputed from scratch; the
    first (lowest-index) candidate of equal errors wins."""
    centred = u - u.mean(axis=1, keepdims=True)
    order: list[int] = []
    for _ in range(len(u)):
        best, best_error = -1, np.inf
        for c in range(len(u)):
            if c in order:
                continue
            error = float((centred[[*order, c]].sum(axis=0) ** 2).sum())
            if error < best_error:  # strict: a later candidate must do better to win
                best, best_error = c, error
        order.append(best)
    return order


def gram_of(u: np.ndarray) -> np.ndarray:
    centred = u - u.mean(axis=1, keepdims=True)
    return np.einsum("cnh,dnh->cd", centred, centred)


def contributions(case: str, p: int = 6, n: int = 40, hidden: int = 5) -> np.ndarray:
    rng = np.random.default_rng(3)
    u = rng.normal(size=(p, n, hidden)) * rng.uniform(0.5, 2.0, size=(p, 1, 1))
    if case == "duplicate":  # channels 1 and 4 identical and the cheapest: an exact tie at step 1
        u[1] *= 0.1
        u[4] = u[1]
    elif case == "dead":  # channels 2 and 5 contribute nothing: they tie at every step until removed
        u[[2, 5]] = 0.0
    elif case == "cancelling":  # channel 3 undoes channel 0: cheap, even gainful, once 0 is gone
        u[0] *= 0.2
        u[3] = -u[0]
    return u


@pytest.mark.parametrize("case", ["random", "duplicate", "dead", "cancelling"])
def test_greedy_order_matches_brute_force_greedy(case: str) -> None:
    u = contributions(case)
    order = greedy_reconstruction_order(gram_of(u))
    assert order.dtype == np.int64
    assert order.tolist() == brute_force_greedy(u)
    assert sorted(order.tolist()) == list(range(len(u)))
    if case == "duplicate":
        assert order[0] == 1  # tie with 4, broken by the lower index
    elif case == "dead":
        assert order[:2].tolist() == [2, 5]
    elif case == "cancelling":
        assert order[:2].tolist() == [0, 3]


def test_ties_go_to_the_lowest_index_on_an_exact_gram() -> None:
    # An integer Gram, so equal increases are exactly equal. Step 1: 0, 2, 3 all cost 1 and 0 wins
    # (lowest index). Step 2: 1 costs 2, 2 costs 1 + 2·1 = 3, 3 costs 1 + 2·0 = 1, so 3. Step 3:
    # 1 costs 2, 2 costs 1 + 2·(1 + 1) = 5, so 1, then 2.
    gram = np.array(
        [
            [1, 0, 1, 0],
            [0, 2, 0, 0],
            [1, 0, 1, 1],
            [0, 0, 1, 1],
        ],
        dtype=float,
    )
    assert greedy_reconstruction_order(gram).tolist() == [0, 3, 1, 2]
    assert greedy_reconstruction_order(np.zeros((5, 5))).tolist() == [0, 1, 2, 3, 4]
    assert greedy_reconstruction_order(np.eye(3)).tolist() == [0, 1, 2]


def test_greedy_order_refuses_a_gram_that_is_not_square_or_finite() -> None:
    with pytest.raises(ValueError, match="square"):
        greedy_reconstruction_order(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="non-finite"):
        greedy_reconstruction_order(np.array([[1.0, np.nan], [np.nan, 1.0]]))


# --------------------------------------------------------------------------- the Gram matrix from collect_stats
SPECS = {"pair_cnn": InputSpec(2, 28, 2), "simple_cnn": InputSpec(3, 32, 10)}  # tiny_model's defaults


def inputs(arch: str, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    spec, gen = SPECS[arch], torch.Generator().manual_seed(seed)
    x = torch.randn(n, spec.channels, spec.size, spec.size, generator=gen)
    return x, torch.randint(0, spec.n_classes, (n,), generator=gen)


@torch.no_grad()
def direct_contributions(model: PrunableNet, x: torch.Tensor) -> torch.Tensor:
    """u_c(n) = W_c z_c(n) for all samples at once (P×n×H, float64), z from model.block(model.stem(x))."""
    z = model.block(model.stem(x)).double()
    p, n = model.channels, len(x)
    weight = model.head.fc1.weight.detach().double()
    hidden = weight.shape[0]
    return torch.einsum("nps,hps->pnh", z.reshape(n, p, -1), weight.view(hidden, p, -1))


def direct_gram(model: PrunableNet, x: torch.Tensor) -> np.ndarray:
    u = direct_contributions(model, x)
    centred = u - u.mean(dim=1, keepdim=True)
    return torch.einsum("pnh,qnh->pq", centred, centred).numpy()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("arch", ["pair_cnn", "simple_cnn"])
def test_collected_gram_equals_full_batch_gram_whatever_the_batch_size(
    arch: str, dtype: torch.dtype, monkeypatch
) -> None:
    model = tiny_model(arch).to(dtype)
    x, y = inputs(arch, n=11)
    x = x.to(dtype)
    expected = direct_gram(model, x)
    scale = np.abs(expected).max()
    # float32 convolutions round differently for different batch sizes; in float64 only the
    # summation order of the float64 sums differs.
    rtol = 1e-5 if dtype == torch.float32 else 1e-10
    view = lab_view(model, arch)  # the lab's layer: its consumer is fc1
    grams = [collect_stats(view, x, y, batch_size=b, device=CPU).contribution_gram for b in (11, 3)]
    # Chunks of 2 samples inside a batch of 5: the chunking inside a batch must not matter either.
    monkeypatch.setattr(activations, "GRAM_CHUNK_ELEMENTS", 2 * model.channels * model.head.fc1.out_features)
    grams.append(collect_stats(view, x, y, batch_size=5, device=CPU).contribution_gram)
    for gram in grams:
        assert gram.shape == (model.channels, model.channels) and gram.dtype == np.float64
        np.testing.assert_array_equal(gram, gram.T)
        np.testing.assert_allclose(gram, expected, rtol=rtol, atol=rtol * scale)
        np.testing.assert_allclose(gram, grams[0], rtol=rtol, atol=rtol * scale)
    assert np.linalg.eigvalsh(grams[0]).min() > -1e-9 * scale  # a Gram matrix: positive semidefinite


# --------------------------------------------------------------------------- what the criterion claims
@torch.no_grad()
def fc1_input(model: PrunableNet, x: torch.Tensor) -> torch.Tensor:
    return model.head.flatten(model.block(model.stem(x)))


def test_pruning_the_order_with_folded_means_costs_the_gram_error() -> None:
    """Removing the first k channels of the order (really removing them) and adding their mean
    contributions to fc1's bias changes fc1's pre-activation, over the ranking data, by a
    squared error of exactly E(R_k) = Σ_{c,c'∈R_k} G[c, c'], and E grows by the greedy increments."""
    model = randomized(tiny_model("pair_cnn").double(), seed=1)  # float64: compare errors tightly
    x, y = inputs("pair_cnn", n=9)
    x = x.double()
    groups, example = lab_groups(model, "pair_cnn"), lab_example(model, "pair_cnn")
    stats = collect_stats(lab_view(model, "pair_cnn", "conv3"), x, y, batch_size=4, device=CPU)
    gram = stats.contribution_gram
    order = greedy_reconstruction_order(gram)
    mean_contribution = direct_contributions(model, x).mean(dim=1)  # P×H
    with torch.no_grad():
        full = model.head.fc1(fc1_input(model, x))
    previous = 0.0
    for k in range(1, model.channels):
        removed = order[:k]
        expected = float(gram[np.ix_(removed, removed)].sum())
        # The greedy increment at step k: 2 Σ_{c'∈R_{k-1}} G[c, c'] + G[c, c], and it was the smallest one.
        c, before = order[k - 1], order[: k - 1]
        increments = 2.0 * gram[:, before].sum(axis=1) + np.diag(gram)
        assert increments[c] == pytest.approx(expected - previous, rel=1e-9, abs=1e-9 * abs(gram).max())
        assert increments[c] <= increments[np.setdiff1d(order[k - 1 :], [c])].min(initial=np.inf)
        previous = expected
        if k not in (1, 2, 7, 64, model.channels - 1):
            continue
        pruned = remove_channels(model, groups, {"conv3": removed.tolist()}, example)
        with torch.no_grad():
            pruned.head.fc1.bias += mean_contribution[removed].sum(dim=0)
            error = float(((pruned.head.fc1(fc1_input(pruned, x)) - full) ** 2).sum())
        assert error == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_reconstruction_is_registered_and_returns_one_permutation() -> None:
    model = tiny_model("simple_cnn")
    x, y = inputs("simple_cnn", n=6)
    view = lab_view(model, "simple_cnn", "conv2")
    stats = collect_stats(view, x, y, batch_size=4, device=CPU)
    assert "reconstruction" in CRITERIA
    ctx = RankingContext(stats, model, "reconstruction", 0, 3, view.group, view.fast)
    orders = removal_orders("reconstruction", ctx)
    assert orders.shape == (1, model.channels)
    assert sorted(orders[0].tolist()) == list(range(model.channels))
