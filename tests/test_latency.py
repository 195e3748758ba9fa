"""Budgets in milliseconds (`budget.target: latency`): the latency table, its checks, the latency model
read off it, and the strategies allocating against it.

The oracle for the model is FLOPs where the product of single-group shares is exact: a model that is one
conv between two groups, whose work is proportional to both kept shares. On its FLOPs-proportional table
the latency model predicts the FLOPs share of any combination of counts, and every strategy allocates
exactly as with `budget.target: flops`."""

from __future__ import annotations

import io
import itertools
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from prunelab.checks.efficiency import check_latency_prediction
from prunelab.checks.tables import check_latency_table
from prunelab.deploy.latency import configuration_shares, latency_report, latency_table
from prunelab.errors import UserError
from prunelab.models.groups import example_input, find_groups
from prunelab.models.records import CostModel, LatencyModel, kept_counts
from prunelab.network.budget import STRATEGIES, allocate, flops_model
from prunelab.network.latency import budget_cost, latency_model
from prunelab.params.loader import validate
from tests.helpers import tiny_model
from tests.test_params import raw_params
from tests.test_round_to import FRACTIONS, SPECS, _chain, _kept, _plans

UNPRUNED_MS = 20.0
TABLE = Path("metrics/cost/latency/table.csv")


def proportional_table(flops: CostModel, round_to: int) -> pd.DataFrame:
    """A latency table whose savings are exactly the FLOPs each count saves, scaled to UNPRUNED_MS."""
    rows = []
    for name, p in zip(flops.layers, flops.channels, strict=True):
        for kept in kept_counts(p, round_to):
            saved = UNPRUNED_MS * (1 - flops.kept({name: kept}))
            ms = UNPRUNED_MS - saved
            rows.append({
                "group": name, "channels": p, "kept": kept, "latency_ms": ms, "latency_ms_q25": ms,
                "latency_ms_q75": ms, "saved_ms": saved, "saved_ms_q25": saved, "saved_ms_q75": saved,
            })  # fmt: skip
    return pd.DataFrame(rows)


def csv_text(table: pd.DataFrame) -> str:
    """The table as the latency stage writes it (`write_table(..., "%.6f")`)."""
    buffer = io.StringIO()
    table.to_csv(buffer, index=False, float_format="%.6f")
    return buffer.getvalue()


# One conv between two groups (work proportional to both kept shares) and nothing else.
ONE_CONV = CostModel(("a", "b"), (32, 64), ((32 * 64 * 9 * 2, 0, 1),))


def test_for_one_conv_between_two_groups_the_product_of_shares_is_exact() -> None:
    """The sum of the two single-group savings would count the saving twice (and reach 0 ms at half
    of each group's channels); the product of the shares is the conv's bilinear work, exactly."""
    latency = latency_model(proportional_table(ONE_CONV, 1), ONE_CONV)
    for a, b in itertools.product(range(1, 33), range(1, 65, 3)):
        assert latency.kept({"a": a, "b": b}) == pytest.approx(ONE_CONV.kept({"a": a, "b": b}), abs=1e-12)
    assert latency.predicted_ms({"a": 16, "b": 32}) == pytest.approx(UNPRUNED_MS / 4)


@pytest.mark.parametrize("arch", ["pair_cnn", "resnet20"])
def test_more_channels_are_never_predicted_faster_on_a_monotone_table(arch: str) -> None:
    """pair_cnn's chain and resnet20's residual groups: with savings that grow as counts fall, keeping one
    more block of any group never lowers the prediction, and the whole model is the unpruned time."""
    spec = SPECS[arch]
    model, example = tiny_model(arch, spec), example_input(spec)
    flops = flops_model(model, find_groups(model, example), example)
    latency = latency_model(proportional_table(flops, 8), flops)
    assert latency.kept({}) == 1.0 and latency.total == UNPRUNED_MS
    rng = np.random.default_rng(0)
    for _ in range(30):
        counts = {n: int(rng.choice(kept_counts(p, 8))) for n, p in zip(flops.layers, flops.channels, strict=True)}
        for name, p in zip(flops.layers, flops.channels, strict=True):
            allowed = kept_counts(p, 8)
            i = allowed.index(counts[name])
            if i + 1 < len(allowed):
                assert latency.kept(counts | {name: allowed[i + 1]}) >= latency.kept(counts)


def test_the_model_reads_the_table_at_its_counts_and_linearly_between_them() -> None:
    """A table measured at multiples of 8 only: its rows exactly, straight lines between them, and two
    groups' shares multiplied."""
    model = LatencyModel(
        ("a", "b"), (32, 16), 10.0, (((8, 0.4), (16, 0.8), (24, 0.8), (32, 1.0)), ((8, 0.9), (16, 1.0)))
    )
    assert model.predicted_ms({"a": 16}) == pytest.approx(8.0)
    assert model.predicted_ms({"a": 12}) == pytest.approx(6.0)  # halfway between 6 and 2 ms saved
    assert model.predicted_ms({"a": 8, "b": 8}) == pytest.approx(10.0 * 0.4 * 0.9)
    assert model.kept({}) == 1.0 and model.total == 10.0


@pytest.mark.parametrize("strategy", list(STRATEGIES))
@pytest.mark.parametrize("round_to", [1, 8])
def test_strategies_allocate_against_latency_as_against_flops_where_the_table_is_exact(
    strategy: str, round_to: int
) -> None:
    plans = _plans(ONE_CONV.layers, ONE_CONV.channels, 1)
    latency = budget_cost("latency", ONE_CONV, latency_model(proportional_table(ONE_CONV, round_to), ONE_CONV))
    assert budget_cost("flops", ONE_CONV, None) is ONE_CONV
    for budget in (0.75, 0.5, 0.25, 0.1):
        by_latency = allocate(strategy, plans, latency, budget, round_to)
        assert by_latency == allocate(strategy, plans, ONE_CONV, budget, round_to)


def test_a_latency_budget_is_met_in_predicted_latency_not_in_flops() -> None:
    """A table where the first group's channels cost far more time than their FLOPs say: every strategy
    meets the budget in predicted latency; the one that weighs each channel's cost (sensitivity: loss per
    cost saved) takes more of that group than against FLOPs (uniform and global rank channels, not costs)."""
    channels = (32, 64, 128)
    flops = _chain(channels, 0)  # against FLOPs, sensitivity keeps g0 whole at 0.6
    table = proportional_table(flops, 8)
    first = table["group"] == "g0"
    table.loc[first, "saved_ms"] = UNPRUNED_MS * (1 - table.loc[first, "kept"] / 32)  # its channels: all the time
    latency = latency_model(table, flops)
    # Every layer equally sensitive (1 point per share removed): the choice is by cost alone.
    plans = {name: replace(plan, losses=FRACTIONS) for name, plan in _plans(flops.layers, channels, 0).items()}
    for strategy in STRATEGIES:
        by_latency = _kept(flops, allocate(strategy, plans, latency, 0.6, 8))
        by_flops = _kept(flops, allocate(strategy, plans, flops, 0.6, 8))
        assert latency.kept(by_latency) <= 0.6 + 1e-12
        if strategy == "sensitivity":
            assert by_latency["g0"] < by_flops["g0"]


def test_a_measured_table_passes_its_check_and_the_model_reproduces_its_rows() -> None:
    """The real measurement on pair_cnn (two rounds: the format, not the numbers): one row per group
    and allowed count, quartiles around the median, nothing saved at the whole group; read back, the
    model predicts each single-group row's latency to the table's printed precision."""
    spec = SPECS["pair_cnn"]
    model, example = tiny_model("pair_cnn", spec), example_input(spec)
    groups = find_groups(model, example)
    images = torch.randn(40, spec.channels, spec.size, spec.size)
    table = latency_table(model, groups, example, images, round_to=16, rounds=2)
    channels = {g.name: g.channels for g in groups}
    text = csv_text(table)
    check_latency_table(TABLE, text, channels, 16)
    assert list(table["kept"][table["group"] == "conv3"]) == [16, 32, 48, 64, 80, 96, 112, 128]
    latency = latency_model(pd.read_csv(io.StringIO(text)), flops_model(model, groups, example))
    whole = table[table["kept"] == table["channels"]].set_index("group")["latency_ms"]
    for row in table.itertuples():  # each group's share, against the unpruned model timed beside it
        assert latency.kept({row.group: row.kept}) == pytest.approx(1 - row.saved_ms / whole[row.group], abs=1e-6)
    unpruned_ms, shares = configuration_shares(model, groups, example, images, {"small": {"conv3": 16}}, rounds=2)
    assert unpruned_ms > 0 and 0 < shares["small"] < 5


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda t: t.drop(index=0), "group 'conv1''s counts (16, 24, 32) are not ascending counts of budget.round_to"),
        (lambda t: t.assign(channels=t["channels"].where(t.index != 0, 33)), "line 2: channels is not group 'conv1'"),
        (lambda t: t.assign(latency_ms_q25=t["latency_ms"] + 1), "line 2: latency_ms is not between latency_ms_q25"),
        (
            lambda t: t.assign(**{c: t[c] + 0.5 for c in ("saved_ms", "saved_ms_q25", "saved_ms_q75")}),
            "line 5: the unpruned model (kept = channels) saves",
        ),
        (lambda t: t.assign(latency_ms=-t["latency_ms"]), "latency_ms"),
        (lambda t: pd.concat([t, t.iloc[[0]].assign(group="conv4")]), "its groups (conv1, conv2, conv3, conv4) are"),
        (lambda t: t.iloc[[1, 0, *range(2, len(t))]], "group 'conv1''s counts (16, 8, 24, 32) are not ascending"),
    ],
)
def test_a_damaged_latency_table_is_refused_in_one_line_naming_the_stage(damage, message: str) -> None:
    flops = CostModel(("conv1", "conv2", "conv3"), (32, 64, 128), ((100, None, 0), (100, 0, 1), (100, 1, 2)))
    table = damage(proportional_table(flops, 8))
    with pytest.raises(UserError) as refused:
        check_latency_table(TABLE, csv_text(table), dict(zip(flops.layers, flops.channels, strict=True)), 8)
    text = str(refused.value)
    assert message in text and text.startswith(f"{TABLE}: ") and text.endswith("; rerun latency"), text
    assert "\n" not in text


def test_a_table_for_another_round_to_is_refused() -> None:
    flops = CostModel(("conv1",), (32,), ((100, None, 0),))
    with pytest.raises(UserError, match=r"counts \(8, 16, 24, 32\) are not ascending counts of budget\.round_to=4"):
        check_latency_table(TABLE, csv_text(proportional_table(flops, 8)), {"conv1": 32}, 4)


@pytest.mark.parametrize("value", ["speed", "FLOPs", 1, None])
def test_a_bad_budget_target_is_refused_in_one_line_naming_the_key(value: object) -> None:
    raw = raw_params()
    raw["budget"]["target"] = value
    with pytest.raises(UserError) as refused:
        validate(raw)
    text = str(refused.value)
    assert text.startswith(f"params.yaml: budget.target={value!r} is invalid; allowed: ") and "flops" in text, text
    assert "latency" in text and "\n" not in text


def _entry(channels: str, measured: float, table_error: float) -> dict:
    table, flops = measured * (1 + table_error / 100), measured * 0.7
    counts = {f"channels_conv{i + 1}": int(n) for i, n in enumerate(channels.split("/"))}
    return {
        **counts, "measured_share": measured, "table_share": table, "flops_share": flops,
        "table_error_pct": 100 * (table - measured) / measured, "flops_error_pct": 100 * (flops - measured) / measured,
    }  # fmt: skip


def _prediction() -> dict:
    """Three budget models, two of them the same model (24/48/96, measured once): two distinct models."""
    return {
        "configurations": 2, "rounds": 20, "unpruned_ms": 17.5, "table_mean_abs_error_pct": 7.5,
        "table_max_abs_error_pct": 10.0, "flops_mean_abs_error_pct": 30.0, "flops_max_abs_error_pct": 30.0,
        "flops_50": {
            "uniform": {"l1_norm": _entry("24/48/96", 0.8, 5.0), "random": _entry("16/32/64", 0.5, 10.0)},
            "global": {"l1_norm": _entry("24/48/96", 0.8, 5.0)},
        },
    }  # fmt: skip


def test_the_latency_prediction_in_efficiency_json_is_checked_against_its_own_numbers() -> None:
    reader = "metrics/efficiency.json"
    check_latency_prediction(reader, _prediction())
    wrong = _prediction()
    wrong["flops_50"]["uniform"]["random"]["table_error_pct"] = 4.0
    with pytest.raises(UserError, match="table_error_pct is not table_share over measured_share, less 1"):
        check_latency_prediction(reader, wrong)
    wrong = _prediction() | {"table_max_abs_error_pct": 5.0}
    with pytest.raises(UserError, match="table_max_abs_error_pct is not its models' max absolute error"):
        check_latency_prediction(reader, wrong)
    wrong = _prediction() | {"configurations": 3}  # the same model twice is one
    with pytest.raises(UserError, match="configurations=3, but it holds 2 distinct models"):
        check_latency_prediction(reader, wrong)
    wrong = _prediction()
    wrong["flops_50"]["global"]["l1_norm"] = _entry("24/48/96", 0.7, 5.0)  # one model, two measurements
    with pytest.raises(UserError, match="differs from another model's with its channels"):
        check_latency_prediction(reader, wrong)


def test_the_latency_report_lists_every_model_with_both_errors() -> None:
    text = latency_report(_prediction(), "flops")
    rows = [line for line in text.splitlines() if line.startswith("| 0.5 |")]
    assert len(rows) == 3 and "+5.0 %" in rows[0] and "-30.0 %" in rows[0] and "| global | l1_norm |" in rows[2]
    assert "`budget.target: flops`" in text
    assert "mean absolute error 7.5 %, largest 10.0 % over 2 distinct models" in text
