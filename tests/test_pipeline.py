"""End to end: the whole DVC pipeline on the tiny config, in a temporary git repo."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.helpers import declared_outputs, dvc

pytestmark = pytest.mark.integration


def plotted_columns(repo: Path) -> dict[str, set[str]]:
    """{csv file: every column a top-level plot in dvc.yaml names}."""
    spec = yaml.safe_load((repo / "dvc.yaml").read_text())
    columns: dict[str, set[str]] = {}
    for entry in spec["plots"]:
        if isinstance(entry, str):
            continue  # an image
        ((name, props),) = entry.items()
        y = props.get("y", [])
        sources = y if isinstance(y, dict) else {name: y}
        for path, cols in sources.items():
            columns.setdefault(path, set()).update([cols] if isinstance(cols, str) else cols)
            columns[path].add(props["x"])
    return columns


def test_every_declared_output_is_written(tiny_repo: Path) -> None:
    for path in declared_outputs(tiny_repo):
        target = tiny_repo / path
        assert target.exists(), path
        if target.is_file():
            assert target.stat().st_size > 0, path


def test_stages_write_nothing_undeclared(tiny_repo: Path) -> None:
    declared = {Path(p) for p in declared_outputs(tiny_repo)}
    written = {p.relative_to(tiny_repo) for p in (tiny_repo / "metrics").rglob("*") if p.is_file()}
    written |= {p.relative_to(tiny_repo) for p in (tiny_repo / "data").glob("*")}
    undeclared = {p for p in written if not any(p == d or d in p.parents for d in declared)}
    assert not undeclared


def test_plotted_columns_exist_in_csv_headers(tiny_repo: Path) -> None:
    for path, columns in plotted_columns(tiny_repo).items():
        header = set(pd.read_csv(tiny_repo / path, nrows=0).columns)
        missing = columns - header
        assert not missing, f"{path} lacks plotted columns {missing}"


def test_sweep_table_has_every_k_and_criterion(tiny_repo: Path) -> None:
    params = yaml.safe_load((tiny_repo / "params.yaml").read_text())
    table = pd.read_csv(tiny_repo / "metrics/sweep.csv")
    assert table["k"].tolist() == list(range(128))
    for name in params["prune"]["criteria"]:
        assert {f"acc_{name}", f"bacc_{name}"} <= set(table.columns)
    assert {"acc_random_std", "bacc_random_std", "acc_mean_activation_zero_weights"} <= set(table.columns)
    # K = 0 is the unpruned model for every criterion.
    first = table.iloc[0]
    accs = [first[c] for c in table.columns if c.startswith("acc_") and not c.endswith("_std")]
    assert max(accs) == min(accs)


def test_metrics_are_flat_scalars_dvc_can_read(tiny_repo: Path) -> None:
    metrics = json.loads((tiny_repo / "metrics/metrics.json").read_text())
    assert metrics["channels"] == 128
    assert metrics["majority_floor"] == pytest.approx(90.0, abs=0.5)

    def check(node: dict, prefix: str = "") -> None:
        for key, value in node.items():
            assert "." not in key, f"{prefix}{key}: DVC flattens dotted keys"
            if isinstance(value, dict):
                check(value, f"{prefix}{key}.")
            else:
                assert isinstance(value, int | float), f"{prefix}{key} is not a scalar"

    check(metrics)
    shown = dvc(tiny_repo, "metrics", "show", "--json").stdout
    assert "criteria.mean_activation.auc" in shown or '"auc"' in shown


def test_data_summary_counts_and_fractions(tiny_repo: Path) -> None:
    summary = json.loads((tiny_repo / "metrics/data.json").read_text())
    assert summary["test"]["count"] == 30 and summary["train"]["count"] == 270
    assert summary["test"]["same_fraction"] == pytest.approx(0.1)
    assert summary["train"]["same_fraction"] == pytest.approx(0.1)


def test_second_repro_runs_nothing(tiny_repo: Path) -> None:
    out = dvc(tiny_repo, "status").stdout
    assert "up to date" in out.lower(), out


def test_plots_show_renders_html(tiny_repo: Path, tmp_path: Path) -> None:
    result = dvc(tiny_repo, "plots", "show", "-o", str(tmp_path / "plots"))
    html = (tmp_path / "plots" / "index.html").read_text()
    assert "acc_mean_activation" in html and "feature_maps.png" in html, result.stderr


def test_experiment_with_other_criteria_runs_and_plots(tiny_repo: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(tiny_repo, repo, symlinks=True)
    result = dvc(repo, "exp", "run", "-S", "prune.criteria=[l1_norm,random]")
    assert "Running stage 'train'" not in result.stdout  # only the sweep and the plots rerun
    table = pd.read_csv(repo / "metrics/sweep.csv")
    assert {"acc_l1_norm", "bacc_l1_norm", "acc_random", "acc_random_std"} <= set(table.columns)
    assert "acc_mean_activation" not in table.columns
    long = pd.read_csv(repo / "metrics/sweep_long.csv")
    assert set(long["criterion"]) == {"l1_norm", "random", "l1_norm_zero_weights"}
    dvc(repo, "plots", "show", "-o", str(tmp_path / "plots"))
    html = (tmp_path / "plots" / "index.html").read_text()
    assert '"criterion": "l1_norm"' in html
