"""The whole network: per-layer sensitivity and FLOPs budgets.

FLOPs arithmetic against the counter on physically smaller models; every strategy's allocation
fits its budget with the fewest removals its knob allows and follows each layer's own order; the
sensitivity sweep equals scoring the physically pruned model; the per-seed files round-trip and
damaged ones are refused; the study's paired arithmetic; params errors name their key."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch

from prunelab.data.spec import InputSpec
from prunelab.errors import UserError
from prunelab.models.cost import layer_flops
from prunelab.models.groups import ChannelGroup, example_input, find_groups, group_named
from prunelab.network.budget import (
    STRATEGIES,
    FlopsModel,
    LayerPlan,
    allocate,
    flops_model,
    normalised_scores,
    sensitivity_plans,
)
from prunelab.network.choice import choose_budget
from prunelab.network.sensitivity import (
    LayerRanking,
    fraction_ks,
    layer_sensitivity,
    load_rankings,
    rank_layer,
    save_rankings,
)
from prunelab.params.loader import validate
from prunelab.pruning.collect import collect_stats
from prunelab.pruning.surgery import remove_channels
from prunelab.pruning.sweep import block_outputs
from prunelab.pruning.views import GroupView
from prunelab.scoring.evaluate import SplitOutputs, every_score
from prunelab.scoring.scores import SCORES
from prunelab.scoring.scores import score_logits as reference_scores
from prunelab.study.network import budget_metrics, sensitivity_metrics
from tests.helpers import tiny_model
from tests.test_fast_paths import centred, data
from tests.test_params import raw_params

CPU = torch.device("cpu")
SPECS = {"pair_cnn": InputSpec(2, 28, 2), "simple_cnn": InputSpec(3, 32, 10)}


def _groups(model: torch.nn.Module, arch: str) -> tuple[ChannelGroup, ...]:
    return find_groups(model, example_input(SPECS[arch]))


def _flops(model: torch.nn.Module, arch: str) -> FlopsModel:
    return flops_model(model, _groups(model, arch), example_input(SPECS[arch]))


def _plans(
    groups: tuple[ChannelGroup, ...], seed: int = 0, losses: dict[str, tuple[float, ...]] | None = None
) -> dict[str, LayerPlan]:
    rng = np.random.default_rng(seed)
    shares = (0.25, 0.5, 0.75)
    return {
        group.name: LayerPlan(
            rng.permutation(group.channels),
            rng.random(group.channels) - 0.2,
            shares,
            (losses or {}).get(group.name, (0.5, 1.0, 4.0)),
        )
        for group in groups
    }


@pytest.mark.parametrize("arch", ["pair_cnn", "simple_cnn"])
def test_flops_model_is_the_counter_of_the_smaller_model(arch: str) -> None:
    model, spec = tiny_model(arch), SPECS[arch]
    groups, example = _groups(model, arch), example_input(spec)
    flops = flops_model(model, groups, example)
    assert flops.total == layer_flops(model, spec)
    rng = np.random.default_rng(1)
    for _ in range(4):  # several layers at once: adjacent layers are not additive
        removed = {group.name: rng.choice(group.channels, rng.integers(0, group.channels), replace=False).tolist()
                   for group in groups}  # fmt: skip
        kept = {name: group_named(groups, name).channels - len(chosen) for name, chosen in removed.items()}
        smaller = remove_channels(model, groups, removed, example)
        assert flops.kept(kept) == pytest.approx(layer_flops(smaller, spec) / flops.total, rel=1e-12)


@pytest.mark.parametrize("arch", ["pair_cnn", "simple_cnn"])
@pytest.mark.parametrize("strategy", list(STRATEGIES))
@pytest.mark.parametrize("budget", [0.8, 0.5, 0.3])
def test_every_strategy_fits_its_budget_with_each_layers_own_order(arch: str, strategy: str, budget: float) -> None:
    model = tiny_model(arch)
    groups = _groups(model, arch)
    flops, plans = flops_model(model, groups, example_input(SPECS[arch])), _plans(groups)
    removed = allocate(strategy, plans, flops, budget)
    kept = {name: group_named(groups, name).channels - len(chosen) for name, chosen in removed.items()}
    assert flops.kept(kept) <= budget + 1e-12
    assert min(kept.values()) >= 1
    for name, chosen in removed.items():  # each layer's first K of its own order
        assert sorted(chosen) == sorted(plans[name].order[: len(chosen)].tolist())
    # The fewest removals that fit: one channel back into any layer would not fit (global and
    # sensitivity move a channel at a time; uniform a share of every layer at a time).
    if strategy != "uniform":
        assert any(flops.kept(kept | {n: kept[n] + 1}) > budget for n in kept if removed[n])


def test_uniform_removes_the_same_share_of_every_layer() -> None:
    model = tiny_model("pair_cnn")
    groups = _groups(model, "pair_cnn")
    removed = allocate("uniform", _plans(groups), _flops(model, "pair_cnn"), 0.5)
    shares = {name: len(chosen) / group_named(groups, name).channels for name, chosen in removed.items()}
    assert max(shares.values()) - min(shares.values()) < 1 / 32 + 1e-12


def test_sensitivity_takes_from_the_robust_layer_first() -> None:
    model = tiny_model("pair_cnn")
    groups = _groups(model, "pair_cnn")
    flat, steep = (0.0, 0.0, 0.1), (5.0, 10.0, 20.0)
    plans = _plans(groups, losses={"conv1": steep, "conv2": flat, "conv3": steep})
    removed = allocate("sensitivity", plans, _flops(model, "pair_cnn"), 0.8)
    assert len(removed["conv1"]) == len(removed["conv3"]) == 0
    assert len(removed["conv2"]) > 0
    # Never beyond the largest share measured (0.75 of 64).
    deep = allocate("sensitivity", plans, _flops(model, "pair_cnn"), 0.01)
    assert max(len(chosen) / group_named(groups, name).channels for name, chosen in deep.items()) <= 0.75


def test_global_ranks_every_channel_on_one_normalised_scale() -> None:
    scored = LayerPlan(np.array([2, 0, 1]), np.array([2.0, 4.0, 0.0]))
    assert normalised_scores(scored) == pytest.approx([1.0, 2.0, 0.0])  # over the mean magnitude, 2
    ordered = LayerPlan(np.array([2, 0, 1]))  # an order only: (rank + 1) / P
    assert normalised_scores(ordered) == pytest.approx([2 / 3, 1.0, 1 / 3])
    # Two layers of equal cost: the channels with the lowest normalised scores go, whichever layer.
    flops = FlopsModel(("a", "b"), (4, 4), ((100, None, 0), (100, None, 1)))
    plans = {
        "a": LayerPlan(np.array([0, 1, 2, 3]), np.array([1.0, 2.0, 3.0, 4.0])),  # 0.4 0.8 1.2 1.6
        "b": LayerPlan(np.array([3, 2, 1, 0]), np.array([40.0, 30.0, 2.0, 1.0])),  # 1.6 1.2 0.09 0.05
    }
    removed = allocate("global", plans, flops, 0.7)
    assert removed == {"a": [0], "b": [2, 3]}  # 0.05, 0.09, 0.4: two channels of b, one of a


def _splits(view: GroupView, n: int = 40) -> tuple[SplitOutputs, SplitOutputs, tuple, tuple]:
    images, labels = data("pair_cnn", n, dtype=torch.float32)
    cal_images, cal_labels = data("pair_cnn", n, seed=1, dtype=torch.float32)
    test = SplitOutputs(block_outputs(view, images, 16, CPU), labels)
    cal = SplitOutputs(block_outputs(view, cal_images, 16, CPU), cal_labels)
    return test, cal, (images, labels), (cal_images, cal_labels)


@pytest.mark.parametrize("layer", ["conv1", "conv2", "conv3"])
def test_sensitivity_rows_are_the_scores_of_the_physically_pruned_model(layer: str) -> None:
    model = tiny_model("pair_cnn").double()
    images, _ = data("pair_cnn", 40)
    model = centred(model, images).float()
    groups = _groups(model, "pair_cnn")
    group = group_named(groups, layer)
    view = GroupView.of(model, group)
    test, cal, raw_test, raw_cal = _splits(view)
    stats = collect_stats(view, raw_test[0], raw_test[1], 16, CPU)
    ranked = rank_layer(model, stats, ["l1_norm", "taylor", "random"], headline="l1_norm", seed=0,
                        random_orders=2, group=group, fast=view.fast)  # fmt: skip
    fractions = (0.25, 0.5)
    table = layer_sensitivity(view, ranked, test, cal, fractions, 2)
    channels = group.channels
    assert set(table["layer"]) == {layer}
    assert list(table["fraction"]) == [0.0, *fractions] * 3
    for name, ranking in ranked.items():
        for fraction, k in zip(fractions, fraction_ks(fractions, channels), strict=True):
            row = table[(table["criterion"] == name) & (table["fraction"] == fraction)].iloc[0]
            assert row["k"] == k
            each = [
                every_score(remove_channels(model, groups, {layer: order[:k]}, raw_test[0][:1]), raw_test, raw_cal, 2)
                for order in ranking.orders
            ]
            for score in SCORES:  # random: the mean over its orders
                assert row[score] == pytest.approx(np.mean([e[score] for e in each]), abs=1e-6), (name, score)


def test_every_score_is_the_reference_scoring_of_the_models_logits() -> None:
    model = tiny_model("simple_cnn").eval()
    test, cal = data("simple_cnn", 50, dtype=torch.float32), data("simple_cnn", 60, seed=2, dtype=torch.float32)
    with torch.no_grad():
        logits = [model(x).double().numpy()[None] for x in (test[0], cal[0])]
    expected = reference_scores(logits[0], test[1].numpy(), logits[1], cal[1].numpy(), 10)
    got = every_score(model, test, cal, 10)
    assert got == pytest.approx({k: float(v[0]) for k, v in expected.items()}, abs=1e-9)


def test_fraction_ks_keep_a_channel_and_remove_one() -> None:
    assert fraction_ks([0.125, 0.5, 0.875], 16) == [2, 8, 14]
    assert fraction_ks([0.01, 0.99], 4) == [1, 3]


def test_rankings_round_trip_and_damage_is_refused(tmp_path) -> None:
    rankings = {
        "conv1": {"l1_norm": LayerRanking(np.array([[2, 0, 1]]), np.array([0.5, 0.7, 0.1])),
                  "random": LayerRanking(np.array([[1, 2, 0], [0, 1, 2]]), None)},
    }  # fmt: skip
    path = tmp_path / "layer_rankings.npz"
    save_rankings(path, rankings)
    back = load_rankings(path, {"conv1": 3}, ["l1_norm", "random"])
    assert np.array_equal(back["conv1"]["l1_norm"].orders, [[2, 0, 1]])
    assert np.array_equal(back["conv1"]["l1_norm"].scores, [0.5, 0.7, 0.1])
    assert np.array_equal(back["conv1"]["random"].orders, [[1, 2, 0]]) and back["conv1"]["random"].scores is None
    with pytest.raises(UserError, match="not a permutation of its 4 channels"):
        load_rankings(path, {"conv1": 4}, ["l1_norm"])
    with pytest.raises(UserError, match="unreadable layer rankings"):
        load_rankings(path, {"conv1": 3}, ["taylor"])
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(UserError, match="unreadable layer rankings"):
        load_rankings(path, {"conv1": 3}, ["l1_norm"])


def test_sensitivity_plans_read_each_layers_loss_from_its_unpruned_row() -> None:
    curves = pd.DataFrame({
        "layer": ["conv1"] * 3, "criterion": ["l1_norm"] * 3, "fraction": [0.0, 0.5, 0.25],
        "roc_auc": [90.0, 80.0, 88.0],
    })  # fmt: skip
    rankings = {"conv1": {"l1_norm": LayerRanking(np.array([[1, 0, 2, 3]]), None)}}
    plan = sensitivity_plans(rankings, curves, "l1_norm")["conv1"]
    assert plan.fractions == (0.25, 0.5) and plan.losses == pytest.approx((2.0, 10.0))


MARGINS = {"acc": 2.0, "bacc": 2.0, "roc_auc": 1.0, "recal_acc": 2.0, "recal_bacc": 2.0}


def test_sensitivity_metrics_pair_each_criterion_with_random_within_seeds() -> None:
    rows = []
    for seed, shift in ((0, 0.0), (1, 10.0), (2, -5.0)):  # the seeds' models differ a lot; the pairs do not
        for criterion, gain in (("l1_norm", 3.0), ("random", 0.0)):
            for fraction, loss in ((0.0, 0.0), (0.5, 4.0), (0.75, 8.0)):
                value = (
                    80.0
                    + shift
                    - (loss - gain if fraction else 0.0)
                    + 0.1 * seed * (criterion == "l1_norm" and fraction > 0)
                )
                rows.append({"seed": seed, "layer": "conv1", "criterion": criterion, "fraction": fraction, "k": 0}
                            | {s: value for s in ("roc_auc", "recal_bacc", "bacc")})  # fmt: skip
    metrics = sensitivity_metrics(pd.DataFrame(rows), MARGINS)["conv1"]
    paired = metrics["l1_norm"]["mean_roc_auc_over_shares_vs_random"]
    assert paired["mean"] == pytest.approx(3.1) and paired["verdict"] == "better"
    assert metrics["random"]["mean_roc_auc_over_shares"]["mean"] == pytest.approx(80.0 + 5 / 3 - 6.0)
    assert metrics["unpruned"]["roc_auc"]["mean"] == pytest.approx(80.0 + 5 / 3)


def test_budget_metrics_compare_with_the_unpruned_model_fine_tuned_alike() -> None:
    scores = ("finetuned_recal_bacc", "finetuned_roc_auc", "recal_bacc", "roc_auc")
    changes = ((0.5, "l1_norm", -0.5), (0.5, "random", -3.0), (0.25, "l1_norm", -2.0), (0.25, "random", -4.0))
    rows = []
    for seed, base in ((0, 70.0), (1, 80.0)):
        whole = {"budget": 1.0, "strategy": "unpruned", "criterion": "none", "flops_kept": 1.0, "params_kept": 1.0}
        rows.append({"seed": seed, **whole} | dict.fromkeys(scores, base))
        for share, criterion, change in changes:
            cell = {"budget": share, "strategy": "uniform", "criterion": criterion}
            costs = {"flops_kept": share - 0.01, "params_kept": share}
            rows.append({"seed": seed, **cell, **costs} | dict.fromkeys(scores, base + change))
    metrics = budget_metrics(pd.DataFrame(rows), MARGINS)
    entry = metrics["uniform"]["l1_norm"]["flops_50"]
    assert entry["finetuned_recal_bacc_vs_unpruned"]["mean"] == pytest.approx(-0.5)
    assert entry["finetuned_roc_auc_vs_unpruned"]["mean"] == pytest.approx(-0.5)  # the rule reads both
    assert entry["finetuned_recal_bacc_vs_random"]["mean"] == pytest.approx(2.5)
    assert "finetuned_recal_bacc_vs_random" not in metrics["uniform"]["random"]["flops_50"]
    # The smallest budget that keeps both scores at the margins: 0.5 (0.25 loses 2 points of ROC AUC, margin 1).
    chosen = choose_budget(metrics, [0.5, 0.25])
    assert (chosen.budget, chosen.strategy, chosen.criterion, chosen.within) == (0.5, "uniform", "l1_norm", True)
    assert chosen.loss == pytest.approx(0.5)
    # None within: the largest budget's best, marked as not within.
    late = choose_budget(metrics, [0.25])
    assert (late.budget, late.criterion, late.within) == (0.25, "l1_norm", False)
    # Fixed choices are honoured; random only when asked for.
    assert choose_budget(metrics, [0.5, 0.25], budget=0.25, criterion="random").loss == pytest.approx(4.0)
    assert choose_budget(metrics, [0.5, 0.25], strategy="global") is None


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        ({"budget": {"criteria": ["reconstruction", "random"]}},
         "budget.criteria has 'reconstruction', which sensitivity.criteria does not rank"),
        ({"sensitivity": {"criteria": ["l1_norm"]}}, "sensitivity.criteria has no random"),
        ({"sensitivity": {"fractions": [0.5, 1.0]}}, "sensitivity.fractions"),
        ({"budget": {"flops": [0.5, 0.5]}}, "budget.flops lists 0.5 more than once"),
        ({"budget": {"strategies": ["greedy"]}}, "budget.strategies"),
        ({"model": {"arch": "simple_cnn"}, "prune": {"criteria": ["l1_norm", "random"]},
          "sensitivity": {"criteria": ["bn_gamma", "random"]}},
         "sensitivity.criteria has bn_gamma, but model.arch=simple_cnn has no BatchNorm"),
        ({"budget": {"round_to": 0}}, "budget.round_to=0 is invalid; allowed: an integer >= 1"),
        ({"budget": {"round_to": -8}}, "budget.round_to=-8 is invalid; allowed: an integer >= 1"),
        ({"budget": {"round_to": 1.5}}, "budget.round_to=1.5 is invalid; allowed: an integer >= 1"),
        ({"budget": {"round_to": True}}, "budget.round_to=True is invalid; allowed: an integer >= 1"),
        ({"budget": {"round_to": "8"}}, "budget.round_to='8' is invalid; allowed: an integer >= 1"),
        ({"budget": {"round_to": 33}},
         "budget.round_to=33 is larger than channel group 'conv1' of model.arch=pair_cnn (32 channels); "
         "allowed: an integer from 1 to 32 (1: no rounding)"),
        ({"model": {"arch": "simple_cnn"}, "prune": {"criteria": ["l1_norm", "random"]},
          "budget": {"round_to": 32}},
         "budget.round_to=32 is larger than channel group 'conv1' of model.arch=simple_cnn (16 channels)"),
    ],
)  # fmt: skip
def test_bad_network_params_are_one_line_errors_naming_the_key(edit: dict, expected: str) -> None:
    raw = copy.deepcopy(raw_params())
    for section, values in edit.items():
        raw[section].update(values)
    with pytest.raises(UserError) as err:
        validate(raw)
    message = str(err.value)
    assert expected in message and "\n" not in message, message


def test_params_sort_budgets_and_shares() -> None:
    raw = copy.deepcopy(raw_params())
    raw["budget"]["flops"] = [0.25, 0.75, 0.5]
    raw["sensitivity"]["fractions"] = [0.5, 0.25]
    params = validate(raw)
    assert params.budget.flops == (0.75, 0.5, 0.25) and params.sensitivity.fractions == (0.25, 0.5)


def test_strategy_names_for_params_are_the_registrys() -> None:
    from prunelab.network import STRATEGY_NAMES

    assert tuple(STRATEGIES) == STRATEGY_NAMES


def paired(mean: float, low: float, high: float, margin: float) -> dict:
    return {"mean": mean, "ci_low": low, "ci_high": high, "margin": margin}


def budget_entry(share: float, roc: dict, recal: dict) -> dict:
    return {
        "flops_kept": {"mean": share - 0.01}, "params_kept": {"mean": share + 0.1}, "recal_bacc": {"mean": 70.0},
        "finetuned_recal_bacc": {"mean": 75.0 + recal["mean"]}, "finetuned_roc_auc_vs_unpruned": roc,
        "finetuned_recal_bacc_vs_unpruned": recal,
    }  # fmt: skip


def test_the_export_rule_is_non_inferiority_on_both_scores_not_a_mean_within_a_point() -> None:
    from prunelab.network.choice import candidates

    metrics = {
        "unpruned": {},
        "uniform": {"l1_norm": {
            # 0.25: mean loss 0.3 (within 1 point), but the interval reaches 4 points below: not kept
            "flops_25": budget_entry(0.25, paired(-0.2, -0.6, 0.2, 1.0), paired(-0.3, -4.0, 3.4, 2.0)),
            # 0.5: a mean loss of 1.5 (past 1 point), but the interval stays above -2: kept
            "flops_50": budget_entry(0.5, paired(-0.1, -0.5, 0.3, 1.0), paired(-1.5, -1.9, -1.1, 2.0)),
            "flops_75": budget_entry(0.75, paired(0.0, -0.2, 0.2, 1.0), paired(0.1, -0.5, 0.7, 2.0)),
        }},
        "global": {"l1_norm": {
            "flops_25": budget_entry(0.25, paired(-1.5, -2.0, -1.0, 1.0), paired(0.0, -0.5, 0.5, 2.0)),  # ROC AUC
            "flops_50": budget_entry(0.5, paired(0.0, -0.3, 0.3, 1.0), paired(-0.5, -1.0, 0.0, 2.0)),
        }},
    }  # fmt: skip
    chosen = choose_budget(metrics, [0.75, 0.5, 0.25])
    assert (chosen.budget, chosen.strategy, chosen.within) == (0.5, "global", True)  # best mean among those kept
    order = [(c.budget, c.strategy) for c in candidates(metrics, [0.75, 0.5, 0.25])]
    assert order == [(0.5, "global"), (0.5, "uniform"), (0.75, "uniform")]  # what export tries, in turn
    assert [c.budget for c in candidates(metrics, [0.75, 0.5, 0.25], strategy="uniform")] == [0.5]  # fixed: one
    # One seed: no interval; the difference itself is read.
    # (metrics.json's one-seed comparison, as prunelab.study.verdicts.comparison writes it: no ci_low/ci_high)
    lone = budget_entry(0.5, {"mean": -0.5, "margin": 1.0}, {"mean": -2.5, "margin": 2.0})
    one = {"unpruned": {}, "uniform": {"l1_norm": {"flops_50": lone}}}
    assert not choose_budget(one, [0.5]).within


def test_the_report_names_the_budget_the_export_takes() -> None:
    from prunelab.study.report import budget_section

    metrics = {"unpruned": {s: {"mean": 75.0} for s in ("finetuned_recal_bacc", "finetuned_roc_auc")}}
    entry = budget_entry(0.5, paired(-0.2, -0.6, 0.2, 1.0), paired(-0.5, -1.5, 0.5, 2.0))
    metrics["uniform"] = {"l1_norm": {"flops_50": entry}}
    text = "\n".join(budget_section(metrics, 3, choose_budget(metrics, [0.5])))
    assert "| 0.5 | uniform | l1_norm | — | 0.490 | 0.600 | 70.0 | 74.5 | -0.5 [-1.5, 0.5] | — |" in text
    assert "It picks **0.5 of the FLOPs**, by `uniform` with `l1_norm`" in text
    assert "ROC AUC 0.2 [-0.2, 0.6], recalibrated balanced accuracy 0.5 [-0.5, 1.5] points" in text
    entry["finetuned_recal_bacc_vs_unpruned"] = paired(-0.5, -2.5, 1.5, 2.0)
    text = "\n".join(budget_section(metrics, 3, choose_budget(metrics, [0.5])))
    assert "No budget meets it: the largest budget's best configuration loses 0.5 points" in text


def test_damaged_sensitivity_and_budget_tables_are_refused_in_one_line(tmp_path) -> None:
    from prunelab.checks.tables import check_budget, check_sensitivity

    header = "layer,criterion,fraction,k,acc,bacc,roc_auc,recal_acc,recal_bacc\n"
    unpruned = "90.000000,70.000000,88.000000,89.000000,72.000000\n"
    good = (
        header
        + f"conv1,l1_norm,0.000000,0,{unpruned}"
        + "conv1,l1_norm,0.500000,16,80.000000,60.000000,80.000000,81.000000,65.000000\n"
        + f"conv1,random,0.000000,0,{unpruned}"
        + "conv1,random,0.500000,16,70.000000,55.000000,75.000000,71.000000,60.000000\n"
    )
    check_sensitivity("s.csv", good)
    for text, problem in (
        (good.replace("conv1,random,0.000000,0,90.000000", "conv1,random,0.000000,0,91.000000"),
         "the criteria score conv1's unpruned model differently (acc)"),
        (good.replace("0.500000,16,80", "0.500000,0,80"), "K is 0 exactly where the share removed is 0"),
        (good.replace("conv1,l1_norm,0.500000", "conv1,l1_norm,0.000000"), "appears twice"),
    ):  # fmt: skip
        with pytest.raises(UserError) as err:
            check_sensitivity("s.csv", text)
        assert problem in str(err.value) and "\n" not in str(err.value) and "rerun sensitivity" in str(err.value)

    scores = ",".join(["80.000000"] * 10)
    header = (
        "budget,strategy,criterion,channels,flops_kept,params_kept,acc,bacc,roc_auc,recal_acc,recal_bacc,"
        "finetuned_acc,finetuned_bacc,finetuned_roc_auc,finetuned_recal_acc,finetuned_recal_bacc\n"
    )
    good = (
        header
        + f"1.000000,unpruned,none,32/64/128,1.000000,1.000000,{scores}\n"
        + f"0.500000,uniform,l1_norm,22/44/88,0.492807,0.637230,{scores}\n"
    )
    check_budget("b.csv", good)
    for text, problem in (
        (good.replace("0.492807", "0.512345"), "line 3: flops_kept is over its budget"),
        (good.replace("1.000000,unpruned,none,32/64/128,1.000000", "1.000000,unpruned,none,32/64/128,0.900000"),
         "the unpruned model keeps less than all its FLOPs"),
        (good.replace("22/44/88", "22-44-88"), "channels='22-44-88' is not integers joined by /"),
    ):  # fmt: skip
        with pytest.raises(UserError) as err:
            check_budget("b.csv", text)
        assert problem in str(err.value) and "\n" not in str(err.value) and "rerun budget" in str(err.value)


@pytest.mark.integration
def test_a_budget_the_sensitivity_strategy_cannot_reach_is_one_line(tiny_repo, tmp_path) -> None:
    """Valid params on their own, but the tiny study measures shares up to a half, past which the
    sensitivity strategy does not go: the stage says so in one line, before any fine-tuning, and writes nothing."""
    from tests.helpers import copy_repo, set_params, stage

    repo = copy_repo(tiny_repo, tmp_path / "repo")
    before = (repo / "metrics/seeds/0/budget.csv").read_bytes()
    set_params(repo / "params.yaml", {"budget.flops": [0.1]})
    result = stage(repo, "budget", seed=0)
    message = result.stderr.strip()
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    assert len(message.splitlines()) == 1, message
    assert message.startswith("error: params.yaml: budget.flops has 0.1, which the sensitivity strategy cannot reach")
    assert "larger shares in sensitivity.fractions" in message
    assert (repo / "metrics/seeds/0/budget.csv").read_bytes() == before
