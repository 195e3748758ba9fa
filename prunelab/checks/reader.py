"""Reading one JSON document the stages wrote through a pydantic model: `Document` (strict types, no
unknown key, finite numbers), the number types every document's fields are made of (each with its
"allowed" text), and `check_document`, which turns pydantic's first error into the one-line refusal
naming the file, the key and the stage that writes it (`prunelab.messages.first_problem`, the same
line params.yaml gets, then `prunelab.checks.text.refusal`).

The models of each document (info.json, summary.json, metrics.json, efficiency.json) sit in their own
modules beside it; their cross-field checks are model validators that read what the document must
agree with (params' implied facts, a sweep table, the study's metrics) from the validation context.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, model_validator

from prunelab.checks.text import refusal
from prunelab.messages import at, detail, first_problem, rule, shown


class Document(BaseModel):
    """A mapping in a JSON document as its stage writes it: JSON's types as they are (strict: an
    integer key refuses 1.0, a number refuses true and "90"), no key the stage does not write, no
    NaN or infinity unless a field says so."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True)
    # A mapping that takes extra keys (extra="allow") whose names follow a pattern: their prefixes. An
    # extra key without one is refused before its value is read (the value's type says nothing useful then).
    extra_prefixes: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="before")
    @classmethod
    def _extra_keys_named_as_written(cls, data: Any) -> Any:
        if cls.extra_prefixes and isinstance(data, dict):
            names = set(cls.model_fields)
            for info in cls.model_fields.values():
                names.update(c for c in getattr(info.validation_alias, "choices", ()) if isinstance(c, str))
            for key in data:
                if key not in names and not (isinstance(key, str) and key.startswith(cls.extra_prefixes)):
                    allowed = [*cls.model_fields, *(f"{prefix}<name>" for prefix in cls.extra_prefixes)]
                    raise at(f"{shown(key)[1:-1]} is an unknown key; allowed: {', '.join(allowed)}")
        return data


# The numbers documents are made of. Strict: an integer is a JSON integer; a number may be either.
Number = Annotated[float, Field(description="a finite number")]
Whole = Annotated[int, Field(ge=0, description="an integer >= 0")]
Count = Annotated[int, Field(ge=1, description="an integer >= 1")]
Flag = Annotated[int, Field(ge=0, le=1, description="0 or 1")]
One = Annotated[int, Field(ge=1, le=1, description="1")]
Positive = Annotated[float, Field(gt=0, description="a number > 0")]
NonNegative = Annotated[float, Field(ge=0, description="a number >= 0")]
Score = Annotated[float, Field(ge=0, le=100, description="a score in percent, in [0, 100]")]
Floor = Annotated[float, Field(gt=0, le=100, description="a score in percent, in (0, 100]")]  # chance level
Margin = Annotated[float, Field(gt=0, le=100, description="a margin in points, in (0, 100]")]
Share = Annotated[float, Field(ge=0, le=1, description="a share, in [0, 1]")]
Points = Annotated[float, Field(ge=-100, le=100, description="a difference of scores in points, in [-100, 100]")]


class Interval(Document):
    """An interval over seeds (`prunelab.study.intervals.interval_entry`, `bounded_entry`): a mean and (two
    seeds or more) the interval's ends, which hold it; `clipped: 1` only where an end was cut to a bound of
    the quantity's range (`bounds`; None: a quantity with no range, never clipped)."""

    bounds: ClassVar[tuple[float, float] | None] = None
    mean: Number
    ci_low: Number | None = None
    ci_high: Number | None = None
    clipped: One | None = None  # where an end of the interval was cut to a bound of the range

    @model_validator(mode="after")
    def _holds_its_mean(self) -> Interval:
        low, high = self.ci_low, self.ci_high
        if (low is None) != (high is None):
            raise detail("has one end of its interval only")
        if low is not None and high is not None and not low <= self.mean <= high:
            raise detail(f"has the interval [{low}, {high}], which does not hold its mean {self.mean}")
        if self.clipped is not None and (
            self.bounds is None or low is None or (low != self.bounds[0] and high != self.bounds[1])
        ):
            raise detail("says clipped, but no end of its interval is a bound of its range")
        return self


def present_if(expected: bool, value: Any, where: str) -> None:
    """A key the study writes where a criterion is compared with random (every criterion but random, when
    random is swept), and only there: `rule` naming the key otherwise."""
    if expected and value is None:
        raise rule(f"{where} is missing: every criterion but random is compared with random")
    if not expected and value is not None:
        raise rule(f"{where} is unexpected: only a criterion beside random is compared with it")


def context(info: ValidationInfo) -> dict[str, Any]:
    """What the document is checked against (`check_document`'s `against`): empty when alone."""
    return info.context or {}


def check_document(
    path: Path | str, raw: Any, model: type[BaseModel], stage: str, against: dict[str, Any] | None = None
) -> None:
    """`raw` (a parsed JSON document) read through `model`; the first problem is one line naming the file,
    the key and `stage`, the stage that rewrites it. `against`: what the model's validators compare the
    document with (None or absent: the document is checked on its own)."""
    try:
        model.model_validate(raw, context={k: v for k, v in (against or {}).items() if v is not None})
    except ValidationError as error:
        raise refusal(path, first_problem(error, raw, model), stage) from None


def close(a: float, b: float, tol: float) -> bool:
    return abs(a - b) <= tol


def whole_samples(value: float, n: int) -> bool:
    """Whether a percentage of `n` samples is a whole number of them (accuracy, majority share)."""
    count = value * n / 100.0
    return abs(count - round(count)) <= 1e-6
