"""Reading one JSON document the stages wrote: typed access where every problem is a one-line refusal
naming the file, the key and the stage that writes it (`prunelab.checks.text.refusal`). The checks of each
document (summary.json, metrics.json, efficiency.json, info.json) sit in their own modules beside it."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from prunelab.checks.text import refusal, shown


class DocumentReader:
    """Typed access to one JSON document; every problem is a one-line refusal naming the key."""

    def __init__(self, path: Path | str, stage: str) -> None:
        self.path, self.stage = path, stage

    def refuse(self, problem: str) -> Exception:
        return refusal(self.path, problem, self.stage)

    def mapping(self, value: Any, where: str) -> dict:
        if not isinstance(value, dict):
            raise self.refuse(f"{where or 'the file'} is not a JSON object")
        return value

    def get(self, data: dict, key: str, where: str = "") -> Any:
        if key not in data:
            raise self.refuse(f"key {where}{key} is missing")
        return data[key]

    def number(
        self,
        data: dict,
        key: str,
        where: str = "",
        low: float | None = None,
        high: float | None = None,
        integer: bool = False,
        low_open: bool = False,
        infinite: bool = False,
    ) -> float:
        value = self.get(data, key, where)
        name = f"{where}{key}"
        if isinstance(value, bool) or not isinstance(value, int | float) or (integer and not isinstance(value, int)):
            raise self.refuse(f"{name}={shown(value)} is not {'an integer' if integer else 'a number'}")
        if math.isnan(value) or (math.isinf(value) and not infinite):
            raise self.refuse(f"{name}={value} is not a finite number")
        too_low = low is not None and (value <= low if low_open else value < low)
        if too_low or (high is not None and value > high):
            raise self.refuse(f"{name}={value} is outside {value_range(low, high, low_open)}")
        return value


def value_range(low: float | None, high: float | None, low_open: bool) -> str:
    if high is None:
        return f"{'>' if low_open else '>='} {low:g}"
    return f"{'(' if low_open else '['}{low:g}, {high:g}]"


def close(a: float, b: float, tol: float) -> bool:
    return abs(a - b) <= tol


def whole_samples(value: float, n: int) -> bool:
    """Whether a percentage of `n` samples is a whole number of them (accuracy, majority share)."""
    count = value * n / 100.0
    return abs(count - round(count)) <= 1e-6


def exact_keys(
    doc: DocumentReader, data: dict, expected: set[str], where: str, optional: set[str] = frozenset()
) -> None:
    """`data` has exactly the keys `expected` (and perhaps some of `optional`)."""
    missing, extra = sorted(expected - set(data)), sorted(set(data) - expected - optional)
    if missing or extra:
        detail = f"missing {', '.join(missing)}" if missing else f"unexpected {', '.join(map(shown, extra))}"
        raise doc.refuse(f"{where or 'the file'} is not as {doc.stage} writes it ({detail})")
