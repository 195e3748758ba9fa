"""params.yaml's schema: one frozen pydantic model per section, and the cross-key relations.

Strict on purpose: params.yaml is edited by hand and by `dvc exp run -S`, and a silently
coerced value would run a different study than the one asked for. So a bool is not an int,
300.5 is not an int, `.inf` is not a step size, text is not a number; an int is a float
(`lr: 1`). Lists become tuples, so a section is immutable all the way down.

Every value field's `description` is its "allowed" text: `prunelab.messages.first_problem` quotes it when
the value is refused, so the schema and the error line cannot drift apart (tested).

No torch at import (tested): what names are checked against is torch-free (the `ARCHS` and
`SOURCES` registries, and the criteria's names and `NAMED_KS` from the leaf `prunelab.pruning.names`,
not the criteria's code), and only `train.device: cuda` asks torch whether CUDA exists.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from prunelab.messages import detail, rule
from prunelab.models.archs import ARCH_CHOICES, Arch, arch_of, builder_file, user_builder
from prunelab.models.records import ChannelGroup
from prunelab.network import STRATEGY_NAMES
from prunelab.prepare.sources import SOURCES
from prunelab.pruning.names import CRITERION_NAMES, NAMED_KS, named_k

MAX_SEEDS = 100
SEED_RANGE = (0, 2**31 - 1)

# Params that only mean something for one task. For the other task they are named as
# ignored in the stage log (never silently misread).
TASK_ONLY_KEYS: dict[str, list[str]] = {
    "pairs": ["data.n_pairs", "data.same_fraction"],
    "classification": [],
}


# --------------------------------------------------------------------------- field helpers
# Each returns the field's constraints together with its allowed text, from one place.
def one_of(options: Iterable[str]) -> str:
    return "one of " + ", ".join(options)


def choice(options: Iterable[str]) -> Any:
    """A `Literal` field's allowed text (the Literal itself is the annotation)."""
    return Field(description=one_of(options))


def _bounds_text(low: int, high: int | None) -> str:
    return f" from {low} to {high}" if high is not None else f" >= {low}"


def integer(low: int, high: int | None = None) -> Any:
    return Field(ge=low, le=high, description=f"an integer{_bounds_text(low, high)}")


def positive_number() -> Any:
    # allow_inf_nan=False: `.inf` is a YAML float too, and no step size or rate may be infinite.
    return Field(gt=0, allow_inf_nan=False, description="a finite number > 0")


def fraction(allow_zero: bool = False) -> Any:
    """A share strictly inside (0, 1); `allow_zero` also admits 0 (meaning 'none')."""
    if allow_zero:
        return Field(ge=0, lt=1, description="a number in [0, 1)")
    return Field(gt=0, lt=1, description="a number in (0, 1)")


T = TypeVar("T")


def _yaml_list(value: Any) -> Any:
    """A YAML list (or a tuple, from Python callers) becomes a tuple: strict mode takes no list
    for a tuple. Anything else (a scalar, a mapping, a `!!set`) is refused with the field's text."""
    if isinstance(value, list | tuple):
        return tuple(value)
    raise PydanticCustomError("list_type", "Input should be a list")


Listed = Annotated[tuple[T, ...], BeforeValidator(_yaml_list)]


def _repeated(values: tuple[Any, ...]) -> str:
    """The entries given more than once, in order, as text ('' when all are distinct)."""
    repeated = sorted({v for v in values if values.count(v) > 1}, key=lambda v: (isinstance(v, str), v))
    return ", ".join(map(str, repeated))


def _distinct(values: tuple[Any, ...]) -> tuple[Any, ...]:
    repeated = _repeated(values)
    if repeated:
        raise detail(f"lists {repeated} more than once")
    return values


def _distinct_sorted(values: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(sorted(_distinct(values)))


def _known_arch(name: str) -> str:
    """A registry name or `torchvision:<name>`. Whether torchvision has that model is build_model's
    check: it needs torchvision imported, and validation imports no torch."""
    if arch_of(name) is None:
        raise PydanticCustomError("arch_unknown", "unknown architecture")
    return name


# Registry names as Literal types (model.arch: `_known_arch`), so a name is checked where it is read.
SourceName = Literal[tuple(SOURCES)]
ArchName = Annotated[str, AfterValidator(_known_arch)]
CriterionName = Literal[tuple(CRITERION_NAMES)]
NamedK = Literal[tuple(NAMED_KS)]

Seed = Annotated[int, Field(ge=SEED_RANGE[0], le=SEED_RANGE[1])]
# prune.ks: K >= 0, distinct, sorted; K < P is a relation (P depends on model.arch).
PruneKs = Annotated[Listed[Annotated[int, Field(ge=0)]], Field(min_length=1), AfterValidator(_distinct_sorted)]
FinetuneK = NamedK | Annotated[int, Field(ge=1)]


# --------------------------------------------------------------------------- sections
class Section(BaseModel):
    """What every section shares: unknown keys refused, no coercion, read-only."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


PathText = Annotated[str, Field(min_length=1)]


class DataParams(Section):
    source: SourceName = choice(SOURCES)
    # Where the source reads its files: the torchvision sources' downloads, imagefolder's tree. A DVC
    # dependency of prepare_data, so it must exist (data/raw/README.md keeps the default in git).
    path: PathText = Field(description="a folder (data/raw for the downloaded sources; imagefolder: the image tree)")
    task: Literal["pairs", "classification"] = choice(["pairs", "classification"])
    n_pairs: int = integer(10)  # pairs task only
    test_fraction: float = fraction()
    same_fraction: float = fraction()  # pairs task only
    val_fraction: float = fraction(allow_zero=True)
    image_size: Literal["none"] | Annotated[int, Field(ge=8, le=4096)] = Field(
        description="none (the images' own size) or an integer side from 8 to 4096 to resize to (imagefolder)"
    )

    def check_files(self) -> None:
        """The filesystem facts prepare_data needs before any work: data.path exists, as a folder
        for imagefolder. One-line UserError naming the key."""
        from prunelab.errors import UserError

        folder = Path(self.path)
        if self.source == "imagefolder" and not folder.is_dir():
            what = "is not a folder" if folder.exists() else "does not exist"
            raise UserError(
                f"params.yaml: data.path={self.path!r} {what}; allowed: a folder of class subfolders "
                "(torchvision's ImageFolder layout, optionally under train/ and test/)"
            )


class ModelParams(Section):
    arch: ArchName = Field(description=ARCH_CHOICES)
    # What DVC reruns the model's stages on: the user's builder module and weights live in it.
    source: PathText = Field(
        description="a file or folder holding model.arch's module and model.weights (prunelab/models for the "
        "built-in architectures)"
    )
    weights: Literal["none"] | PathText = Field(
        description="none (train from the seed) or a state_dict file inside model.source"
    )

    def check_files(self) -> None:
        """What the train stage checks before any work: model.source exists; a user builder's module
        file and model.weights exist and lie inside model.source (so DVC reruns on their change).
        Nothing is imported. One-line UserError naming the key."""
        from prunelab.errors import UserError

        source = Path(self.source)
        if not source.exists():
            raise UserError(
                f"params.yaml: model.source={self.source!r} does not exist; allowed: the file or folder of "
                "your model (its builder module and weights), or prunelab/models"
            )
        found = user_builder(self.arch)
        if found is not None:
            module_file = builder_file(found[0])
            if module_file is None:
                raise UserError(
                    f"params.yaml: model.arch={self.arch!r}: no module {found[0]} on the project root or "
                    "PYTHONPATH; allowed: <module>:<function> of an importable Python file"
                )
            if not _inside(module_file, source):
                raise UserError(
                    f"params.yaml: model.source={self.source!r} does not hold {module_file}, which model.arch "
                    "imports (DVC would not rerun when it changes); allowed: that file or a folder above it"
                )
        if self.weights != "none":
            weights = Path(self.weights)
            if not weights.is_file():
                raise UserError(
                    f"params.yaml: model.weights={self.weights!r} does not exist; allowed: none or a state_dict "
                    "file (torch.save(model.state_dict(), path))"
                )
            if not _inside(weights, source):
                raise UserError(
                    f"params.yaml: model.weights={self.weights!r} is not inside model.source={self.source!r} "
                    "(DVC would not rerun when it changes); allowed: a file inside model.source"
                )


def _inside(path: Path, folder: Path) -> bool:
    """Whether `path` is `folder` or lies under it, symlinks resolved."""
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


class TrainParams(Section):
    epochs: int = integer(1)
    batch_size: int = integer(1)
    lr: float = positive_number()
    device: Literal["auto", "cpu", "cuda"] = choice(["auto", "cpu", "cuda"])
    class_weight: Literal["none", "balanced"] = choice(["none", "balanced"])

    @field_validator("device")
    @classmethod
    def _cuda_is_there(cls, device: str) -> str:
        """Refused before any work rather than deep inside a stage (imports torch only then)."""
        if device == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise rule("train.device='cuda' but this machine has no usable CUDA device; allowed here: auto or cpu")
        return device


class ActivationsParams(Section):
    split: Literal["test", "train", "val"] = choice(["test", "train", "val"])
    batch_size: int = integer(1)


class PruneParams(Section):
    # The layer of the single-layer study; which names exist depends on model.arch (a relation).
    layer: str = Field(
        default="last", description="last (the lab's layer) or a conv layer of model.arch: conv1, conv2, …"
    )
    criteria: Listed[str] = Field(
        min_length=1, description=f"a non-empty list of criteria, each {one_of(CRITERION_NAMES)}"
    )
    mode: Literal["remove", "zero_weights"] = choice(["remove", "zero_weights"])
    ks: Literal["all"] | PruneKs = Field(description="'all' or a non-empty list of distinct integers K >= 0")
    k_step: int = integer(1)
    random_orders: int = integer(1, 10_000)
    compare_zero_weights: bool = Field(description="true or false")

    @field_validator("criteria")
    @classmethod
    def _known_distinct_ranking_first(cls, criteria: tuple[str, ...]) -> tuple[str, ...]:
        """The first criterion is the headline ranking, so a baseline cannot be it."""
        unknown = [c for c in criteria if c not in CRITERION_NAMES]
        if unknown:
            raise detail(f"contains unknown criterion {unknown[0]!r}")
        repeated = _repeated(criteria)
        if repeated:
            raise detail(f"lists {repeated} more than once", allowed="each criterion at most once")
        if criteria[0] in ("random", "reverse"):
            raise detail(
                f"starts with {criteria[0]!r}, but the first criterion is the headline ranking",
                allowed="a ranking criterion first (e.g. mean_activation)",
            )
        return criteria


class RecalibrateParams(Section):
    split: Literal["train", "val"] = choice(["train", "val"])  # never test: the decision is scored there
    max_samples: int = integer(10)


class FinetuneParams(Section):
    ks: Listed[FinetuneK] = Field(
        description=f"a list of distinct K, each an integer >= 1 or {one_of(NAMED_KS)} ([] for none)"
    )
    # `headline` stands for the first of prune.criteria. Names prune.criteria does not rank are
    # skipped where used (`finetune_criteria`), so `dvc exp run -S prune.criteria=[...]` needs no second edit.
    criteria: Listed[str] = Field(
        description=f"a list of distinct criteria, each headline or {one_of(CRITERION_NAMES)}"
    )
    epochs: float = positive_number()  # fractions of an epoch allowed
    lr: float = positive_number()

    @field_validator("ks")
    @classmethod
    def _distinct_ks(cls, ks: tuple[str | int, ...]) -> tuple[str | int, ...]:
        return _distinct(ks)

    @field_validator("criteria")
    @classmethod
    def _known_distinct(cls, criteria: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [c for c in criteria if c != "headline" and c not in CRITERION_NAMES]
        if unknown:
            raise detail(f"contains unknown criterion {unknown[0]!r}")
        return _distinct(criteria)


Share = Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)]


def _known_criteria(criteria: tuple[str, ...]) -> tuple[str, ...]:
    """Known, distinct, and random among them: every criterion is compared with it."""
    unknown = [c for c in criteria if c not in CRITERION_NAMES]
    if unknown:
        raise detail(f"contains unknown criterion {unknown[0]!r}")
    _distinct(criteria)
    if "random" not in criteria:
        raise detail("has no random, which every criterion is compared with")
    return criteria


class SensitivityParams(Section):
    """Per-layer sensitivity: each conv layer pruned alone by each share of its channels."""

    fractions: Annotated[Listed[Share], Field(min_length=1), AfterValidator(_distinct_sorted)] = Field(
        description="a non-empty list of distinct shares of a layer's channels to remove, each in (0, 1)"
    )
    criteria: Annotated[Listed[str], Field(min_length=1), AfterValidator(_known_criteria)] = Field(
        description=f"a list of distinct criteria with random among them, each {one_of(CRITERION_NAMES)}"
    )
    random_orders: int = integer(1, 1000)


def _descending(values: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(sorted(_distinct(values), reverse=True))


class BudgetParams(Section):
    """Whole-network pruning to FLOPs budgets, by each strategy and criterion, then fine-tuned."""

    flops: Annotated[Listed[Share], Field(min_length=1), AfterValidator(_descending)] = Field(
        description="a non-empty list of distinct shares of FLOPs per sample to keep, each in (0, 1)"
    )
    strategies: Annotated[Listed[Literal[tuple(STRATEGY_NAMES)]], Field(min_length=1), AfterValidator(_distinct)] = (
        Field(description=f"a non-empty list of distinct strategies, each {one_of(STRATEGY_NAMES)}")
    )
    # Every group keeps a multiple of it (never fewer than it) or all its channels: CPU kernels
    # block channels by 8 or 16 (prunelab/network/budget.py). At most the fewest channels of a
    # group: a relation (`_relation_problem`, and `check_groups` on traced models).
    round_to: int = Field(
        ge=1, description="an integer >= 1 and at most the channels of every channel group (1: no rounding)"
    )
    # What the shares of `flops` are shares of: FLOPs per sample, or the unpruned model's latency as the
    # measured latency table predicts it (stages/latency.py; prunelab/network/latency.py).
    target: Literal["flops", "latency"] = choice(["flops", "latency"])
    criteria: Annotated[Listed[str], Field(min_length=1), AfterValidator(_known_criteria)] = Field(
        description="a list of distinct criteria of sensitivity.criteria with random among them, "
        f"each {one_of(CRITERION_NAMES)}"
    )
    finetune_epochs: float = positive_number()  # the recipe for every pruned model and the unpruned one


class LatencyParams(Section):
    """The latency table (stages/latency.py): how many counts per group it measures, and how long."""

    # Interleaved rounds per configuration: more rounds, less noise (about 2-5 % at 20 on 2 cores).
    rounds: int = integer(2, 1000)
    # The most counts of budget.round_to's it measures per group (the smallest and the whole always
    # among them, the rest spread evenly); linear in between. A big model has many groups and counts.
    counts: int = integer(2, 1000)


class ExportParams(Section):
    """What the export stage ships: the whole network pruned to a FLOPs budget (`budget`: auto, the
    smallest within 1 point, or one of budget.flops), or (`budget: none`) the single-layer study's
    model at K."""

    budget: Literal["auto", "none"] | Share = Field(
        description="auto (the smallest FLOPs budget within 1 point), none (ship the single-layer study's "
        "model at export.k) or a share of budget.flops"
    )
    strategy: Literal["auto"] | Literal[tuple(STRATEGY_NAMES)] = Field(
        description=f"auto or a strategy of budget.strategies ({one_of(STRATEGY_NAMES)})"
    )
    criterion: Literal["auto"] | CriterionName = Field(
        description="auto or a criterion of budget.criteria (of prune.criteria with budget: none)"
    )
    k: Literal["auto"] | Annotated[int, Field(ge=0)] = Field(
        description="auto or an integer K from 0 to P-1 (budget: none only)"
    )
    # Paired rounds of every batch-256 latency the export measures (torch, per part, ONNX Runtime): the
    # speed-up's interval comes from them. Fewer: a quicker, noisier export (the tests' tiny studies use 5).
    rounds: int = integer(3, 1000)


class PlotParams(Section):
    dpi: int = integer(30, 600)
    cmap: Literal["viridis", "magma", "gray", "inferno", "cividis"] = choice(
        ["viridis", "magma", "gray", "inferno", "cividis"]
    )


def points() -> Any:
    return Field(gt=0, le=100, allow_inf_nan=False, description="a number of points in (0, 100]")


class MarginsParams(Section):
    """Equivalence margins, in points of each score (`prunelab.study.verdicts`): a criterion whose
    difference from random lies within ±margin (90 % interval, TOST) is *equivalent* to random."""

    acc: float = points()
    bacc: float = points()
    roc_auc: float = points()
    recal_acc: float = points()
    recal_bacc: float = points()


class StudyParams(Section):
    margins: MarginsParams


# --------------------------------------------------------------------------- the whole file
class Params(Section):
    """Validated params.yaml: `params.prune.criteria`, `params.seeds`, ... Sections are in
    params.yaml's order, which is also the order problems are reported in."""

    # The replicates of the study: each seed is one full, independent run of the lab.
    seeds: Listed[Seed] = Field(
        min_length=1,
        max_length=MAX_SEEDS,
        description=f"a non-empty list of at most {MAX_SEEDS} distinct integers{_bounds_text(*SEED_RANGE)}",
    )
    data: DataParams
    model: ModelParams
    train: TrainParams
    activations: ActivationsParams
    prune: PruneParams
    recalibrate: RecalibrateParams
    finetune: FinetuneParams
    sensitivity: SensitivityParams
    budget: BudgetParams
    latency: LatencyParams
    export: ExportParams
    study: StudyParams
    plot: PlotParams

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: tuple[int, ...]) -> tuple[int, ...]:
        return _distinct(seeds)

    @model_validator(mode="after")
    def _relations(self) -> Params:
        """Checks that involve more than one key (run once every key is valid on its own)."""
        problem = self._relation_problem()
        if problem:
            raise rule(problem)
        return self

    def check_groups(self, groups: Sequence[ChannelGroup]) -> None:
        """The checks that need the model's channel groups (the layer's name, K < P, BatchNorm for
        bn_gamma), for an architecture known only after tracing: run by every stage that traces the
        model, before any work. Raises UserError with one line naming the key."""
        from prunelab.errors import UserError

        traced = Arch(
            builder="traced",
            layers=tuple((g.name, g.channels) for g in groups),
            batchnorm=all(g.norms for g in groups),
            description=f"model.arch={self.model.arch}",
        )
        names = [g.name for g in groups]
        if self.prune.layer != "last" and self.prune.layer not in names:
            listed = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
            raise UserError(
                f"params.yaml: prune.layer={self.prune.layer!r} names no channel group of model.arch="
                f"{self.model.arch}; allowed: last or one of {listed} (prunelab.find_groups lists them)"
            )
        problem = self._relation_problem(traced)
        if problem:
            raise UserError(f"params.yaml: {problem}")

    def _relation_problem(self, known: Arch | None = None) -> str | None:
        """The first cross-key problem, or None. An architecture whose conv layers are known only after
        tracing (`Arch.layers is None`: the residual and torchvision models) skips the checks that need
        them (the layer's name, K < P, BatchNorm where unknown): the stages make those on the traced
        model (`check_groups`, which passes the traced layers as `known`)."""
        arch_name = self.model.arch
        arch = known or arch_of(arch_name)
        assert arch is not None  # model.arch passed its own check, or no relation is checked
        prune, data, export = self.prune, self.data, self.export
        names = [] if arch.traced else [name for name, _ in arch.layers]
        if not arch.traced and prune.layer != "last" and prune.layer not in names:
            return (
                f"prune.layer={prune.layer!r} is not a conv layer of model.arch={arch_name}; "
                f"allowed: last or one of {', '.join(names)}"
            )
        # P of the study's layer where known before building (None: the K checks below wait for the trace).
        p = None if arch.traced else arch.channels_of(prune.layer)
        # The layer P counts the channels of.
        pruned = "" if arch.traced else f"{arch_name}'s {arch.layer_name(prune.layer)}"
        for key, criteria in (
            ("prune.criteria", prune.criteria),
            ("sensitivity.criteria", self.sensitivity.criteria),
            ("budget.criteria", self.budget.criteria),
        ):
            if "bn_gamma" in criteria and arch.batchnorm is False:
                return (
                    f"{key} has bn_gamma, but model.arch={arch_name} has no BatchNorm after its convs; "
                    "allowed: the other criteria"
                )
        missing = [c for c in self.budget.criteria if c not in self.sensitivity.criteria]
        if missing:
            return (
                f"budget.criteria has {missing[0]!r}, which sensitivity.criteria does not rank; "
                "allowed: criteria of sensitivity.criteria (the sensitivity strategy reads their curves)"
            )
        if not arch.traced and arch.layers and self.budget.round_to > min(c for _, c in arch.layers):
            group, fewest = min(arch.layers, key=lambda layer: layer[1])
            return (
                f"budget.round_to={self.budget.round_to} is larger than channel group {group!r} of model.arch="
                f"{arch_name} ({fewest} channels); allowed: an integer from 1 to {fewest} (1: no rounding)"
            )
        if p is not None and prune.ks != "all" and max(prune.ks) >= p:
            return (
                f"prune.ks={list(prune.ks)!r} contains K >= P; allowed: K from 0 to {p - 1} "
                f"({pruned} has P={p} channels)"
            )
        if p is not None and prune.k_step >= p:
            return f"prune.k_step={prune.k_step} is invalid; allowed: an integer from 1 to {p - 1}"
        if self.activations.split == "val" and data.val_fraction == 0:
            return (
                "activations.split='val' needs a validation split; "
                "allowed: set data.val_fraction in (0, 1), or use split test or train"
            )
        if self.recalibrate.split == "val" and data.val_fraction == 0:
            return (
                "recalibrate.split='val' needs a validation split; "
                "allowed: set data.val_fraction in (0, 1), or use split train"
            )
        for k in self.finetune.ks if p is not None else ():
            if named_k(k, p) >= p:
                return (
                    f"finetune.ks contains K={k}, but {pruned} has P={p} channels; "
                    f"allowed: K from 1 to {p - 1}, or {one_of(NAMED_KS)}"
                )
        if p is not None and export.k != "auto" and export.k >= p:
            return (
                f"export.k={export.k} is invalid; allowed: auto or an integer K from 0 to {p - 1} "
                f"({pruned} has P={p} channels)"
            )
        if export.budget == "none" and export.criterion != "auto" and export.criterion not in prune.criteria:
            return (
                f"export.criterion={export.criterion!r} is not in the study; allowed: auto or one of "
                f"prune.criteria ({', '.join(prune.criteria)})"
            )
        budget = self.budget
        if export.budget != "none" and export.criterion != "auto" and export.criterion not in budget.criteria:
            return (
                f"export.criterion={export.criterion!r} is not in the budget study; allowed: auto or one of "
                f"budget.criteria ({', '.join(budget.criteria)}), or export.budget: none"
            )
        if export.budget not in ("auto", "none") and export.budget not in budget.flops:
            return (
                f"export.budget={export.budget!r} is not in the budget study; allowed: auto, none or one of "
                f"budget.flops ({', '.join(f'{b:g}' for b in budget.flops)})"
            )
        if export.strategy != "auto" and export.strategy not in budget.strategies:
            return (
                f"export.strategy={export.strategy!r} is not in the budget study; allowed: auto or one of "
                f"budget.strategies ({', '.join(budget.strategies)})"
            )
        if data.test_fraction + data.val_fraction >= 1:
            return "data.test_fraction + data.val_fraction must leave training data; allowed: a sum < 1"
        return None

    def ignored_keys(self) -> list[str]:
        """Keys that the chosen task does not use."""
        return [key for other, keys in TASK_ONLY_KEYS.items() if other != self.data.task for key in keys]

    def ignored_params(self) -> list[str]:
        """Params the chosen task and source do not use, so the stage log can name them."""
        ignored = self.ignored_keys()
        data = self.data
        if data.task == "classification" and SOURCES[data.source].official_split:
            ignored.append("data.test_fraction (the source has an official test split)")
        if data.source != "imagefolder" and data.image_size != "none":
            ignored.append("data.image_size (imagefolder only)")
        if self.model.weights != "none":
            ignored.append("train.epochs, train.batch_size, train.lr, train.class_weight (model.weights is loaded)")
        return ignored
