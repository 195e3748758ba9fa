"""Reading params.yaml: YAML as DVC reads it, file-level mistakes, then `validate`.

A user mistake raises `UserError` with one line that names the file or the dotted key, the
value given and what is allowed; `prunelab.runtime.stage_main` turns that into a non-zero
exit with no stack trace.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from prunelab.errors import UserError
from prunelab.messages import first_problem
from prunelab.params.schema import Params

PARAMS_FILE = Path("params.yaml")


def validate(raw: Any) -> Params:
    """A parsed params.yaml as typed, frozen `Params`; `UserError` on the first problem."""
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        raise UserError(f"params.yaml: {first_problem(err, raw, Params)}") from None


class _ParamsLoader(yaml.SafeLoader):
    """yaml.safe_load that reads numbers as DVC does (YAML 1.2): PyYAML (YAML 1.1) reads
    `1e-3` as the text '1e-3', while DVC, `dvc exp run -S` and dvc.lock see the number 0.001."""


_ParamsLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def _duplicate_key(node: yaml.Node, prefix: str = "") -> tuple[str, int] | None:
    """The first key given twice in one mapping, dotted, and its line. PyYAML would silently
    keep the last value; DVC refuses the file with a vaguer message."""
    if isinstance(node, yaml.MappingNode):
        seen = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue  # a list or mapping as a key: validate() names it as unknown
            dotted = f"{prefix}{key_node.value}"
            if key_node.value in seen:
                return dotted, key_node.start_mark.line + 1
            seen.add(key_node.value)
            found = _duplicate_key(value_node, f"{dotted}.")
            if found:
                return found
    return None


def load_params(path: Path = PARAMS_FILE) -> Params:
    """params.yaml (from the project root, where DVC runs the stages), validated."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UserError(f"{path}: file not found; run from the project root") from None
    try:
        duplicate = _duplicate_key(yaml.compose(text, Loader=_ParamsLoader))
        raw = yaml.load(text, Loader=_ParamsLoader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise UserError(f"{path}: not valid YAML{where}") from None
    if duplicate:
        raise UserError(f"{path}: {duplicate[0]} is given twice (line {duplicate[1]}); allowed: each key once")
    return validate(raw)
