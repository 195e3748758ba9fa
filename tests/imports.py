"""The project's own import graph, read from the source (ast), for layout and DVC-deps tests."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "prunelab"


def module_file(module: str) -> Path | None:
    """The file of a project module (`prunelab.x`, `stages.y`), or None for anything else."""
    parts = module.split(".")
    if parts[0] not in (PACKAGE, "stages"):
        return None
    path = ROOT.joinpath(*parts)
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return None


def imported_modules(path: Path, type_level: bool = False) -> set[str]:
    """Project modules a file imports anywhere in it (module level, functions). `if TYPE_CHECKING:`
    blocks count only with `type_level`: they never run, so they are no DVC dep, but they tie two
    modules' designs together as much as an import that runs (a cycle through them is a cycle).
    `from prunelab import x` counts as prunelab.x when that is a module, and as prunelab otherwise."""
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if not type_level and isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
            names = [n if module_file(n) else node.module for n in names]
        else:
            continue
        found.update(n for n in names if module_file(n))
    # importlib.import_module("prunelab.x") with a literal name is an import too.
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and ast.unparse(node.func).endswith("import_module")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and module_file(str(node.args[0].value))
        ):
            found.add(str(node.args[0].value))
    return found


def graph(type_level: bool = False) -> dict[str, set[str]]:
    """{module: project modules it imports} for every module of the package and every stage: the
    imports that run (what a stage's outputs depend on), or with `type_level` also those inside
    `if TYPE_CHECKING:` blocks (what the layout's no-cycle rule reads)."""
    modules = [
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for p in sorted((ROOT / PACKAGE).rglob("*.py"))
    ]
    modules = [m for m in modules if m != PACKAGE]
    modules += [f"stages.{p.stem}" for p in (ROOT / "stages").glob("*.py") if p.stem != "__init__"]
    return {m: imported_modules(module_file(m), type_level) - {m} for m in modules}


def closure(module: str, edges: dict[str, set[str]]) -> set[str]:
    """`module` and everything it imports, directly or through other project modules."""
    seen, todo = set(), [module]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        todo.extend(edges.get(current, ()))
    return seen


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every import cycle found by depth-first search, each as a list of modules."""
    found, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                found.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = "done"

    for start in sorted(edges):
        if start not in state:
            visit(start, [start])
    return found


# Modules that only validate and report: params validation (which reads the registries' names in
# every stage), the checks of the files the stages read (prunelab.checks: they return nothing the
# stages use), the UserError type and its one-line messages (prunelab.messages). They can refuse a
# run but never change its outputs, so no stage depends on them, and a new criterion, source or
# architecture does not rerun the stages that merely validate params against the registries (the
# stages that use the registry import it themselves). Edges into these modules are not followed.
VALIDATION_ONLY = ("prunelab.params", "prunelab.checks", "prunelab.messages", "prunelab.errors")


def validation_only(module: str) -> bool:
    return any(module == v or module.startswith(f"{v}.") for v in VALIDATION_ONLY)


def stage_modules(stage_module: str) -> set[str]:
    """Project modules a stage's outputs depend on: its import closure, validation-only modules left out."""
    edges = {m: {n for n in targets if not validation_only(n)} for m, targets in graph().items()}
    return closure(stage_module, edges)


def dep_path(module: str) -> str:
    """The dvc.yaml dep that covers a module: its subpackage folder (`prunelab/pruning`) for a
    module inside one, the file itself for a top-level module or a stage script."""
    parts = module.split(".")
    if parts[0] == PACKAGE and len(parts) > 2:
        return f"{PACKAGE}/{parts[1]}"
    file = module_file(module)
    assert file is not None, module
    return str(file.relative_to(ROOT))


def stage_code_deps(stage_module: str) -> set[str]:
    """The code deps dvc.yaml must list for a stage, at its granularity (`prunelab/__init__.py`
    holds lazy re-exports only and is no stage's dep)."""
    return {dep_path(m) for m in stage_modules(stage_module) if m != PACKAGE}
