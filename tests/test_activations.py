"""The one-pass collector equals a brute-force computation over all activations at once."""

from __future__ import annotations

from dataclasses import fields, replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from prunelab.errors import UserError
from prunelab.models.nets import PrunableNet
from prunelab.pruning.activations import ActivationStats, load_stats, save_stats
from prunelab.pruning.collect import collect_stats
from prunelab.pruning.views import GroupView
from tests.helpers import lab_view, tiny_model

CPU = torch.device("cpu")


def conv3(model: PrunableNet) -> GroupView:
    """The lab's layer: the pairs model's channel group conv3."""
    return lab_view(model, "pair_cnn", "conv3")


def inputs(n: int = 13, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 2, 28, 28, generator=gen), torch.randint(0, 2, (n,), generator=gen)


def test_means_feature_maps_and_apoz_match_brute_force() -> None:
    model = tiny_model("pair_cnn")
    x, y = inputs()
    stats = collect_stats(conv3(model), x, y, batch_size=4, device=CPU)
    with torch.no_grad():
        conv_out = model.block.conv(model.stem(x)).double()
        act = torch.relu(model.block.bn(conv_out.float())).double()
    np.testing.assert_allclose(stats.conv_mean, conv_out.mean(dim=(0, 2, 3)).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stats.act_mean, act.mean(dim=(0, 2, 3)).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stats.feature_maps, act.mean(dim=0).numpy(), rtol=1e-5, atol=1e-6)
    assert stats.feature_maps.shape == (128, 7, 7)
    # APoZ is a count of exact zeros after ReLU over samples × positions.
    zeros = (act == 0).sum(dim=(0, 2, 3)).numpy()
    np.testing.assert_allclose(stats.apoz * (13 * 49), zeros, atol=1e-9)
    assert stats.n_samples == 13


def test_taylor_is_mean_over_samples_of_abs_spatial_mean_of_activation_times_gradient() -> None:
    """Sign convention (Molchanov et al. 2017): |mean_m(a·g)| per sample, then averaged; per-sample
    gradients are those of each sample's own loss."""
    model = tiny_model("pair_cnn")
    x, y = inputs(n=5)
    expected = torch.zeros(128, dtype=torch.float64)
    for i in range(len(x)):
        with torch.no_grad():
            conv_out = model.block.conv(model.stem(x[i : i + 1]))
        act = model.block.activation(conv_out).requires_grad_(True)
        loss = F.cross_entropy(model.head(model.block.pool(act)), y[i : i + 1])
        (grad,) = torch.autograd.grad(loss, act)
        expected += (act * grad).detach().double().mean(dim=(2, 3)).abs()[0]
    expected /= len(x)
    stats = collect_stats(conv3(model), x, y, batch_size=2, device=CPU)
    np.testing.assert_allclose(stats.taylor, expected.numpy(), rtol=1e-5, atol=1e-9)
    # Not the same as taking |·| after averaging over samples (the wrong convention).
    assert stats.taylor.sum() > 0


def test_statistics_do_not_depend_on_batch_size() -> None:
    model = tiny_model("pair_cnn")
    x, y = inputs(n=11)
    a = collect_stats(conv3(model), x, y, batch_size=11, device=CPU)
    b = collect_stats(conv3(model), x, y, batch_size=3, device=CPU)
    for field in ("conv_mean", "act_mean", "feature_maps", "apoz", "taylor"):
        np.testing.assert_allclose(getattr(a, field), getattr(b, field), rtol=1e-5, atol=1e-7)


def test_saved_statistics_round_trip(tmp_path) -> None:
    view = conv3(tiny_model("pair_cnn"))
    p = view.group.channels
    x, y = inputs(n=4)
    stats = collect_stats(view, x, y, batch_size=4, device=CPU)
    save_stats(tmp_path / "a.npz", stats, "val")
    loaded, split = load_stats(tmp_path / "a.npz", p)
    assert split == "val" and loaded.n_samples == 4
    for field in fields(ActivationStats):
        np.testing.assert_array_equal(getattr(loaded, field.name), getattr(stats, field.name), err_msg=field.name)
    assert loaded.contribution_gram.shape == (p, p)


def test_a_contribution_gram_of_another_shape_is_refused(tmp_path) -> None:
    view = conv3(tiny_model("pair_cnn"))
    x, y = inputs(n=4)
    stats = collect_stats(view, x, y, batch_size=4, device=CPU)
    p = view.group.channels
    save_stats(tmp_path / "a.npz", replace(stats, contribution_gram=np.eye(p - 1)), "val")
    with pytest.raises(UserError, match=f"do not match the model's P={p}"):
        load_stats(tmp_path / "a.npz", p)
