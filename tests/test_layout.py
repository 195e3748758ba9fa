"""The layout: a library package, thin stage scripts, honest DVC deps, no torch where none is needed."""

from __future__ import annotations

import ast
import re
import sys

import pytest
import yaml

import prunelab
from prunelab.params import replicate_seed
from tests.helpers import ROOT, dvc, expanded_stages, project_copy, run, study_order
from tests.imports import PACKAGE, VALIDATION_ONLY, cycles, graph, module_file, stage_code_deps

# Modules that stages without tensor math (and params validation in every stage) import.
TORCH_FREE = ["models.archs", "scoring.curves", "scoring.scores", "pruning.criteria", "pruning.activations",
              "pruning.ranking", "pruning.finetune", "errors", "prepare.tasks", "prepare.sources", "params",
              "study.figures", "study.report", "study.aggregate", "data.prepared", "data.spec", "runtime", "paths",
              "_speed"]  # fmt: skip


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
    assert cycles(graph()) == []


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
                assert parts[1] not in ("params", "errors.py", "__init__.py"), f"{name}: {dep} is validation-only"


def test_the_readme_states_the_rerun_scope_the_deps_test_checks() -> None:
    text = " ".join((ROOT / "README.md").read_text().split())
    assert (
        "Each stage's deps are its script, its input files, and the `prunelab` subpackages and top-level modules it "
        "imports, directly or through another module (tested against the real imports); `prunelab/params/` and "
        "`prunelab/errors.py` only validate and report, so they are no stage's dep" in text
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
    from prunelab.params import SCHEMA

    for registry, key in ((prunelab.ARCHS, ("model", "arch")), (prunelab.SOURCES, ("data", "source"))):
        check = SCHEMA[key[0]][key[1]]
        for name in registry:
            assert check(".".join(key), name) == name
        with pytest.raises(prunelab.UserError):
            check(".".join(key), "not_registered")
    check = SCHEMA["prune"]["criteria"]
    assert check("prune.criteria", ["mean_activation", *[c for c in prunelab.CRITERIA if c != "mean_activation"]])


def readme_snippet() -> str:
    """The README's public-API example: the python block after the 'Using the library' heading."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Using the library") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_api_snippet_runs() -> None:
    result = run([sys.executable, "-c", readme_snippet()], cwd=ROOT, timeout=300)
    assert "Conv2d(64, 64" in result.stdout
    numbers = [float(x) for x in re.findall(r"\d+\.\d+", result.stdout.splitlines()[-1])]
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
        else:
            assert "seeds" in spec["params"]
    assert "data/seeds/3/activations.npz" in stages["plot"]["deps"]


def test_a_replicate_stage_takes_its_seed_from_the_command_line() -> None:
    from prunelab.params import validate

    params = validate(yaml.safe_load((ROOT / "params.yaml").read_text()))
    assert replicate_seed(params, ["--seed", "3"]) == 3
    one = validate({**params.raw, "seeds": [9]})
    assert replicate_seed(one, []) == 9
    for argv, message in [
        ([], "this stage runs one replicate; allowed: --seed N"),
        (["--seed", "x"], "--seed x is invalid"),
        (["--seed", "-1"], "--seed -1 is invalid"),
        (["--sed", "1"], "allowed: --seed N"),
    ]:
        with pytest.raises(prunelab.UserError, match=re.escape(message)):
            replicate_seed(params, argv)


def test_the_readmes_study_numbers_come_from_the_generated_files() -> None:
    """README's study sections quote no number that the pipeline's report, metrics, efficiency
    measurement, kernel check or GPU log does not hold (to the decimals quoted)."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## The study") : text.index("## Working with DVC")]
    section = re.sub(r"```.*?```", "", section, flags=re.S)  # code, not claims
    names = ("report.md", "kernel_check.md", "gpu_check.log", "efficiency.json")
    generated = "".join((ROOT / "metrics" / name).read_text() for name in names)
    available = [float(x) for x in re.findall(r"-?\d+\.\d+(?:e-?\d+)?", generated)]
    quoted = re.findall(r"-?\d+\.\d+", section)
    assert len(quoted) > 20

    def found(number: str) -> bool:
        decimals = len(number.split(".")[1])
        return any(round(value, decimals) == float(number) for value in available)

    assert [n for n in quoted if not found(n)] == []
