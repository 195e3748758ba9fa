"""`budget.target: latency` end to end: `dvc exp run -S budget.target=latency` on the tiny study (the
experiment queue's `latency` experiment) reruns the budget stages against the latency table the first
repro measured, every budget model within its share of the predicted latency; the export, report and
latency report say so. And under the default FLOPs target, a re-measured latency table reruns the export
only, never a budget stage."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from prunelab.checks.tables import check_latency_table
from prunelab.data.spec import InputSpec
from prunelab.models.groups import example_input, find_groups
from prunelab.models.nets import build_model
from prunelab.network.budget import flops_model
from prunelab.network.latency import latency_model
from tests.helpers import Grid, copy_repo, dvc

pytestmark = pytest.mark.integration

TABLE = "metrics/cost/latency/table.csv"


def test_a_latency_budget_study_runs_through_dvc_exp_run(experiment_grid: Grid, tmp_path: Path) -> None:
    """The queue's `latency` experiment (`-S budget.target=latency`), applied. Against the table the first
    repro measured, only what allocates and what reads it reruns (tests/test_dvc_behaviour.py checks)."""
    repo = experiment_grid.applied("latency", tmp_path / "repo")

    spec = InputSpec(2, 28, 2)
    model = build_model("pair_cnn", spec)
    groups = find_groups(model, example_input(spec))
    flops = flops_model(model, groups, example_input(spec))
    text = (repo / TABLE).read_text()
    check_latency_table(TABLE, text, {g.name: g.channels for g in groups}, 8)
    latency = latency_model(pd.read_csv(repo / TABLE), flops)
    names = [g.name for g in groups]
    for seed in (0, 1):
        budget = pd.read_csv(repo / f"metrics/seeds/{seed}/budget.csv")
        pruned = budget[budget["strategy"] != "unpruned"]
        assert len(pruned) == 6
        for row in pruned.itertuples():
            counts = dict(zip(names, (int(n) for n in row.channels.split("/")), strict=True))
            assert latency.kept(counts) <= row.budget + 1e-9, (seed, row.strategy, row.criterion, row.channels)
            assert row.flops_kept == pytest.approx(flops.kept(counts), abs=1e-6)

    efficiency = json.loads((repo / "metrics/efficiency.json").read_text())
    assert efficiency["target_latency"] == 1 and "target_flops" not in efficiency
    # Every distinct model of seed 0's budget study, measured once.
    distinct = set(pd.read_csv(repo / "metrics/seeds/0/budget.csv")["channels"]) - {"32/64/128"}
    assert efficiency["latency_prediction"]["configurations"] == len(distinct)
    assert "## The whole network to a latency budget" in (repo / "metrics/report.md").read_text()
    assert "`budget.target: latency`" in (repo / "metrics/latency.md").read_text()
    assert "up to date" in dvc(repo, "status").stdout


def test_a_remeasured_table_reruns_the_export_but_no_flops_budget(tiny_repo: Path, tmp_path: Path) -> None:
    """Under `budget.target: flops` the budget stage depends on metrics/cost/flops/, a note, not on the
    machine-dependent table: a table measured anew (here, one value changed) leaves every budget cached."""
    repo = copy_repo(tiny_repo, tmp_path / "repo")
    table = repo / TABLE
    lines = table.read_text().splitlines()
    fields = lines[1].split(",")
    fields[3] = f"{float(fields[3]) + 0.000001:.6f}"  # latency_ms, still inside its quartiles
    table.write_text("\n".join([lines[0], ",".join(fields), *lines[2:]]) + "\n")
    status = json.loads(dvc(repo, "status", "--json").stdout)
    assert sorted(status) == ["export", "latency"], status
