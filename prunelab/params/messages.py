"""From pydantic's `ValidationError` to the one line a user reads.

pydantic reports every problem, with a location tuple and its own wording. A stage shows only
the first problem in the order params.yaml is read (a mapping's unknown keys before its known
keys, known keys in schema order), as one `UserError` line naming the dotted key, the value
as written in params.yaml and what is allowed: the field's `description`, which every field
of the schema carries for this purpose.

The schema raises two kinds of its own errors, built here: `detail` (a better phrase than
"<key>=<value> is invalid" for the field it is raised at) and `rule` (a whole line, for
checks that involve several keys). Knows no schema of its own: `user_error` is given it.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from prunelab.errors import UserError

RULE = "params_rule"
DETAIL = "params_detail"
_MISSING = object()


def rule(message: str) -> PydanticCustomError:
    """A complaint that is a whole line (after `params.yaml: `), e.g. a cross-key relation."""
    return PydanticCustomError(RULE, "{message}", {"message": message})


def detail(text: str, allowed: str | None = None) -> PydanticCustomError:
    """A complaint about the field it is raised at: `<key> <text>; allowed: <allowed>`, where
    `allowed` defaults to the field's description."""
    ctx = {"text": text} if allowed is None else {"text": text, "allowed": allowed}
    return PydanticCustomError(DETAIL, "{text}", ctx)


@dataclass(frozen=True)
class _Place:
    """Where an issue is in params.yaml: pydantic's `loc` read against the schema."""

    keys: tuple[str, ...]  # the dotted key's parts, as far as they are params.yaml keys
    parent: type[BaseModel]  # the section (or the whole file) the last key belongs to
    known: bool  # whether the last key is one the schema has
    section: type[BaseModel] | None  # what the key names when it names a section
    field: FieldInfo | None  # what the key names when it names a value
    item: int | None  # the list entry, for an issue inside a list value
    order: tuple[int, ...]  # the keys' positions: sorts issues in the order params.yaml is checked


def _section_model(info: FieldInfo) -> type[BaseModel] | None:
    annotation = info.annotation
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _locate(schema: type[BaseModel], loc: tuple[int | str, ...]) -> _Place:
    keys: list[str] = []
    order: list[int] = []
    parent, section, field, item = schema, None, None, None
    model = schema
    for part in loc:
        if field is not None:
            # Inside a value: a list index, then pydantic's union-branch tags (not params.yaml keys).
            if isinstance(part, int):
                item = part
            break
        parent = model
        if not isinstance(part, str) or part not in model.model_fields:
            # An unknown key is reported before the known keys of its mapping.
            keys.append(str(part))
            order.append(-1)
            return _Place(tuple(keys), parent, False, None, None, None, tuple(order))
        keys.append(part)
        order.append(list(model.model_fields).index(part))
        info = model.model_fields[part]
        section = _section_model(info)
        if section is None:
            field = info
        else:
            model = section
    return _Place(tuple(keys), parent, True, section, field, item, tuple(order))


def _dotted_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every key of the schema, dotted, sections before their keys."""
    keys = []
    for name, info in model.model_fields.items():
        keys.append(f"{prefix}{name}")
        section = _section_model(info)
        if section is not None:
            keys.extend(_dotted_keys(section, f"{prefix}{name}."))
    return keys


def _keys_of(model: type[BaseModel], prefix: str) -> str:
    return ", ".join(f"{prefix}{name}" for name in model.model_fields)


def _raw_value(raw: Any, place: _Place, default: Any) -> Any:
    """The value as params.yaml gave it (a list, not the tuple it became), else pydantic's input."""
    node = raw
    for part in (*place.keys, *([] if place.item is None else [place.item])):
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return default
    return node


def _unknown_key(schema: type[BaseModel], place: _Place, value: Any) -> str:
    """Name the closest valid key. A misspelt section (`trian:` holding `epochs`) is reported
    by its first key, `trian.epochs`, so the hint can be the full key `train.epochs`."""
    dotted = ".".join(place.keys)
    if isinstance(value, dict) and value:
        dotted = f"{dotted}.{next(iter(value))}"
    close = difflib.get_close_matches(dotted, _dotted_keys(schema), n=1, cutoff=0.7)
    hint = f"did you mean {close[0]}? " if close else ""
    prefix = "".join(f"{key}." for key in place.keys[:-1])
    return f"unknown key {dotted}; {hint}allowed: {_keys_of(place.parent, prefix)}"


def _message(schema: type[BaseModel], issue: dict[str, Any], raw: Any) -> str:
    kind, ctx = issue["type"], issue.get("ctx") or {}
    if kind == RULE:
        return ctx["message"]
    place = _locate(schema, issue["loc"])
    if not place.keys:
        return f"the file holds {raw!r}; allowed: a mapping of the keys {_keys_of(schema, '')}"
    if not place.known:
        return _unknown_key(schema, place, issue["input"])
    key = ".".join(place.keys)
    if kind == "missing":
        prefix = "".join(f"{part}." for part in place.keys[:-1])
        return f"{key} is missing; allowed: a value for each of {_keys_of(place.parent, prefix)}"
    value = _raw_value(raw, place, issue["input"])
    if place.field is None:
        return f"{key}={value!r} is invalid; allowed: a mapping of the keys {_keys_of(place.section, key + '.')}"
    allowed = ctx.get("allowed") or place.field.description
    if kind == DETAIL:
        return f"{key} {ctx['text']}; allowed: {allowed}"
    if place.item is not None:
        return f"{key} contains {value!r}; allowed: {allowed}"
    return f"{key}={value!r} is invalid; allowed: {allowed}"


def user_error(error: ValidationError, raw: Any, schema: type[BaseModel]) -> UserError:
    """The first of `error`'s issues, as params.yaml is read, in one line. At one key, the
    schema's own wording (`detail`, `rule`) wins over pydantic's (e.g. over the branch of a
    union, `all` or a list, that the value was never meant for), and a bad list entry wins
    over the list's length, which pydantic counts after dropping the bad entries."""

    def rank(issue: dict[str, Any]) -> tuple[tuple[int, ...], int, int]:
        place = _locate(schema, issue["loc"])
        if issue["type"] in (RULE, DETAIL):
            return place.order, 0, 0
        return (place.order, 1, place.item) if place.item is not None else (place.order, 2, 0)

    first = min(error.errors(include_url=False), key=rank)
    return UserError(f"params.yaml: {_message(schema, first, raw)}")
