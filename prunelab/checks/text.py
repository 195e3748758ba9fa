"""A small typed checker for the CSV tables the stages write with `prunelab.runtime.write_table`.

It reads a table as its writer prints it (pandas' `to_csv`: a header line, one line per row,
fields joined by commas, floats in the stage's float_format, no index, and a line end after
every line), before pandas parses it. So a line cut short, a lost or extra field or column, a
number cut short (`93.33` where the writer prints `93.333333`), an empty field (how NaN is
written), `nan`/`inf` text, or a number out of its range is refused with the line and column
named, where pandas would fill in NaN, coerce a column to text, or read a truncated last line
as a complete row.

`parse_table` returns the parsed columns to the other checks of this package only; the readers
parse the text themselves (pandas), so a check never changes what a stage computes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from prunelab.errors import UserError
from prunelab.messages import shown

Kind = Literal["int", "float", "text", "counts"]  # counts: integers joined by "/", e.g. 16/32/64


def refusal(path: Path | str, problem: str, stage: str) -> UserError:
    """The one line for a bad input file: the file, what is wrong, and the stage that rewrites it."""
    return UserError(f"{path}: {problem}; rerun {stage}")


@dataclass(frozen=True)
class Column:
    """One column as the writer prints it: a name (text), an integer, or a float with
    `decimals` digits after the point (the stage's float_format), and its allowed range."""

    name: str
    kind: Kind
    decimals: int | None = None
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # (low, high] rather than [low, high]
    nullable: bool = False  # an empty field is allowed (a join that found nothing, one seed's interval)

    def pattern(self) -> re.Pattern[str]:
        if self.kind == "int":
            body = r"0|-?[1-9][0-9]{0,17}"
        elif self.kind == "float":
            body = rf"-?(?:0|[1-9][0-9]*)\.[0-9]{{{self.decimals}}}"
        elif self.kind == "counts":
            body = r"[0-9]+(?:/[0-9]+)*"
        else:
            body = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*"  # a name, or a module path (layer1.0.conv1)
        return re.compile(f"(?:{body}){'|' if self.nullable else ''}")

    def allowed(self) -> str:
        kind = {
            "int": "an integer",
            "float": f"a number with {self.decimals} decimals",
            "text": "a name (or a dotted module path)",
            "counts": "integers joined by /",
        }[self.kind]
        return kind + (" or empty" if self.nullable else "")

    def range_text(self) -> str:
        if self.low is not None and self.high is not None:
            return f"{'(' if self.low_open else '['}{self.low:g}, {self.high:g}]"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        return f"<= {self.high:g}"


@dataclass(frozen=True)
class TableFormat:
    """A table's declared format: what it is, the stage that writes it, its columns in order,
    and the columns that name a row (no two rows share them)."""

    what: str
    stage: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


@dataclass(frozen=True)
class Parsed:
    """A checked table: int columns as int64 arrays, float columns as float64 (NaN where a
    nullable field is empty), text columns as lists of str."""

    columns: dict[str, Any]
    n_rows: int

    def keys(self, names: Sequence[str]) -> list[tuple[Any, ...]]:
        # As Python values (tolist), so keys compare and print as params.yaml's values do.
        cols = [c.tolist() if isinstance(c, np.ndarray) else c for c in (self.columns[n] for n in names)]
        return list(zip(*cols, strict=True)) if cols else []


def parse_table(path: Path | str, text: str, fmt: TableFormat) -> Parsed:
    """Check `text` (a whole CSV file) against `fmt`, and return its columns."""

    def refuse(problem: str) -> UserError:
        return refusal(path, problem, fmt.stage)

    if not text:
        raise refuse(f"empty file, not a {fmt.what}")
    if not text.endswith("\n"):
        raise refuse("the last line has no line end: the file is cut short")
    lines = text[:-1].split("\n")
    header = lines[0].split(",")
    if header != fmt.names:
        missing = [n for n in fmt.names if n not in header]
        extra = [shown(h) for h in header if h not in fmt.names]
        parts = [f"missing {', '.join(missing)}" if missing else "", f"unexpected {', '.join(extra)}" if extra else ""]
        detail = "; ".join(p for p in parts if p) or "columns out of order"
        raise refuse(f"not a {fmt.what} (header: {detail})")
    rows = [line.split(",") for line in lines[1:]]
    width = len(fmt.columns)
    for number, fields in enumerate(rows, start=2):
        if len(fields) != width:
            raise refuse(f"line {number} has {len(fields)} fields, the header {width} (a damaged or cut-short line)")
    columns: dict[str, Any] = {}
    for j, column in enumerate(fmt.columns):
        raw = [fields[j] for fields in rows]
        pattern = column.pattern()
        for number, value in enumerate(raw, start=2):
            if not pattern.fullmatch(value):
                shown_value = shown(value) if value else "(empty)"
                raise refuse(f"line {number}: {column.name}={shown_value} is not {column.allowed()}")
        if column.kind in ("text", "counts"):
            columns[column.name] = raw
            continue
        if column.kind == "int":
            values = np.array([int(v) for v in raw], dtype=np.int64)
        else:
            values = np.array([float(v) if v else np.nan for v in raw], dtype=np.float64)
        bad = _outside(values, column)
        if bad is not None:
            raise refuse(f"line {bad + 2}: {column.name}={raw[bad]} is outside {column.range_text()}")
        columns[column.name] = values
    return Parsed(columns, len(rows))


def _outside(values: np.ndarray, column: Column) -> int | None:
    """The first row whose value leaves the column's range (empty fields are not checked here)."""
    bad = np.zeros(len(values), dtype=bool)
    with np.errstate(invalid="ignore"):
        if column.low is not None:
            bad |= (values <= column.low) if column.low_open else (values < column.low)
        if column.high is not None:
            bad |= values > column.high
    hits = np.flatnonzero(bad)
    return int(hits[0]) if len(hits) else None


def describe_key(names: Sequence[str], key: tuple[Any, ...]) -> str:
    return ", ".join(f"{n}={shown(v)}" for n, v in zip(names, key, strict=True))


def check_rows(path: Path | str, parsed: Parsed, fmt: TableFormat, expected: Sequence[tuple[Any, ...]]) -> None:
    """The rows, named by `fmt.key`, are exactly `expected`, in that order (the order the writer uses)."""
    actual = parsed.keys(fmt.key)
    if actual == list(expected):
        return
    check_unique_rows(path, parsed, fmt)
    present, wanted = set(actual), set(expected)
    missing = [k for k in expected if k not in present]
    extra = [k for k in actual if k not in wanted]
    if extra:
        problem = f"row {describe_key(fmt.key, extra[0])} is not one params.yaml implies"
    elif missing:
        problem = (
            f"{len(missing)} of the {len(expected)} rows params.yaml implies are missing "
            f"(first: {describe_key(fmt.key, missing[0])})"
        )
    else:
        problem = "the rows are out of order"
    raise refusal(path, problem, fmt.stage)


def check_unique_rows(path: Path | str, parsed: Parsed, fmt: TableFormat) -> None:
    """No two rows share their key."""
    seen: set[tuple[Any, ...]] = set()
    for key in parsed.keys(fmt.key):
        if key in seen:
            raise refusal(path, f"row {describe_key(fmt.key, key)} appears twice", fmt.stage)
        seen.add(key)
