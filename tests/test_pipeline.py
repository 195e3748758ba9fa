"""End to end: the whole DVC pipeline on the tiny config, in a temporary git repo."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from prunelab.params import load_params
from prunelab.study.verdicts import VERDICTS
from tests.helpers import ROOT, Grid, declared_outputs, dvc, experiments, run

pytestmark = pytest.mark.integration


def plotted_columns(repo: Path) -> dict[str, set[str]]:
    """{csv file: every column a top-level plot in dvc.yaml reads}, its template's fields included."""
    spec = yaml.safe_load((repo / "dvc.yaml").read_text())
    template_fields = {"band": {"criterion", "ci_low", "ci_high"}, "by_seed": {"seed"}}
    columns: dict[str, set[str]] = {}
    for entry in spec["plots"]:
        if isinstance(entry, str):
            continue  # an image
        ((name, props),) = entry.items()
        y = props.get("y", [])
        sources = y if isinstance(y, dict) else {name: y}
        for path, cols in sources.items():
            columns.setdefault(path, set()).update([cols] if isinstance(cols, str) else cols)
            columns[path] |= {props["x"]} | template_fields.get(props.get("template"), set())
    return columns


def test_every_declared_output_is_written(tiny_repo: Path) -> None:
    for path in declared_outputs(tiny_repo):
        target = tiny_repo / path
        assert target.exists(), path
        if target.is_file():
            assert target.stat().st_size > 0, path
    for seed in (0, 1):
        assert (tiny_repo / f"data/seeds/{seed}/model.pt").is_file()


def test_stages_write_nothing_undeclared(tiny_repo: Path) -> None:
    declared = {Path(p) for p in declared_outputs(tiny_repo)}
    written = {p.relative_to(tiny_repo) for p in (tiny_repo / "metrics").rglob("*") if p.is_file()}
    written |= {p.relative_to(tiny_repo) for p in (tiny_repo / "data").rglob("*") if p.is_file()}
    # data/raw is an input (data.path, in git by its README), never a stage's output; metrics/cost/flops is
    # the budget stage's cost dependency under budget.target: flops, a note in git
    tracked = {Path("data/raw/README.md"), Path("metrics/cost/flops/README.md")}
    undeclared = {p for p in written - tracked if not any(p == d or d in p.parents for d in declared)}
    assert not undeclared


def test_plotted_columns_exist_in_csv_headers(tiny_repo: Path) -> None:
    for path, columns in plotted_columns(tiny_repo).items():
        header = set(pd.read_csv(tiny_repo / path, nrows=0).columns)
        missing = columns - header
        assert not missing, f"{path} lacks plotted columns {missing}"


def test_each_seed_sweeps_every_k_and_criterion(tiny_repo: Path) -> None:
    params = load_params(tiny_repo / "params.yaml")
    expected = {*params.prune.criteria, "mean_activation_zero_weights"}
    for seed in params.seeds:
        table = pd.read_csv(tiny_repo / f"metrics/seeds/{seed}/sweep.csv")
        assert set(table["criterion"]) == expected
        for _, rows in table.groupby("criterion"):
            assert rows["k"].tolist() == list(range(128))
        # K = 0 is the unpruned model for every criterion.
        assert table[table["k"] == 0]["acc"].nunique() == 1
    # The replicates are independent: other pairs, other models, other numbers.
    first, second = (pd.read_csv(tiny_repo / f"metrics/seeds/{s}/sweep.csv") for s in params.seeds)
    assert not first["bacc"].equals(second["bacc"])


def test_study_metrics_are_flat_scalars_with_intervals(tiny_repo: Path) -> None:
    metrics = json.loads((tiny_repo / "metrics/metrics.json").read_text())
    assert metrics["channels"] == 128 and metrics["n_seeds"] == 2
    assert metrics["majority_floor"] == pytest.approx(90.0, abs=0.5)
    entry = metrics["criteria"]["mean_activation"]
    assert entry["bacc_over_k"]["ci_low"] <= entry["bacc_over_k"]["mean"] <= entry["bacc_over_k"]["ci_high"]
    assert {"mean", "ci_low", "ci_high", "wins"} <= set(entry["bacc_over_k_vs_random"])
    assert "bacc_over_k_vs_random" not in metrics["criteria"]["random"]

    def check(node: dict, prefix: str = "") -> None:
        for key, value in node.items():
            assert "." not in key, f"{prefix}{key}: DVC flattens dotted keys"
            if isinstance(value, dict):
                check(value, f"{prefix}{key}.")
            elif key == "verdict":
                assert value in VERDICTS, f"{prefix}{key} is {value!r}"
            else:
                assert isinstance(value, int | float), f"{prefix}{key} is not a scalar"

    check(metrics)
    shown = json.loads(dvc(tiny_repo, "metrics", "show", "--json").stdout)[""]["data"]
    assert set(shown) == {"metrics/headline.json"}  # the default: the headline only
    full = json.loads(dvc(tiny_repo, "metrics", "show", "--json", "metrics/metrics.json").stdout)[""]["data"]
    assert "bacc_over_k_vs_random" in json.dumps(full) and "n_seeds" in json.dumps(full)


def test_report_states_a_verdict_for_every_criterion(tiny_repo: Path) -> None:
    report = (tiny_repo / "metrics/report.md").read_text()
    assert report.startswith("# The study: 2 seeds (0, 1)")
    for name in load_params(tiny_repo / "params.yaml").prune.criteria:
        assert f"| {name} |" in report
        if name != "random":
            assert f"- **{name}**: " in report and "random" in report.split(f"- **{name}**: ")[1].splitlines()[0]


def test_data_summary_counts_and_fractions(tiny_repo: Path) -> None:
    summary = json.loads((tiny_repo / "metrics/seeds/0/data.json").read_text())
    assert summary["test"]["count"] == 30 and summary["train"]["count"] == 270
    assert summary["test"]["same_fraction"] == pytest.approx(0.1)
    assert summary["train"]["same_fraction"] == pytest.approx(0.1)


def test_second_repro_runs_nothing(tiny_repo: Path) -> None:
    out = dvc(tiny_repo, "status").stdout
    assert "up to date" in out.lower(), out


def test_plots_show_renders_html_without_warnings(tiny_repo: Path, tmp_path: Path) -> None:
    result = dvc(tiny_repo, "plots", "show", "-o", str(tmp_path / "plots"))
    html = (tmp_path / "plots" / "index.html").read_text()
    assert "ci_low" in html and "feature_maps.png" in html and "vs_random.png" in html
    assert "WARNING" not in result.stdout + result.stderr, result.stderr


def test_experiment_with_other_criteria_runs_and_plots(experiment_grid: Grid, tmp_path: Path) -> None:
    """`-S prune.criteria=[l1_norm,taylor,random]` (with another layer: the queue's `conv2` experiment, applied):
    the sweeps, metrics and plots hold exactly those criteria (which stages reran: tests/test_dvc_behaviour.py)."""
    repo = experiment_grid.applied("conv2", tmp_path / "repo")
    swept = {"l1_norm", "taylor", "random", "l1_norm_zero_weights"}
    long = pd.read_csv(repo / "metrics/seeds/1/sweep.csv")
    assert set(long["criterion"]) == swept
    metrics = json.loads((repo / "metrics/metrics.json").read_text())
    assert set(metrics["criteria"]) == swept
    result = dvc(repo, "plots", "show", "-o", str(tmp_path / "plots"))
    html = (tmp_path / "plots" / "index.html").read_text()
    assert '"criterion": "l1_norm"' in html
    assert "WARNING" not in result.stdout + result.stderr, result.stderr


def test_an_experiment_on_another_layer_reuses_the_models_and_ships_that_layer(
    experiment_grid: Grid, tmp_path: Path
) -> None:
    """prune.layer=conv2 (the queue's `conv2` experiment, applied): statistics, sweep, fine-tuning and
    (export.budget: none, the single-layer model) export follow the layer (P=64); data and models are
    reused (tests/test_dvc_behaviour.py checks which stages reran)."""
    import torch

    from prunelab.deploy.export import load_rebuildable

    repo = experiment_grid.applied("conv2", tmp_path / "repo")
    long = pd.read_csv(repo / "metrics/seeds/0/sweep.csv")
    assert sorted(set(long["k"])) == list(range(64))
    ranking = pd.read_csv(repo / "metrics/seeds/0/ranking.csv")
    assert sorted(ranking[ranking["criterion"] == "taylor"]["channel"]) == list(range(64))
    efficiency = json.loads((repo / "metrics/efficiency.json").read_text())
    assert efficiency["channels"] == 64
    rebuilt = load_rebuildable(repo / "data/export/model.pt")
    assert (
        rebuilt.stem[1][0].out_channels == 64 - efficiency["k"]
        and rebuilt.block.conv.in_channels == 64 - efficiency["k"]
    )
    assert rebuilt.block.conv.out_channels == 128
    assert efficiency["unpruned"]["params"] - efficiency["exported"]["params"] == efficiency["k"] * (
        32 * 9 + 1 + 2 + 128 * 9
    )
    images = torch.zeros(3, 2, 28, 28)
    program = torch.export.load(str(repo / "data/export/model.pt2")).module()
    with torch.no_grad():
        assert torch.allclose(program(images), rebuilt(images), atol=1e-5)


def test_the_exported_whole_network_model_is_the_one_the_budget_study_scored(tiny_repo: Path) -> None:
    """The default export: seed 0's whole network at the budget study's choice, rebuilt and
    fine-tuned by the study's recipe. Its channels and test scores are the study's row for that
    configuration; its parameters and FLOPs are exact arithmetic; the program is its rebuilt twin."""
    import torch

    from prunelab.data.prepared import load_info, load_split
    from prunelab.deploy.export import load_rebuildable
    from prunelab.models.cost import parameter_count
    from prunelab.models.groups import example_input, find_groups, remove_channels
    from prunelab.models.nets import load_model
    from prunelab.network.budget import flops_model

    efficiency = json.loads((tiny_repo / "metrics/efficiency.json").read_text())
    strategy = next(k.removeprefix("strategy_") for k in efficiency if k.startswith("strategy_"))
    criterion = next(k.removeprefix("criterion_") for k in efficiency if k.startswith("criterion_"))
    rebuilt = load_rebuildable(tiny_repo / "data/export/model.pt")
    kept = {layer.name: layer.channels for layer in rebuilt.layers}
    assert kept == {name: efficiency[f"channels_{name}"] for name in ("conv1", "conv2", "conv3")}
    rows = pd.read_csv(tiny_repo / "metrics/seeds/0/budget.csv")
    row = rows[(rows["budget"] == efficiency["budget"]) & (rows["strategy"] == strategy)
               & (rows["criterion"] == criterion)].iloc[0]  # fmt: skip
    assert row["channels"] == "/".join(str(kept[name]) for name in ("conv1", "conv2", "conv3"))
    assert efficiency["exported"]["test_roc_auc"] == pytest.approx(row["finetuned_roc_auc"], abs=1e-5)
    # The shipped decision is the study's re-fitted one, folded into the last bias.
    assert efficiency["exported"]["test_bacc"] == pytest.approx(row["finetuned_recal_bacc"], abs=1e-5)
    folder = tiny_repo / "data/seeds/0/prepared"
    info = load_info(folder)
    images, _ = load_split("test", folder, info)
    program = torch.export.load(str(tiny_repo / "data/export/model.pt2")).module()
    with torch.no_grad():
        assert torch.allclose(program(images), rebuilt(images), atol=1e-5)
    unpruned = load_model(tiny_repo / "data/seeds/0/model.pt", "pair_cnn", info.input)
    example = example_input(info.input)
    groups = find_groups(unpruned, example)
    removed = torch.load(tiny_repo / "data/export/model.pt", weights_only=True)["removed"]
    assert efficiency["unpruned"]["params"] == parameter_count(unpruned)
    assert (
        efficiency["exported"]["params"]
        == parameter_count(remove_channels(unpruned, groups, removed, example))
        == parameter_count(rebuilt)
    )
    flops = flops_model(unpruned, groups, example)
    assert efficiency["exported"]["flops_per_sample"] == round(flops.kept(kept) * flops.total)
    assert efficiency["exported"]["flops_per_sample"] / flops.total <= efficiency["budget"]
    ratio = efficiency["ratio"]
    shown = json.loads(dvc(tiny_repo, "metrics", "show", "--json", "metrics/efficiency.json").stdout)
    data = shown[""]["data"]["metrics/efficiency.json"]["data"]
    assert (
        data["ratio"]["speedup_batch256"] == pytest.approx(ratio["speedup_batch256"]) and ratio["speedup_batch256"] > 0
    )
    assert data["score_loss_points"] == pytest.approx(row_loss(tiny_repo, efficiency))


def row_loss(repo: Path, efficiency: dict) -> float:
    """The study's mean loss for the shipped configuration, from metrics.json."""
    budget = json.loads((repo / "metrics/metrics.json").read_text())["budget"]
    strategy = next(k.removeprefix("strategy_") for k in efficiency if k.startswith("strategy_"))
    criterion = next(k.removeprefix("criterion_") for k in efficiency if k.startswith("criterion_"))
    entry = budget[strategy][criterion][f"flops_{efficiency['budget'] * 100:g}"]
    return -entry["finetuned_recal_bacc_vs_unpruned"]["mean"]


def test_the_take_home_snippet_in_docs_classifies_pairs(tiny_repo: Path) -> None:
    import re

    text = (ROOT / "docs/deploy.md").read_text()
    section = text[text.index("# Taking a pruned model home") :]
    snippet = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len(snippet.strip().splitlines()) == 4  # an import and three lines
    out = run([sys.executable, "-c", snippet], cwd=tiny_repo).stdout
    assert re.fullmatch(r"tensor\(\[[01], [01], [01], [01]\]\)\n", out), out


def test_exp_show_compares_the_headline_and_the_full_study_is_one_command_away(tiny_repo: Path, tmp_path: Path) -> None:
    """`dvc exp show` reads metrics/headline.json by default (about twenty scalars, not hundreds);
    `--only-changed` of an experiment that changes the shipped K fits a 200-column terminal; the
    full study is `dvc metrics show metrics/metrics.json`."""
    repo = tmp_path / "repo"
    shutil.copytree(tiny_repo, repo, symlinks=True)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "tiny run"], repo)
    dvc(repo, "exp", "run", "-n", "k5", "-S", "export.budget=none", "-S", "export.k=5")
    found = experiments(json.loads(dvc(repo, "exp", "show", "--json").stdout))
    shown = found["k5"]["metrics"]
    assert set(shown) == {"metrics/headline.json"}, set(shown)
    headline = shown["metrics/headline.json"]["data"]
    assert headline["shipped"]["k"] == 5 and set(headline) == {"n_seeds", "unpruned", "vs_random", "shipped"}
    table = run(
        [str(Path(sys.executable).parent / "dvc"), "exp", "show", "--no-pager", "--only-changed"],
        repo, env_extra={"COLUMNS": "200"},
    ).stdout  # fmt: skip
    lines = table.splitlines()
    assert max(len(line) for line in lines) <= 200 and "…" not in table, table
    assert "shipped.k" in table and "export.k" in table
    # The README's pick of columns fits too.
    picked = run(
        [str(Path(sys.executable).parent / "dvc"), "exp", "show", "--no-pager", "--drop", ".*",
         "--keep", r"Experiment|unpruned\.(bacc|roc_auc)$|shipped"],
        repo, env_extra={"COLUMNS": "200"},
    ).stdout  # fmt: skip
    assert r"--keep 'Experiment|unpruned\.(bacc|roc_auc)$|shipped'" in (ROOT / "README.md").read_text()
    assert max(len(line) for line in picked.splitlines()) <= 200 and "…" not in picked, picked
    assert "unpruned.roc_auc" in picked and "shipped.loss" in picked
    full = json.loads(dvc(repo, "metrics", "show", "--json", "metrics/metrics.json").stdout)
    assert "criteria" in full[""]["data"]["metrics/metrics.json"]["data"]
