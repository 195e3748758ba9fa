"""The layout: a library package, thin stage scripts, honest DVC deps, no torch where none is needed."""

from __future__ import annotations

import ast
import os
import re
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import yaml

import prunelab
from prunelab.params import replicate_seed
from tests.helpers import ROOT, dvc, expanded_stages, project_copy, run, study_order, tool_module
from tests.imports import PACKAGE, VALIDATION_ONLY, cycles, graph, module_file, stage_code_deps

# Modules that stages without tensor math (and params validation in every stage) import.
TORCH_FREE = ["models.archs", "scoring.curves", "scoring.scores", "pruning.criteria", "pruning.activations",
              "pruning.ranking", "pruning.finetune", "errors", "prepare.tasks", "prepare.sources", "params",
              "study.figures", "study.report", "study.aggregate", "data.prepared", "data.spec", "runtime", "paths",
              "_speed", "checks.tables", "checks.reader", "checks.summary", "checks.study_metrics", "checks.efficiency",
              "checks.info", "checks.arrays", "data.records", "pruning.records",
              "pruning.names", "scoring.names", "scoring.milestones", "study.names"]  # fmt: skip

# The bottom of the layout: plain records and the registries' names (and tiny pure helpers over them),
# importing nothing of the project but each other. The params schema, the checks and the stages all
# read them, so they must never reach back up.
LEAVES = ["data.spec", "data.records", "models.records", "models.archs", "pruning.records", "pruning.names",
          "scoring.names", "scoring.milestones", "study.names", "network"]  # fmt: skip
# What the checks may import besides each other and the leaves: validation, paths, the errors and their
# one-line messages, the checked reads of `runtime`, the sources' registered facts and the budget's metrics.json key
# (`network.choice.budget_key`, pure). Never a stage's logic (the study's aggregation, the sweep, the
# criteria): a check reads a format, and loading a split must not import pandas or scipy.
CHECKS_MAY_IMPORT = ["errors", "messages", "paths", "runtime", "params", "prepare.sources", "network.choice"]


def dvc_stages() -> dict[str, dict]:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def stage_script(spec: dict) -> str:
    """`python -m stages.train` → stages/train.py."""
    match = re.fullmatch(r"python -m (stages\.\w+)( .*)?", spec["cmd"])
    assert match, spec["cmd"]
    return match.group(1)


def test_stages_folder_holds_only_stage_scripts() -> None:
    scripts = {stage_script(spec) for spec in dvc_stages().values()}
    present = {f"stages.{p.stem}" for p in (ROOT / "stages").glob("*.py") if p.stem != "__init__"}
    assert present == scripts
    for name in present:
        tree = ast.parse(module_file(name).read_text())
        functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
        assert "main" in functions, f"{name} has no main()"


def test_no_module_imports_another_in_a_circle() -> None:
    """Imports inside `if TYPE_CHECKING:` blocks count: they never run, but a record that two modules
    import from each other's insides ties them together all the same (the records live in leaves)."""
    found = cycles(graph(type_level=True))
    assert found == [], "import cycles: " + "; ".join(" -> ".join(c) for c in found)


def test_records_and_names_are_leaves() -> None:
    edges = graph(type_level=True)
    leaves = {f"{PACKAGE}.{m}" for m in LEAVES}
    for leaf in sorted(leaves):
        assert edges[leaf] <= leaves, f"{leaf} imports {sorted(edges[leaf] - leaves)}"


def test_the_checks_import_records_never_stage_logic() -> None:
    allowed = {f"{PACKAGE}.{m}" for m in [*LEAVES, *CHECKS_MAY_IMPORT]}
    for module, targets in graph(type_level=True).items():
        if module.startswith(f"{PACKAGE}.checks."):
            outside = {t for t in targets if not t.startswith(f"{PACKAGE}.checks")} - allowed
            assert not outside, f"{module} imports {sorted(outside)}"


def test_the_name_tuples_are_the_registries_keys() -> None:
    """Params validation reads the criteria's names from a leaf, not the registry's code: the two agree,
    in order (the order the allowed text lists them). The budget strategies' names: tests/test_network.py."""
    from prunelab.pruning.criteria import CRITERIA
    from prunelab.pruning.names import CRITERION_NAMES

    assert tuple(CRITERIA) == CRITERION_NAMES


def test_loading_prepared_data_imports_no_pandas_and_no_scipy(tmp_path) -> None:
    """`prunelab.data.prepared` and the checks of what it reads (info.json, the .npz splits) stay
    clear of the study's aggregation: importing it and loading a split, in a fresh interpreter."""
    from prunelab.data.prepared import DatasetInfo, save_prepared  # the old homes still export the records
    from prunelab.data.spec import InputSpec
    from prunelab.prepare.tasks import Split

    info = DatasetInfo("mnist_5k", "classification", InputSpec(1, 4, 10), (0.1307,), (0.3081,))
    images = np.zeros((3, 1, 4, 4), dtype=np.uint8)
    save_prepared(tmp_path, info, {"test": Split(images, np.arange(3, dtype=np.int64), np.arange(3)[:, None])})
    probe = (
        "import sys\n"
        "from pathlib import Path\n"
        "import prunelab.data.prepared as prepared\n"
        "imported = [m for m in ('pandas', 'scipy') if m in sys.modules]\n"
        f"folder = Path({str(tmp_path)!r})\n"
        "prepared.load_split_arrays('test', folder, prepared.load_info(folder))\n"
        "loaded = [m for m in ('pandas', 'scipy') if m in sys.modules]\n"
        "print(imported, loaded)\n"
    )
    assert run([sys.executable, "-c", probe], cwd=ROOT).stdout.strip() == "[] []"


def test_the_package_imports_no_stage() -> None:
    for module, targets in graph().items():
        if module.startswith(f"{PACKAGE}."):
            assert not any(t.startswith("stages") for t in targets), module


def test_each_stage_lists_exactly_the_code_it_imports() -> None:
    """Every project subpackage and top-level module a stage imports, directly or through another
    module, is a dep in dvc.yaml (so a cached stage never misses a change), and no other code is:
    a change to one concern reruns only the stages that use it."""
    for name, spec in dvc_stages().items():
        listed = {d for d in spec["deps"] if d.startswith(("stages/", f"{PACKAGE}/"))}
        needed = stage_code_deps(stage_script(spec))
        assert listed == needed, f"{name}: missing {sorted(needed - listed)}, extra {sorted(listed - needed)}"


def test_code_deps_are_subpackage_folders_and_top_level_modules() -> None:
    """dvc.yaml reads at a glance: no stage lists a single file inside a subpackage, and the
    validation-only modules are no stage's dep."""
    for name, spec in dvc_stages().items():
        for dep in spec["deps"]:
            if dep.startswith(f"{PACKAGE}/"):
                parts = dep.split("/")
                assert len(parts) == 2, f"{name}: {dep} is a file inside a subpackage"
                validation = ("params", "checks", "messages.py", "errors.py", "__init__.py")
                assert parts[1] not in validation, f"{name}: {dep} is validation-only"


def test_the_readme_states_the_rerun_scope_the_deps_test_checks() -> None:
    text = " ".join((ROOT / "README.md").read_text().split())
    assert (
        "Each stage's deps are its script, its input files, and the `prunelab` subpackages and top-level modules it "
        "imports, directly or through another module (tested against the real imports); `prunelab/params/`, "
        "`prunelab/messages.py` and `prunelab/errors.py` only validate and report, so they are no stage's dep" in text
    )
    for module in VALIDATION_ONLY:
        assert module.replace(".", "/") in text


def test_directory_deps_hash_no_bytecode() -> None:
    """A folder dep is hashed file by file: __pycache__ must be ignored, or importing a module
    would change the hash and rerun the stage."""
    ignored = (ROOT / ".dvcignore").read_text().split()
    assert "__pycache__/" in ignored and "*.pyc" in ignored


def test_params_and_the_registries_import_without_torch() -> None:
    probe = (
        "import sys\n"
        + "".join(f"import prunelab.{m}\n" for m in TORCH_FREE)
        + "from prunelab.params import load_params\n"
        "load_params()\n"
        "import prunelab\n"
        "prunelab.ARCHS, prunelab.CRITERIA, prunelab.SOURCES\n"
        "print('torch' in sys.modules, 'torchvision' in sys.modules)\n"
    )
    assert run([sys.executable, "-c", probe], cwd=ROOT).stdout.split() == ["False", "False"]


def test_the_package_init_imports_nothing_eagerly() -> None:
    """prunelab/__init__.py is not a DVC dep of the stages; it may hold lazy re-exports only."""
    tree = ast.parse((ROOT / PACKAGE / "__init__.py").read_text())
    imported = {
        alias.name for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom) for alias in node.names
    }
    assert imported <= {"annotations", "import_module", "Any"}


def test_every_public_name_resolves_and_is_listed() -> None:
    assert prunelab.__all__ == sorted(prunelab.__all__)
    for name in prunelab.__all__:
        assert getattr(prunelab, name) is not None, name
    with pytest.raises(AttributeError):
        prunelab.not_a_name  # noqa: B018


def test_registries_and_params_schema_agree() -> None:
    """Every registered name is valid where params.yaml names one, and an unregistered one is
    refused naming the key: the schema reads the registries, it keeps no copy of them."""
    from prunelab.params import validate

    base = yaml.safe_load((ROOT / "params.yaml").read_text())

    def with_value(dotted: str, value: object) -> dict:
        section, key = dotted.split(".")
        edited = {**base, section: {**base[section], key: value}}
        if dotted == "export.criterion":  # any criterion of the single-layer study: the export of that study
            edited["export"] = {**edited["export"], "budget": "none"}
        if dotted == "model.arch" and value in prunelab.ARCHS and not prunelab.ARCHS[value].batchnorm:
            edited["prune"] = {**base["prune"], "criteria": [c for c in base["prune"]["criteria"] if c != "bn_gamma"]}
        return edited

    names = {"model.arch": prunelab.ARCHS, "data.source": prunelab.SOURCES, "export.criterion": prunelab.CRITERIA}
    for dotted, registry in names.items():
        section, key = dotted.split(".")
        for name in registry:
            assert getattr(getattr(validate(with_value(dotted, name)), section), key) == name
        with pytest.raises(prunelab.UserError, match=re.escape(f"{dotted}='not_registered' is invalid")):
            validate(with_value(dotted, "not_registered"))
    for dotted in ("prune.criteria", "finetune.criteria"):
        every = ["mean_activation", *[c for c in prunelab.CRITERIA if c != "mean_activation"]]
        section, key = dotted.split(".")
        assert getattr(getattr(validate(with_value(dotted, every)), section), key) == tuple(every)
        refused = re.escape(f"{dotted} contains unknown criterion 'not_registered'")
        with pytest.raises(prunelab.UserError, match=refused):
            validate(with_value(dotted, [*every, "not_registered"]))


def readme_snippet() -> str:
    """The README's public-API example: the python block after the 'Using the library' heading."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Using the library") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.integration  # a fresh interpreter (imports torch): the whole suite's tier
def test_the_readme_api_snippet_runs() -> None:
    result = run([sys.executable, "-c", readme_snippet()], cwd=ROOT, timeout=300)
    assert "Conv2d(64, 64" in result.stdout
    numbers = [float(x) for x in re.findall(r"\d+\.\d*", result.stdout.splitlines()[-1])]
    assert len(numbers) == 5 and all(0 <= x <= 100 for x in numbers)


def test_the_seed_matrix_expands_to_one_instance_per_seed(tmp_path) -> None:
    """DVC's own expansion (dvc stage list) for seeds [3, 7]: every per-replicate stage once
    per seed, writing under its own seed's folders; `seeds` is a param only of the stages
    that read every replicate, so adding a seed never invalidates another one."""
    repo = project_copy(tmp_path / "repo", {"seeds": [3, 7]})
    listed = dvc(repo, "stage", "list", "--name-only").stdout.split()
    assert listed == study_order([3, 7])
    stages = expanded_stages(repo)
    assert set(stages) == set(listed)
    for name, spec in stages.items():
        if "@" in name:
            seed = name.split("@")[1]
            assert spec["cmd"].endswith(f"--seed {seed}")
            outs = [next(iter(o)) if isinstance(o, dict) else o for o in spec["outs"]]
            assert all(f"seeds/{seed}/" in out for out in outs), outs
            assert "seeds" not in spec["params"]
        elif name == "latency":  # the first seed's test images, by path: adding a seed never re-measures
            assert "seeds" not in spec["params"] and "data/seeds/3/prepared" in spec["deps"]
        elif name != "headline":  # headline reads only the aggregated files
            assert "seeds" in spec["params"]
    assert "data/seeds/3/activations.npz" in stages["plot"]["deps"]


def test_a_replicate_stage_takes_its_seed_from_the_command_line() -> None:
    from prunelab.params import validate

    params = validate(yaml.safe_load((ROOT / "params.yaml").read_text()))
    assert replicate_seed(params, ["--seed", "3"]) == 3
    one = validate({**params.model_dump(), "seeds": [9]})
    assert replicate_seed(one, []) == 9
    for argv, message in [
        ([], "this stage runs one replicate; allowed: --seed N"),
        (["--seed", "x"], "--seed x is invalid"),
        (["--seed", "-1"], "--seed -1 is invalid"),
        (["--sed", "1"], "allowed: --seed N"),
    ]:
        with pytest.raises(prunelab.UserError, match=re.escape(message)):
            replicate_seed(params, argv)


def render_docs_tool() -> ModuleType:
    """tools/render_docs.py (`tool_module`)."""
    return tool_module("render_docs")


def readme_and_docs() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_the_readme_and_docs_generated_blocks_match_the_generated_files() -> None:
    """Every generated block equals the tool's rendering from the generated files as they are in
    the working tree or as committed at HEAD (a user's `dvc repro` may remeasure latencies)."""
    tool = render_docs_tool()
    sources = [tool.Files.working_tree(ROOT)]
    if run(["git", "rev-parse", "--verify", "HEAD"], cwd=ROOT, check=False).returncode == 0:
        sources.append(tool.Files.at_revision("HEAD", ROOT))
    assert tool.stale_blocks(ROOT, sources) == []
    used = [name for path in readme_and_docs() for name, _ in tool.blocks_in(path.read_text())]
    assert {"headline", "export"} <= {name for name, _ in tool.blocks_in((ROOT / "README.md").read_text())}
    assert sorted(set(used)) == sorted(tool.BLOCKS), "every renderer is used, every block has one"


# Decimal numbers allowed outside generated blocks and code blocks: versions, not results.
NOT_RESULTS = {"3.10": "Python version", "2.14.1": "torch pin", "0.29.1": "torchvision pin", "1.6": "torch-pruning pin"}


def test_the_readme_and_docs_quote_no_decimal_outside_generated_blocks() -> None:
    """A number from a run lives in a generated block or only in a generated file the docs link."""
    tool = render_docs_tool()
    for path in readme_and_docs():
        text = tool.BLOCK.sub("", path.read_text())
        text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)  # fenced code: commands, not claims
        # A module path (layer2.0.conv1) is a name, not a number: digits inside an identifier do not count.
        numbers = re.findall(r"(?<![\w.])\d+(?:\.\d+)+(?![\w])", text)
        typed = [n for n in numbers if "." in n and n not in NOT_RESULTS]
        assert typed == [], f"{path.relative_to(ROOT)}: numbers typed by hand: {typed}"


def test_the_readme_headline_block_renders_from_the_metrics_keys() -> None:
    """The rendering of one block from a small hand-written metrics.json: a wrong key or format fails."""
    tool = render_docs_tool()

    def ci(mean: float, low: float, high: float, wins: int | None = None) -> dict:
        return {"mean": mean, "ci_low": low, "ci_high": high, **({} if wins is None else {"wins": wins})}

    metrics = {
        "n_seeds": 3,
        "confidence": 0.95,
        "majority_floor": 90.0,
        "balanced_floor": 50.0,
        "baseline_accuracy": ci(92.04, 90.0, 94.06),
        "baseline_balanced_accuracy": ci(77.25, 70.0, 84.5),
        "baseline_roc_auc": ci(91.0, 89.95, 92.05),
        "criteria": {
            "mean_activation": {
                "bacc_over_k": ci(60.0, 50.0, 70.0),
                "bacc_over_k_vs_random": ci(-4.46, -16.9, 7.96, wins=1),
                "roc_auc_over_k_vs_random": ci(1.8, 0.12, 3.6, wins=3),
            },
            "random": {"bacc_over_k": ci(73.0, 70.0, 76.0)},
            "apoz": {
                "bacc_over_k_vs_random": ci(-11.9, -16.8, -7.0, wins=0),
                "roc_auc_over_k_vs_random": ci(0.04, -1.0, 1.0, wins=2),
            },
        },
    }
    expected = """\
Mean over **3 seeds**; brackets are 95 % Student t intervals across seeds, in percent (points). Each difference \
is paired within a seed (the criterion minus the mean of that seed's random orders); the verdict says whether its \
interval is above 0, below 0 or contains 0, and (w/n) counts the seeds where the criterion is above random.

- **The unpruned model:** accuracy 92.0 [90.0, 94.1], balanced accuracy 77.2 [70.0, 84.5], ROC AUC 91.0 \
[90.0, 92.0]; always answering the majority class scores 90.0 (accuracy), chance is 50.0 (balanced accuracy).

| criterion | mean balanced accuracy over K minus random (`bacc_over_k_vs_random`) | mean ROC AUC over K minus \
random (`roc_auc_over_k_vs_random`) |
| --- | --- | --- |
| mean_activation | -4.5 [-16.9, 8.0], not distinguishable (1/3) | +1.8 [0.1, 3.6], better (3/3) |
| apoz | -11.9 [-16.8, -7.0], worse (0/3) | +0.0 [-1.0, 1.0], not distinguishable (2/3) |"""
    files = tool.Files.from_mapping({"metrics/metrics.json": metrics})
    assert tool.render("headline", files) == expected
    # Files written before the key rename hold `bacc_auc`: the same rows, under the file's own key name.
    for entry in metrics["criteria"].values():
        if "bacc_over_k_vs_random" in entry:
            entry["bacc_auc_vs_random"] = entry.pop("bacc_over_k_vs_random")
    old = tool.render("headline", tool.Files.from_mapping({"metrics/metrics.json": metrics}))
    assert old == expected.replace("bacc_over_k_vs_random", "bacc_auc_vs_random")
    # A verdict the study wrote into the file wins over one read off the interval.
    metrics["criteria"]["apoz"]["roc_auc_over_k_vs_random"]["verdict"] = "inconclusive"
    own = tool.render("headline", tool.Files.from_mapping({"metrics/metrics.json": metrics}))
    assert "| +0.0 [-1.0, 1.0], inconclusive (2/3) |" in own
    assert "the verdict is the study's own (metrics/report.md says how it is decided)" in own


def test_the_readme_export_block_renders_from_efficiency_json() -> None:
    tool = render_docs_tool()
    efficiency = {
        "k": 100,
        "channels": 128,
        "seed": 0,
        "criterion_taylor": 1,
        "study_recal_bacc_at_k": 77.0,
        "study_recal_bacc_unpruned": 78.5,
        "score_loss_points": 1.5,
        "threads": 2,
        "ratio": {"params": 4.0, "flops": 1.5, "program_bytes": 1.25, "speedup_batch1": 1.004, "speedup_batch256": 1.2,
                  "speedup_batch256_low": 1.1, "speedup_batch256_high": 1.3, "speedup_rounds": 30,
                  "speedup_batch256_onnxruntime": 0.9},
        "unpruned": {"latency_ms_batch256": 20.0, "latency_ms_batch256_eager": 70.0},
    }  # fmt: skip
    tail = (
        "It has 4.00× fewer parameters, 1.50× fewer FLOPs per sample, a 1.25× smaller `.pt2` file, and runs 1.20× "
        "faster at batch 256 (95 % bootstrap interval 1.10–1.30× over 30 paired rounds; 1.00× at batch 1; 0.90× "
        "under ONNX Runtime) than the unpruned model in the same format (BatchNorm folded into "
        "the convs, channels-last: the format shipped, which alone makes the unpruned model 3.50× faster than as "
        "trained) on the CPU that ran the `export` stage (2 threads; latencies are the one output that changes "
        "from run to run)."
    )
    expected = (
        "The exported model is seed 0's, `taylor` at K = 100 of 128 channels; the study's mean recalibrated "
        "balanced accuracy at K is 77.00 against 78.50 unpruned (`score_loss_points` 1.50). " + tail
    )
    assert tool.render("export", tool.Files.from_mapping({"metrics/efficiency.json": efficiency})) == expected
    # The whole network at a FLOPs budget (the default export).
    network = {key: value for key, value in efficiency.items() if key not in ("k", "channels")} | {
        "budget": 0.25, "strategy_uniform": 1, "channels_conv1": 15, "channels_conv2": 30,
        "study_finetuned_recal_bacc": 79.5, "study_finetuned_recal_bacc_unpruned": 80.0, "score_loss_points": 0.5,
    }  # fmt: skip
    assert tool.render("export", tool.Files.from_mapping({"metrics/efficiency.json": network})) == (
        "The exported model is seed 0's, the whole network at **0.25 of the FLOPs**, allocated by `uniform` and "
        "ranked by `taylor` (channels kept: conv1 15, conv2 30), fine-tuned by the budget study's recipe; the "
        "study's mean fine-tuned recalibrated balanced accuracy for it is 79.50 against 80.00 for the unpruned "
        "model fine-tuned alike (`score_loss_points` 0.50). " + tail
    )
    del efficiency["ratio"]["flops"]
    with pytest.raises(tool.RenderError, match=r"metrics/efficiency.json: no key ratio.flops"):
        tool.render("export", tool.Files.from_mapping({"metrics/efficiency.json": efficiency}))


def test_the_readme_check_names_a_stale_block(tmp_path) -> None:
    tool = render_docs_tool()
    files = tool.Files.from_mapping({"metrics/gpu_check.log": GPU_LOG})
    fresh = tool.render("gpu-check", files)
    assert fresh == (
        "H200, torch 2.0; a fresh interpreter costs 7.3 s per stage before any work (2.9 s for prepare_data, "
        "which imports no torch).\n"
        "- **pairs**, 2 seeds: 40.0 – 44.9 s per seed, of which 10.0 – 11.2 s beyond start-up "
        "(train 8.7 – 9.5 s, sweep_prune 13.0 – 16.1 s).\n"
        "- **cifar10 single-layer**, 1 seed: 70.6 s per seed, of which 38.7 s beyond start-up (train 27.1 s).\n"
        "- Rerun of pairs seed 0: model.pt identical.\n"
        "- Goal, a pairs replicate's stage work ≤ 15 s beyond start-up: 11.2 s at most, met.\n"
        "- Goal, the five-seed CIFAR-10 study ≤ 180 s: 353.0 s (five times the mean per seed of 1 measured), NOT MET."
    )
    cpu = tool.Files.from_mapping({"metrics/cpu_check.log": GPU_LOG.replace("(train 27.1)", "(sweep_prune 31.5)")})
    assert tool.render("cpu-check", cpu).endswith("- Goal, CIFAR-10 sweep_prune ≤ 30 s per seed: 31.5 s, NOT MET.")
    (tmp_path / "docs").mkdir()
    block = "<!-- generated: gpu-check -->\n{}\n<!-- /generated -->\n"
    (tmp_path / "README.md").write_text("# x\n\n" + block.format(fresh))
    (tmp_path / "docs" / "gpu.md").write_text(block.format(fresh.replace("44.9", "41.0")))
    assert tool.stale_blocks(tmp_path, [files]) == [
        "docs/gpu.md: block 'gpu-check' is stale (differs from its rendering from the given files); "
        "run python tools/render_docs.py"
    ]


GPU_LOG = """device: H200, torch 2.0
start-up floor: 7.3 s per stage (a fresh interpreter, device touched), 2.9 s for prepare_data (no torch)
pairs seed 0: 40.0 s, stage work 10.0 s beyond start-up (train 9.5, sweep_prune 13.0)
pairs rerun seed 0: 39.0 s, stage work 9.0 s beyond start-up (train 9.5, sweep_prune 12.0)
rerun of pairs seed 0: model.pt identical
cifar10 single-layer seed 0: 70.6 s, stage work 38.7 s beyond start-up (train 27.1)
pairs seed 1: 44.9 s, stage work 11.2 s beyond start-up (train 8.7, sweep_prune 16.1)
"""


def github_anchor(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_the_readme_and_docs_links_point_to_existing_files() -> None:
    """Every relative `](path)` link in README.md and docs/*.md names a file that exists (and a
    heading that exists, when it has an #anchor)."""
    checked = 0
    for path in readme_and_docs():
        text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.S | re.M)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            resolved = (path.parent / file).resolve() if file else path
            assert resolved.is_file(), f"{path.relative_to(ROOT)}: broken link {target}"
            if anchor:
                headings = re.findall(r"^#+ (.*)$", resolved.read_text(), flags=re.M)
                assert anchor in {github_anchor(h) for h in headings}, f"{path.relative_to(ROOT)}: no #{anchor}"
            checked += 1
    assert checked > 20


@pytest.mark.xdist_group("layout")
def test_grouped_tests_share_one_worker(request: pytest.FixtureRequest) -> None:
    """pyproject.toml runs the suite with `-n auto --dist loadgroup`: a module-scoped fixture that is dear to
    build (the CIFAR-10 run, the remote workers) is built once only if its tests, marked `xdist_group`, go
    to one worker. pytest-xdist 3.8 names the group in the node id, which pytest 9.2 no longer reads back
    (hence `pytest<9.2`): there, every CIFAR-10 test built its own run."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        pytest.skip("the suite runs in one process (-n 0): there are no workers to group on")
    assert request.node.nodeid.endswith("@layout"), request.node.nodeid
