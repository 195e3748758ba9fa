"""From pydantic's `ValidationError` to the one line a user reads, for every file read through a
pydantic model: params.yaml (`prunelab.params`) and the JSON documents the stages write and read
(`prunelab.checks`).

pydantic reports every problem, with a location tuple and its own wording. A reader shows only
the first problem in the order the file is read (a mapping's unknown keys before its known keys,
known keys in schema order, the entries of a mapping of names in the file's order), as one line
naming the dotted key, the value as written in the file and what is allowed: the field's
`description`, which every value field of a schema carries for this purpose.

Schemas raise three kinds of their own errors, built here:

* `detail`: a better phrase than "<key>=<value> is invalid" about the key it is raised at (a field:
  `prune.criteria lists random more than once`, or a mapping: `criteria.random.acc_at_half says
  clipped, but no end of its interval is a bound of its range`);
* `rule`: a whole line, for checks that involve several keys of the whole file;
* `at`: a line about the mapping it is raised in, naming keys from there (a cross-field check of a
  nested mapping, which does not know where in the file it sits): `ratio` raising
  `at("speedup_batch256_high=1.0 is below speedup_batch256_low=1.1")` reads
  `ratio.speedup_batch256_high=1.0 is below ...`.

Knows no schema of its own: `first_problem` is given it. Validation only (no stage's DVC dep).
"""

from __future__ import annotations

import difflib
import functools
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

RULE = "one_line_rule"
DETAIL = "one_line_detail"
AT = "one_line_at"
SHOWN_LIMIT = 80  # a value longer than this (a whole section of a document) is cut in the line


def rule(message: str) -> PydanticCustomError:
    """A complaint that is a whole line (after `params.yaml: ` or `<file>: `), e.g. a cross-key relation."""
    return PydanticCustomError(RULE, "{message}", {"message": message})


def detail(text: str, allowed: str | None = None) -> PydanticCustomError:
    """A complaint about the key it is raised at: `<key> <text>; allowed: <allowed>`, where
    `allowed` defaults to the field's description (a mapping has none: then no `allowed`)."""
    ctx = {"text": text} if allowed is None else {"text": text, "allowed": allowed}
    return PydanticCustomError(DETAIL, "{text}", ctx)


def at(text: str) -> PydanticCustomError:
    """A complaint raised in a mapping's validator, naming keys of that mapping: `<mapping>.<text>`
    (at the top of the file, `<text>`)."""
    return PydanticCustomError(AT, "{text}", {"text": text})


def shown(value: Any, limit: int = SHOWN_LIMIT) -> str:
    """A value from a file as it may appear in a one-line message: its repr, cut to `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --------------------------------------------------------------------------- reading a schema's annotations
def _strip(annotation: Any) -> Any:
    """`X | None` → X and `Annotated[X, ...]` → X, so a section or mapping is seen through both."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def _model(annotation: Any) -> type[BaseModel] | None:
    stripped = _strip(annotation)
    return stripped if isinstance(stripped, type) and issubclass(stripped, BaseModel) else None


def _mapping_values(annotation: Any) -> Any:
    """The value annotation of a mapping of names (`dict[str, X]` → X), else None."""
    stripped = _strip(annotation)
    return get_args(stripped)[1] if get_origin(stripped) is dict else None


def _description(annotation: Any) -> str | None:
    """A description carried inside an annotation (`Annotated[float, Field(description=...)]`, perhaps `| None`)."""
    origin = get_origin(annotation)
    if origin is Annotated:
        for meta in get_args(annotation)[1:]:
            if isinstance(meta, FieldInfo) and meta.description:
                return meta.description
        return _description(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return next((d for a in get_args(annotation) if (d := _description(a))), None)
    return None


def _allowed(info: FieldInfo) -> str | None:
    return info.description or _description(info.annotation)


@functools.cache
def _extra_values(model: type[BaseModel]) -> Any:
    """What a model that takes extra keys types their values as (`__pydantic_extra__: dict[str, X]` → X)."""
    if model.model_config.get("extra") != "allow":
        return None
    hints = typing.get_type_hints(model, include_extras=True)
    return _mapping_values(hints.get("__pydantic_extra__")) or Any


def _field_named(model: type[BaseModel], key: str) -> str | None:
    """The field a key of the file names: its name, or one of its validation aliases (an older name)."""
    for name, info in model.model_fields.items():
        alias = info.validation_alias
        choices = getattr(alias, "choices", [alias])
        if key == name or key in choices:
            return name
    return None


# --------------------------------------------------------------------------- where an issue is
@dataclass(frozen=True)
class _Place:
    """Where an issue is in the file: pydantic's `loc` read against the schema."""

    keys: tuple[str, ...]  # the dotted key's parts, as far as they are the file's keys
    parent: type[BaseModel] | None  # the mapping the last key belongs to (None: a mapping of names)
    known: bool  # whether the last key is one the schema has (or a name of a mapping of names)
    section: type[BaseModel] | None  # what the key names when it names a section
    value: bool  # whether the key names a value (not a section or mapping)
    allowed: str | None  # the value's (or mapping's) "allowed" text
    item: int | None  # the list entry, for an issue inside a list value
    order: tuple[int, ...]  # the keys' positions: sorts issues in the order the file is checked


def _position(node: Any, key: str) -> int:
    """A name's position in the file's mapping (the order a mapping of names is checked in)."""
    return list(node).index(key) if isinstance(node, dict) and key in node else 0


def _locate(schema: type[BaseModel], loc: tuple[int | str, ...], raw: Any) -> _Place:
    keys: list[str] = []
    order: list[int] = []
    model: type[BaseModel] | None = schema
    parent: type[BaseModel] | None = schema
    values: Any = None  # inside a mapping of names: the annotation of its values
    section, allowed, value, item = None, None, False, None
    node = raw
    for part in loc:
        if value:
            # Inside a value: a list index, then pydantic's union-branch tags (not the file's keys).
            if isinstance(part, int):
                item = part
            break
        if values is not None:  # a name of a mapping of names (a criterion, a layer): any name is known
            keys.append(str(part))
            order.append(_position(node, str(part)))
            annotation, values, parent = values, None, None
        else:
            assert model is not None
            parent = model
            name = _field_named(model, part) if isinstance(part, str) else None
            if name is None:
                extra = _extra_values(model) if isinstance(part, str) else None
                if extra is None:
                    # An unknown key is reported before the known keys of its mapping.
                    keys.append(str(part))
                    order.append(-1)
                    return _Place(tuple(keys), parent, False, None, False, None, None, tuple(order))
                keys.append(part)
                order.append(len(model.model_fields) + _position(node, part))
                annotation = extra
            else:
                keys.append(str(part))
                order.append(list(model.model_fields).index(name))
                annotation = model.model_fields[name].annotation
                allowed = _allowed(model.model_fields[name])
        node = node.get(part) if isinstance(node, dict) else None
        model, section = _model(annotation), _model(annotation)
        values = _mapping_values(annotation)
        value = model is None and values is None
        if value or values is not None:
            allowed = _description(annotation) or allowed
    return _Place(tuple(keys), parent, True, section, value, allowed, item, tuple(order))


def _dotted_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every key of the schema, dotted, sections before their keys."""
    keys = []
    for name, info in model.model_fields.items():
        keys.append(f"{prefix}{name}")
        section = _model(info.annotation)
        if section is not None:
            keys.extend(_dotted_keys(section, f"{prefix}{name}."))
    return keys


def _keys_of(model: type[BaseModel], prefix: str, required: bool = False) -> str:
    """The model's keys, dotted (`required`: only those the file must have)."""
    return ", ".join(
        f"{prefix}{name}" for name, info in model.model_fields.items() if info.is_required() or not required
    )


def _raw_value(raw: Any, place: _Place, default: Any) -> Any:
    """The value as the file gave it (a list, not the tuple it became), else pydantic's input."""
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
    prefix = "".join(f"{key}." for key in place.keys[:-1])
    assert place.parent is not None
    candidates = dict.fromkeys([*_dotted_keys(schema), *_dotted_keys(place.parent, prefix)])
    close = difflib.get_close_matches(dotted, list(candidates), n=1, cutoff=0.7)
    hint = f"did you mean {close[0]}? " if close else ""
    return f"unknown key {dotted}; {hint}allowed: {_keys_of(place.parent, prefix)}"


def _message(schema: type[BaseModel], issue: dict[str, Any], raw: Any) -> str:
    kind, ctx = issue["type"], issue.get("ctx") or {}
    if kind == RULE:
        return ctx["message"]
    place = _locate(schema, issue["loc"], raw)
    key = ".".join(place.keys)
    if kind == AT:
        return f"{key}.{ctx['text']}" if key else ctx["text"]
    if not place.keys:
        return f"the file holds {shown(raw)}; allowed: a mapping of the keys {_keys_of(schema, '')}"
    if not place.known:
        return _unknown_key(schema, place, issue["input"])
    if kind == "extra_forbidden":  # a field's older name, beside the field under its own name
        return f"{key} is an older name of a key the mapping has already; allowed: one of the two names"
    if kind == "missing":
        prefix = "".join(f"{part}." for part in place.keys[:-1])
        every = _keys_of(place.parent, prefix, required=True) if place.parent is not None else key
        return f"{key} is missing; allowed: a value for each of {every}"
    allowed = ctx.get("allowed") or (place.allowed if place.value else None)
    if kind == DETAIL:
        return f"{key} {ctx['text']}" + (f"; allowed: {allowed}" if allowed else "")
    value = shown(_raw_value(raw, place, issue["input"]))
    if place.section is not None:
        return f"{key}={value} is invalid; allowed: a mapping of the keys {_keys_of(place.section, key + '.')}"
    if not place.value:
        return f"{key}={value} is invalid; allowed: {place.allowed or 'a mapping of names'}"
    if place.item is not None:
        return f"{key} contains {value}; allowed: {allowed}"
    return f"{key}={value} is invalid; allowed: {allowed}"


def first_problem(error: ValidationError, raw: Any, schema: type[BaseModel]) -> str:
    """The first of `error`'s issues, as the file is read, in one line (with no file name: the
    caller adds `params.yaml: ` or `<file>: ... ; rerun <stage>`). At one key, the schema's own
    wording (`detail`, `rule`, `at`) wins over pydantic's (e.g. over the branch of a union, `all`
    or a list, that the value was never meant for), and a bad list entry wins over the list's
    length, which pydantic counts after dropping the bad entries."""

    def rank(issue: dict[str, Any]) -> tuple[tuple[int, ...], int, int]:
        place = _locate(schema, issue["loc"], raw)
        if issue["type"] in (RULE, DETAIL, AT):
            return place.order, 0, 0
        return (place.order, 1, place.item) if place.item is not None else (place.order, 2, 0)

    first = min(error.errors(include_url=False), key=rank)
    return _message(schema, first, raw)
