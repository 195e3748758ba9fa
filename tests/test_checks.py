"""The checks of every file a stage reads (prunelab.checks), on small hand-made files: what
passes, what is refused, and that each refusal is one line naming the file and the stage to
rerun. The whole pipeline's files are checked by the fuzzer (tests/test_fuzz.py)."""

from __future__ import annotations

import inspect
import json
import re
import typing
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

import prunelab.checks.arrays
import prunelab.checks.efficiency
import prunelab.checks.info
import prunelab.checks.study_metrics
import prunelab.checks.summary
import prunelab.checks.tables
from prunelab.checks.efficiency import check_efficiency
from prunelab.checks.implied import Implied, implied
from prunelab.checks.info import check_info
from prunelab.checks.study_metrics import check_study_metrics
from prunelab.checks.summary import check_summary
from prunelab.checks.tables import check_band, check_ranking, check_sweep, check_train_curve
from prunelab.data.prepared import DatasetInfo, load_split_arrays, save_prepared
from prunelab.data.spec import InputSpec
from prunelab.errors import UserError
from prunelab.params import validate
from prunelab.prepare.tasks import Split
from prunelab.pruning.activations import ActivationStats, load_stats, save_stats
from prunelab.runtime import load_torch
from prunelab.scoring.curves import EXTRA_SCORES, Curve, long_table, max_k_within, milestone_ks, summary_metrics
from prunelab.study.aggregate import study_metrics
from prunelab.study.intervals import interval_entry, t_interval
from prunelab.study.network import BUDGET_SCORES, budget_metrics, sensitivity_metrics
from tests.helpers import ROOT, TINY_OVERRIDES

P = 8  # a small "architecture": the implied facts are built by hand around it
KS = [0, 1, 2, 4, 6, 7]
CRITERIA = ["mean_activation", "random"]


def facts(**changes: object) -> Implied:
    base = {
        "seeds": (0, 1), "channels": P, "n_classes": 2, "ks": tuple(KS), "ranked": tuple(CRITERIA),
        "swept": tuple(CRITERIA), "finetuned": (), "epochs": 2, "ranking_split_is_test": True,
        "max_calibration": 2000, "margins": (), "export_criterion": "auto", "export_k": "auto",
    }  # fmt: skip
    return Implied(**{**base, **changes})


def curves() -> dict[str, Curve]:
    """Two criteria over KS on a 30-sample test split: accuracies are whole samples."""
    rng = np.random.default_rng(0)
    out = {}
    for name in CRITERIA:
        correct = np.concatenate([[27], rng.integers(10, 28, len(KS) - 1)])
        acc = 100.0 * correct / 30
        extra = {s: np.concatenate([[80.0], rng.uniform(40, 90, len(KS) - 1)]) for s in EXTRA_SCORES}
        out[name] = Curve(acc, acc - 10, acc * 0 + 1, acc * 0 + 1, extra=extra)
    return out


def sweep_text() -> str:
    table = long_table(KS, curves())
    kept = dict(zip(KS, np.linspace(1.0, 0.2, len(KS)), strict=True))
    table["params_kept"] = table["k"].map(kept)
    table["flops_kept"] = table["k"].map(kept)
    return table.to_csv(index=False, float_format="%.6f")


def summary() -> dict:
    return {
        **summary_metrics(KS, curves(), P, 90.0, 2, 30),
        "ranking_split_is_test": 1,
        "n_calibration": 270,
    }


def one_line(err: pytest.ExceptionInfo, *parts: str) -> str:
    message = str(err.value)
    assert "\n" not in message and len(message.splitlines()) == 1, message
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"
    return message


# --------------------------------------------------------------------------- the sweep table
def test_a_valid_sweep_passes_with_and_without_params() -> None:
    check_sweep(Path("sweep.csv"), sweep_text())
    check_sweep(Path("sweep.csv"), sweep_text(), facts())


def test_the_issue_a_sweep_cut_to_300_bytes_is_refused() -> None:
    """Header, two rows and a half: aggregated silently before (means over fewer seeds)."""
    with pytest.raises(UserError) as err:
        check_sweep(Path("metrics/seeds/2/sweep.csv"), sweep_text()[:300], facts())
    one_line(err, "metrics/seeds/2/sweep.csv: the last line has no line end", "rerun sweep_prune")


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda t: t.replace("\n1,mean_activation", "\n1,mean_activatiom", 1), "is not one params.yaml implies"),
        (lambda t: "\n".join(t.split("\n")[:3] + t.split("\n")[4:]), "1 of the 12 rows params.yaml implies are"),
        (lambda t: t.replace(",params_kept", ",kept", 1), "not a sweep table (header: missing params_kept"),
        (lambda t: re.sub(r"\n(0,random,)[0-9.]+", r"\n\1", t, count=1), "acc=(empty) is not a number with 6 decimals"),
        (lambda t: re.sub(r"\n(2,random,)[0-9.]+", r"\n\1nan", t, count=1), "acc='nan' is not a number"),
        (lambda t: re.sub(r"\n(2,random,)[0-9.]+", r"\n\g<1>101.000000", t, count=1), "acc=101.000000 is outside"),
        (lambda t: re.sub(r"\n(2,random,)[0-9.]+", r"\n\g<1>50.25", t, count=1), "acc='50.25' is not a number with 6"),
        (lambda t: t.replace("0.200000\n", "0.300000\n", 1), "flops_kept of random at K=7 differs"),
        (lambda t: t.replace(",", ";", 1), "not a sweep table"),
    ],
    ids=["criterion", "row", "column", "empty", "nan", "range", "cut-number", "kept", "separator"],
)
def test_a_damaged_sweep_is_refused_naming_what(damage: typing.Callable[[str], str], expected: str) -> None:
    with pytest.raises(UserError) as err:
        check_sweep(Path("s.csv"), damage(sweep_text()), facts())
    one_line(err, "s.csv: ", expected, "; rerun sweep_prune")


def test_a_sweep_under_other_params_is_refused() -> None:
    with pytest.raises(UserError) as err:
        swept = ("mean_activation", "random", "mean_activation_zero_weights")
        check_sweep(Path("s.csv"), sweep_text(), facts(swept=swept))
    one_line(err, "6 of the 18 rows params.yaml implies are missing (first: k=0, criterion='mean_activation_zero")


def test_criteria_that_disagree_on_the_unpruned_model_are_refused() -> None:
    lines = sweep_text().split("\n")
    first_random = next(i for i, line in enumerate(lines) if line.startswith("0,random,"))
    fields = lines[first_random].split(",")
    fields[4] = "79.000000"  # roc_auc at K=0
    lines[first_random] = ",".join(fields)
    with pytest.raises(UserError) as err:
        check_sweep(Path("s.csv"), "\n".join(lines))
    one_line(err, "roc_auc at K=0 differs between criteria")


# --------------------------------------------------------------------------- a summary against its sweep
def test_a_summary_of_its_sweep_passes_and_one_of_another_is_refused() -> None:
    sweep = pd.read_csv(__import__("io").StringIO(sweep_text()))
    check_summary(Path("summary.json"), summary(), sweep, facts())
    for key, value, expected in [
        ("baseline_accuracy", 93.33333333333333, "baseline acc 93.33333333333333 is not its sweep's K=0 value"),
        ("n_test", 31, "baseline_accuracy=90.0 is no whole number of the n_test=31"),
        ("channels", 16, "channels=16, but model.arch has P=8"),
    ]:
        bad = {**summary(), key: value}
        with pytest.raises(UserError) as err:
            check_summary(Path("summary.json"), bad, sweep, facts())
        one_line(err, "summary.json: ", expected, "rerun sweep_prune")
    bad = summary()
    bad["criteria"]["random"]["roc_auc_over_k"] += 0.01
    with pytest.raises(UserError) as err:
        check_summary(Path("summary.json"), bad, sweep, facts())
    one_line(err, "criteria.random.roc_auc_over_k=", "is not its sweep's")
    bad = summary()
    del bad["criteria"]["mean_activation"]["acc_at_half"]
    with pytest.raises(UserError) as err:
        check_summary(Path("summary.json"), bad, sweep, facts())
    one_line(err, "criteria.mean_activation.acc_at_half is missing; allowed: a value for each of")
    assert max_k_within(np.array(KS), sweep["acc"].to_numpy()[: len(KS)], 90.0) >= 0
    assert set(milestone_ks(P).values()) <= set(KS)


# --------------------------------------------------------------------------- other tables
def test_a_ranking_must_order_every_channel_once() -> None:
    rows = [f"{c},{r},{(r * 3) % P}" for c in CRITERIA for r in range(P)]
    text = "criterion,rank,channel\n" + "\n".join(rows) + "\n"
    check_ranking(Path("ranking.csv"), text, P, facts())
    with pytest.raises(UserError) as err:
        check_ranking(Path("ranking.csv"), text.replace("random,1,3\n", "random,1,0\n"), P, facts())
    one_line(err, "the order of random is not a permutation of the 8 channels", "rerun sweep_prune")


def test_a_training_curve_has_every_epoch_params_imply() -> None:
    text = "epoch,train_loss,test_acc,test_bacc\n1,0.6575,90.0000,50.0000\n2,0.5000,91.0000,55.0000\n"
    check_train_curve(Path("c.csv"), text, facts())
    with pytest.raises(UserError) as err:
        check_train_curve(Path("c.csv"), text, facts(epochs=3))
    one_line(err, "1 of the 3 rows params.yaml implies are missing (first: epoch=3)", "rerun train")


def test_a_band_interval_holds_its_mean() -> None:
    text = (
        "k,criterion,mean,ci_low,ci_high,params_kept,flops_kept\n"
        "0,random,50.0000,40.0000,60.0000,1.0000,1.0000\n1,random,48.0000,49.0000,60.0000,0.9000,0.9000\n"
    )
    with pytest.raises(UserError) as err:
        check_band(Path("b.csv"), text, facts(ks=(0, 1), swept=("random",)))
    one_line(err, "line 3: the interval does not hold the mean", "rerun aggregate")


# --------------------------------------------------------------------------- arrays and JSON
def write_split(folder: Path, labels: np.ndarray, n_classes: int) -> None:
    spec = InputSpec(1, 28, n_classes)
    info = DatasetInfo("mnist_5k", "classification", spec, (0.1307,), (0.3081,))
    n = len(labels)
    split = Split(np.zeros((n, 1, 28, 28), np.uint8), labels.astype(np.int64), np.arange(n).reshape(n, 1))
    save_prepared(folder, info, {"test": split})


def test_the_issue_a_label_out_of_range_is_refused_on_read(tmp_path: Path) -> None:
    """One test label of a 10-class split set to 57: a reshape traceback in sweep_prune before."""
    labels = np.arange(20) % 10
    write_split(tmp_path, labels, 10)
    images, read = load_split_arrays("test", tmp_path)
    assert images.shape == (20, 1, 28, 28) and read.tolist() == labels.tolist()
    labels[7] = 57
    write_split(tmp_path, labels, 10)
    with pytest.raises(UserError) as err:
        load_split_arrays("test", tmp_path)
    one_line(err, "test.npz: label 57 of sample 7 is outside 0..9 (info.json: 10 classes)", "rerun prepare_data")


def test_info_json_must_be_what_its_source_and_task_give(tmp_path: Path) -> None:
    raw = {"source": "mnist_5k", "task": "pairs", "channels": 2, "size": 28, "n_classes": 2,
           "mean": [0.1307, 0.1307], "std": [0.3081, 0.3081]}  # fmt: skip
    check_info(Path("info.json"), raw)
    with pytest.raises(UserError) as err:
        check_info(Path("info.json"), {**raw, "mean": [0.1307, 0.1387]})
    one_line(err, "info.json: mean=[0.1307, 0.1387] is not mnist_5k's normalisation", "rerun prepare_data")
    with pytest.raises(UserError) as err:
        check_info(Path("info.json"), {**raw, "n_classes": 10})
    one_line(err, "n_classes=10 is not what mnist_5k pairs gives")


def test_statistics_with_nan_or_shares_above_one_are_refused(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    stats = ActivationStats(
        conv_mean=rng.normal(size=P), act_mean=rng.random(P), feature_maps=rng.random((P, 3, 3)),
        apoz=rng.random(P), taylor=rng.random(P), contribution_gram=np.eye(P), n_samples=5,
    )  # fmt: skip
    path = tmp_path / "a.npz"
    save_stats(path, stats, "test")
    load_stats(path, P)
    for field, value, expected in [("taylor", np.nan, "taylor holds NaN or infinite values"),
                                   ("apoz", 1.5, "apoz has values outside [0, 1]")]:  # fmt: skip
        values = getattr(stats, field).copy()
        values[2] = value
        path.unlink()
        save_stats(path, ActivationStats(**{**stats.__dict__, field: values}), "test")
        with pytest.raises(UserError) as err:
            load_stats(path, P)
        one_line(err, "a.npz: ", expected, "rerun collect_activations")


def test_a_flipped_byte_in_a_checkpoint_is_refused(tmp_path: Path) -> None:
    """torch.load does not check the zip's CRC-32s: a flipped weight byte loaded silently."""
    path = tmp_path / "model.pt"
    torch.save({"w": torch.arange(4096, dtype=torch.float32)}, path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(UserError) as err:
        load_torch(path, "model checkpoint")
    one_line(err, "model.pt: damaged model checkpoint (CRC mismatch in", "delete it and rerun")


def efficiency_document() -> dict:
    """efficiency.json of the single-layer export, as export writes it (a small made-up model)."""
    side = {"params": 100, "flops_per_sample": 1000, "program_bytes": 5000, "test_acc": 90.0, "test_bacc": 80.0,
            "test_roc_auc": 85.0, "latency_ms_batch1": 0.5, "latency_ms_batch256": 40.0,
            "latency_ms_batch256_eager": 80.0, "latency_ms_batch256_onnxruntime": 20.0}  # fmt: skip
    small = {**side, "params": 50, "flops_per_sample": 800, "latency_ms_batch256": 32.0,
             "latency_ms_batch256_eager": 50.0}  # fmt: skip
    ratio = {"params": 2.0, "flops": 1.25, "program_bytes": 1.0, "speedup_batch1": 1.0, "speedup_batch256": 1.25,
             "speedup_batch256_eager": 1.6, "speedup_batch256_onnxruntime": 1.0,
             "speedup_batch256_onnxruntime_low": 0.9, "speedup_batch256_onnxruntime_high": 1.1}  # fmt: skip
    eff = {"k": 4, "channels": P, "seed": 0, "criterion_random": 1, "study_recal_bacc_at_k": 70.0,
           "study_recal_bacc_unpruned": 72.0, "score_loss_points": 2.0, "unpruned": side, "exported": small,
           "ratio": {**ratio, "speedup_batch256_vs_flops": 1.0, "speedup_batch256_low": 1.1,
                     "speedup_batch256_high": 1.4, "speedup_rounds": 30}, "threads": 2, "cpu_x86_64": 1,
           "onnx_opset": 18, "onnxruntime_max_abs_logit_diff": 1e-6, "target_flops": 1,
           "latency_prediction": {"configurations": 1, "rounds": 10, "unpruned_ms": 40.0,
                                  "table_mean_abs_error_pct": 0.0, "table_max_abs_error_pct": 0.0,
                                  "flops_mean_abs_error_pct": 0.0, "flops_max_abs_error_pct": 0.0,
                                  "flops_50": {"uniform": {"random": {
                                      "channels_conv1": 8, "measured_share": 0.5, "table_share": 0.5,
                                      "flops_share": 0.5, "table_error_pct": 0.0,
                                      "flops_error_pct": 0.0}}}}}  # fmt: skip
    return eff


def test_efficiency_ratios_are_its_own_measurements() -> None:
    eff = efficiency_document()
    check_efficiency(Path("e.json"), eff, facts())
    other_target = {key: value for key, value in eff.items() if key != "target_flops"} | {"target_latency": 1}
    with pytest.raises(UserError) as err:
        check_efficiency(Path("e.json"), other_target, facts())
    one_line(err, "e.json: target_latency, but budget.target=flops", "rerun export")
    upside_down = {**eff, "ratio": {**eff["ratio"], "speedup_batch256_high": 1.0}}
    with pytest.raises(UserError) as err:
        check_efficiency(Path("e.json"), upside_down, facts())
    one_line(err, "ratio.speedup_batch256_high=1.0", "rerun export")
    with pytest.raises(UserError) as err:
        check_efficiency(Path("e.json"), {**eff, "score_loss_points": 1.0}, facts())
    one_line(err, "score_loss_points=1.0 is not study_recal_bacc_unpruned - study_recal_bacc_at_k", "rerun export")
    eff["ratio"]["params"] = 2.5
    with pytest.raises(UserError) as err:
        check_efficiency(Path("e.json"), eff, facts())
    one_line(err, "e.json: ratio.params=2.5 is not its own measurements' ratio 2.0", "rerun export")
    # The whole network at a FLOPs budget: a budget, strategy and criterion the params allow, every layer's
    # kept channels, and the study's scores whose difference is the loss.
    eff["ratio"]["params"] = 2.0
    layer_keys = ("k", "channels", "study_recal_bacc_at_k", "study_recal_bacc_unpruned")
    network = {key: value for key, value in eff.items() if key not in layer_keys} | {
        "budget": 0.5, "strategy_global": 1, "channels_conv1": 20, "channels_conv2": 40, "channels_conv3": 80,
        "within_points": 1, "study_finetuned_recal_bacc": 75.0, "study_finetuned_recal_bacc_unpruned": 74.0,
        "slower_skipped": 0, "shipped_unpruned": 0,
        "study_loss": {s: {"mean": -1.0, "ci_low": -2.0, "ci_high": 0.0} for s in ("finetuned_roc_auc",
                                                                             "finetuned_recal_bacc")},
        "score_loss_points": -1.0,
    }  # fmt: skip
    allowed = facts(export_budget="auto", layers=("conv1", "conv2", "conv3"), budgets=(0.5,),
                    strategies=("uniform", "global"), budget_criteria=("l1_norm", "random"))  # fmt: skip
    check_efficiency(Path("e.json"), network, allowed)
    # Two seeds: a paired t interval may pass ±100 points; one seed: no interval at all.
    wide = {"mean": -1.0, "ci_low": -130.6, "ci_high": 128.6}
    check_efficiency(Path("e.json"), {**network, "study_loss": {key: wide for key in network["study_loss"]}}, allowed)
    lone = {key: {"mean": -1.0} for key in network["study_loss"]}
    check_efficiency(Path("e.json"), {**network, "study_loss": lone}, allowed)
    for change, problem in (
        ({"budget": 0.25}, "budget=0.25 is not one export.budget and budget.flops allow"),
        ({"strategy_global": 1, "strategy_uniform": 1}, "it does not name one strategy"),
        ({"score_loss_points": 1.0}, "score_loss_points is not study_finetuned_recal_bacc_unpruned"),
        (
            {"study_loss": {"finetuned_roc_auc": {"mean": 1.0, "ci_low": 0.0, "ci_high": 3.0}}},
            "study_loss.finetuned_recal_bacc is missing",
        ),
        ({"shipped_unpruned": 2}, "shipped_unpruned=2"),
        (
            {"study_loss": {s: {"mean": 1.0, "ci_low": 2.0, "ci_high": 3.0} for s in network["study_loss"]}},
            "study_loss.finetuned_roc_auc has the interval [2.0, 3.0], which does not hold its mean 1.0",
        ),
    ):
        with pytest.raises(UserError) as err:
            check_efficiency(Path("e.json"), {**network, **change}, allowed)
        one_line(err, problem, "rerun export")
    sensitivity = {key: value for key, value in network.items() if key != "strategy_global"} | {
        "strategy_sensitivity": 1
    }
    with pytest.raises(UserError) as err:
        check_efficiency(Path("e.json"), sensitivity, allowed)
    one_line(err, "strategy 'sensitivity' is not one export.strategy and budget.strategies allow", "rerun export")
    with pytest.raises(UserError) as err:
        check_efficiency(Path("e.json"), network, facts(export_budget="none"))
    one_line(err, "it ships the whole-network model, but export.budget is none", "rerun export")


# --------------------------------------------------------------------------- the study's metrics.json
MARGINS = {"acc": 2.0, "bacc": 2.0, "roc_auc": 1.0, "recal_acc": 2.0, "recal_bacc": 2.0}
SHARES_NEAR_0 = [0.0, 0.0, 0.0, 0.0, 0.2]  # beats_random_frac per seed (of 5 pruned K): the t interval goes below 0


def study_document() -> dict:
    """metrics.json as aggregate writes it, from five seeds' summaries and budgets."""
    summaries = {}
    for seed, share in enumerate(SHARES_NEAR_0):
        summaries[seed] = summary()
        summaries[seed]["criteria"]["mean_activation"]["beats_random_frac"] = share
    rows = []
    for seed in range(len(SHARES_NEAR_0)):
        whole = {"budget": 1.0, "strategy": "unpruned", "criterion": "none", "flops_kept": 1.0, "params_kept": 1.0}
        rows.append({"seed": seed, **whole} | dict.fromkeys(BUDGET_SCORES, 80.0 + seed))
        for criterion in ("l1_norm", "random"):
            costs = {"flops_kept": 0.9, "params_kept": 0.96 if seed == 0 else 1.0}  # near 1: its t interval passes 1
            cell = {"budget": 0.9, "strategy": "uniform", "criterion": criterion, **costs}
            rows.append({"seed": seed, **cell} | dict.fromkeys(BUDGET_SCORES, 79.0 + seed))
    layer_rows = [
        {"seed": seed, "layer": "conv1", "criterion": criterion, "fraction": fraction, "k": 0}
        | dict.fromkeys(("roc_auc", "recal_bacc", "bacc"), 80.0 - 10 * fraction + seed - (criterion == "random"))
        for seed in range(len(SHARES_NEAR_0))
        for criterion in ("l1_norm", "random")
        for fraction in (0.0, 0.5)
    ]
    return study_metrics(summaries, MARGINS) | {
        "sensitivity": sensitivity_metrics(pd.DataFrame(layer_rows), MARGINS),
        "budget": budget_metrics(pd.DataFrame(rows), MARGINS),
    }


def test_share_intervals_in_metrics_json_stay_in_0_to_1() -> None:
    assert t_interval(SHARES_NEAR_0)[1] < 0  # what a plain t interval would write
    metrics = study_document()
    check_study_metrics(Path("metrics.json"), metrics)
    share = metrics["criteria"]["mean_activation"]["beats_random_frac"]
    assert share["ci_low"] == 0.0 and share["clipped"] == 1
    kept = metrics["budget"]["uniform"]["l1_norm"]["flops_90"]["params_kept"]
    assert kept["ci_high"] == 1.0 and kept["clipped"] == 1
    # A share's plain t interval (below 0) is refused, as a score's outside [0, 100] is.
    plain = {**metrics, "criteria": copy_criteria(metrics)}
    plain["criteria"]["mean_activation"]["beats_random_frac"] = interval_entry(SHARES_NEAR_0)
    with pytest.raises(UserError) as err:
        check_study_metrics(Path("metrics.json"), plain)
    one_line(
        err,
        "criteria.mean_activation.beats_random_frac.ci_low=",
        "is invalid; allowed: a share, in [0, 1]",
        "rerun aggregate",
    )


@pytest.mark.parametrize(
    ("key", "change"),
    [
        ("beats_random_frac", {"ci_low": 0.01}),  # clipped, but neither end is a bound of [0, 1]
        ("max_k_within_1pt", {"clipped": 1}),  # no range: never clipped
    ],
)
def test_a_clipped_mark_needs_an_end_on_a_bound(key: str, change: dict) -> None:
    metrics = study_document()
    metrics["criteria"] = copy_criteria(metrics)
    metrics["criteria"]["mean_activation"][key] |= change
    with pytest.raises(UserError) as err:
        check_study_metrics(Path("metrics.json"), metrics)
    one_line(err, f"criteria.mean_activation.{key} says clipped, but no end of its interval is a bound")


def copy_criteria(metrics: dict) -> dict:
    return json.loads(json.dumps(metrics["criteria"]))


# --------------------------------------------------------------------------- the module's contract
def test_the_implied_facts_follow_params() -> None:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    for dotted, value in TINY_OVERRIDES.items():
        section, *key = dotted.split(".")
        if key:
            raw[section][key[0]] = value
        else:
            raw[section] = value
    got = implied(validate(raw))
    assert got.channels == 128 and got.ks == tuple(range(128)) and got.n_classes == 2
    assert got.swept == (*got.ranked, "mean_activation_zero_weights")
    assert got.finetuned[0] == ("mean_activation", "half", 64) and len(got.finetuned) == 6
    assert len(got.sweep_rows()) == 128 * 11 and got.train_rows() == [(1,)]
    # The whole network: every layer × sensitivity criterion × share (0 first), and the unpruned row first.
    assert got.layers == ("conv1", "conv2", "conv3") and got.fractions == (0.5,)
    assert got.sensitivity_rows()[:3] == [("conv1", "mean_activation", f) for f in (0.0, 0.5)] + [
        ("conv1", "l1_norm", 0.0)
    ]
    assert len(got.sensitivity_rows()) == 3 * len(got.sensitivity_criteria) * 2
    assert got.budget_rows()[:2] == [(1.0, "unpruned", "none"), (0.5, "uniform", "l1_norm")]
    assert len(got.budget_rows()) == 1 + len(got.strategies) * len(got.budget_criteria)


def test_every_check_only_raises_or_returns_none() -> None:
    """Validation only (no stage's DVC dep): a check can refuse a run but hands nothing back
    for a stage to compute with."""
    checks = [
        (name, fn)
        for module in (
            prunelab.checks.tables,
            prunelab.checks.arrays,
            prunelab.checks.summary,
            prunelab.checks.study_metrics,
            prunelab.checks.efficiency,
            prunelab.checks.info,
        )
        for name, fn in inspect.getmembers(module, inspect.isfunction)
        if name.startswith("check_") and fn.__module__ == module.__name__
    ]
    assert len(checks) >= 12
    for name, fn in checks:
        assert fn.__annotations__["return"] in ("None", None), name  # annotations are strings here


def test_json_numbers_are_checked_as_numbers() -> None:
    bad = json.loads(json.dumps(summary()))
    bad["majority_floor"] = "90"
    with pytest.raises(UserError) as err:
        check_summary(Path("summary.json"), bad)
    one_line(err, "majority_floor='90' is invalid; allowed: a score in percent, in [0, 100]")
    bad["majority_floor"] = float("nan")
    with pytest.raises(UserError) as err:
        check_summary(Path("summary.json"), bad)
    one_line(err, "majority_floor=nan is invalid; allowed: a score in percent")


# --------------------------------------------------------------------------- every key of every document, damaged
DAMAGES: dict[str, object] = {"dropped": None, "text": "x", "null": None, "nan": float("nan"), "negative": -1,
                              "true": True, "list": [], "mapping": {}}  # fmt: skip


def key_paths(node: object, prefix: tuple = ()) -> list[tuple]:
    """Every key path of a JSON document (mappings, and the entries of lists)."""
    if isinstance(node, dict):
        return [p for key, value in node.items() for p in [(*prefix, key), *key_paths(value, (*prefix, key))]]
    if isinstance(node, list):
        return [p for i, value in enumerate(node) for p in [(*prefix, i), *key_paths(value, (*prefix, i))]]
    return []


def damaged(document: object, path: tuple, damage: str) -> object:
    copy = json.loads(json.dumps(document))
    node = copy
    for part in path[:-1]:
        node = node[part]
    if damage == "dropped":
        del node[path[-1]]
    else:
        node[path[-1]] = DAMAGES[damage]
    return copy


def info_document() -> dict:
    return {"source": "mnist_5k", "task": "pairs", "channels": 2, "size": 28, "n_classes": 2,
            "mean": [0.1307, 0.1307], "std": [0.3081, 0.3081]}  # fmt: skip


@pytest.mark.parametrize("document", ["info", "summary", "metrics", "efficiency"])
def test_every_key_of_a_document_damaged_is_refused_in_one_line_or_passes(document: str) -> None:
    """Each key of each document dropped or replaced by a wrong type, NaN, a negative number, true, a list or
    a mapping: the model refuses it in one line naming the file, the key's path and the stage, or it is a
    value the document may hold; never another exception (a validator reading what the model did not type).
    Dropping a key of summary.json or info.json is always refused: every key is one the stage writes."""
    sweep = pd.read_csv(__import__("io").StringIO(sweep_text()))
    raw, check, stage = {
        "info": (info_document(), lambda d: check_info(Path("d.json"), d), "prepare_data"),
        "summary": (summary(), lambda d: check_summary(Path("d.json"), d, sweep, facts()), "sweep_prune"),
        "metrics": (study_document(), lambda d: check_study_metrics(Path("d.json"), d), "aggregate"),
        "efficiency": (efficiency_document(), lambda d: check_efficiency(Path("d.json"), d, facts()), "export"),
    }[document]
    check(raw)
    paths = key_paths(raw)
    refused = {damage: 0 for damage in DAMAGES}
    for path in paths:
        for damage in DAMAGES if document != "metrics" else ("dropped", "text", "nan", "negative"):
            try:
                check(damaged(raw, path, damage))
            except UserError as err:
                message = str(err)
                assert "\n" not in message and message.startswith("d.json: "), message
                assert message.endswith(f"; rerun {stage}"), message
                refused[damage] += 1
    if document in ("info", "summary"):
        assert refused["dropped"] == sum(isinstance(p[-1], str) for p in paths) + sum(
            isinstance(p[-1], int) for p in paths
        ), refused
    assert refused["text"] == len(paths), refused  # no key of any document may hold the text 'x'


def _misspelt(document: dict) -> None:
    document["criteria"]["random"]["acc_over_kk"] = document["criteria"]["random"].pop("acc_over_k")


def _deep(document: dict) -> None:
    document["budget"]["uniform"]["l1_norm"]["flops_90"]["flops_kept"]["mean"] = 2


def _stray(document: dict) -> None:
    document["criteria"]["random"]["nonsense"] = {"k": 1}


def _late(document: dict) -> None:
    document["sensitivity"]["conv1"]["l1_norm"]["mean_bacc_over_shares_vs_random"]["verdict"] = "maybe"


def _upside_down(document: dict) -> None:
    document["ratio"]["speedup_batch256_low"] = 1.5


@pytest.mark.parametrize(
    ("document", "damage", "expected"),
    [
        ("summary", _misspelt, "unknown key criteria.random.acc_over_kk; did you mean criteria.random.acc_over_k? "
         "allowed: criteria.random.acc_over_k, "),
        ("metrics", _deep, "budget.uniform.l1_norm.flops_90.flops_kept.mean=2 is invalid; allowed: a share, in [0, 1]"),
        ("metrics", _stray, "criteria.random.nonsense is an unknown key; allowed: acc_over_k, "),
        ("metrics", _late, "sensitivity.conv1.l1_norm.mean_bacc_over_shares_vs_random.verdict='maybe' is invalid; "
         "allowed: better, worse, equivalent, inconclusive"),
        ("efficiency", _upside_down, "ratio.speedup_batch256_high=1.4 is below speedup_batch256_low=1.5"),
    ],
    ids=["misspelt-in-a-mapping-of-names", "deep-in-names", "unknown-extra-key", "sensitivity-verdict", "nested-rule"],
)  # fmt: skip
def test_a_document_refusal_names_the_dotted_key_and_what_is_allowed(
    document: str, damage: typing.Callable[[dict], None], expected: str
) -> None:
    """The one line params.yaml gets (prunelab.messages), for keys inside mappings of names (criteria,
    strategies, budgets), typed extra keys and a nested mapping's own checks."""
    raw, check, stage = {
        "summary": (summary(), check_summary, "sweep_prune"),
        "metrics": (study_document(), check_study_metrics, "aggregate"),
        "efficiency": (efficiency_document(), check_efficiency, "export"),
    }[document]
    damage(raw)
    with pytest.raises(UserError) as err:
        check(Path("d.json"), raw)
    one_line(err, f"d.json: {expected}", f"; rerun {stage}")


def test_older_summaries_name_two_means_over_k_otherwise() -> None:
    """Summaries written before the score vocabulary: `auc` for acc_over_k, `bacc_auc` for bacc_over_k."""
    older = summary()
    for criterion in older["criteria"].values():
        criterion["auc"], criterion["bacc_auc"] = criterion.pop("acc_over_k"), criterion.pop("bacc_over_k")
    check_summary(Path("s.json"), older)
    criterion["acc_over_k"] = criterion["auc"]  # one mean under both names
    with pytest.raises(UserError) as err:
        check_summary(Path("s.json"), older)
    one_line(err, "criteria.random.auc is an older name of a key the mapping has already")
