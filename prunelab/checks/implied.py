"""What params.yaml implies about the files the stages read: the K values, the criteria, the rows.

A table that holds other rows than these was written under other params (or is damaged), and
would be aggregated into a silently wrong result: the checks refuse it and name the stage to
rerun. Built once per stage from the validated params (`implied(params)`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prunelab.models.archs import Arch, arch_of
from prunelab.models.records import ChannelGroup, groups_from_document
from prunelab.prepare.sources import SOURCES
from prunelab.pruning.names import finetune_criteria, named_k
from prunelab.scoring.milestones import resolve_ks

if TYPE_CHECKING:
    from prunelab.params import Params


@dataclass(frozen=True)
class Implied:
    """The facts a stage's input files must agree with."""

    seeds: tuple[int, ...]
    channels: int  # P of model.arch
    n_classes: int | None  # None: known from the files only (an image folder's class folders)
    ks: tuple[int, ...]  # every K the sweep scores (`resolve_ks`)
    ranked: tuple[str, ...]  # prune.criteria, in order: ranking.csv
    swept: tuple[str, ...]  # ranked, plus <headline>_zero_weights when compared: sweep.csv, summaries, metrics
    finetuned: tuple[tuple[str, str, int], ...]  # (criterion, point, K) fine-tuned per seed, in the stage's order
    epochs: int
    ranking_split_is_test: bool
    max_calibration: int
    margins: tuple[tuple[str, float], ...]
    export_criterion: str
    export_k: str | int
    export_budget: str | float = "none"  # auto | none | a share of budget.flops
    export_strategy: str = "auto"
    layer: str = "last"  # the study's layer, by name (conv1, …)
    layer_is_last: bool = True  # whether it is the lab's layer, the last conv
    layers: tuple[str, ...] = ()  # every conv layer of model.arch, in forward order
    sensitivity_criteria: tuple[str, ...] = ()
    fractions: tuple[float, ...] = ()  # sensitivity.fractions as the table prints them (6 decimals)
    budgets: tuple[float, ...] = ()  # budget.flops, descending, as printed
    strategies: tuple[str, ...] = ()
    budget_criteria: tuple[str, ...] = ()
    round_to: int = 1  # budget.round_to: every kept count a multiple of it, or the group's all
    target: str = "flops"  # budget.target: what budget.flops are shares of (flops | latency)
    loaded: bool = False  # model.weights given: train loads them, no epochs

    @property
    def layer_title(self) -> str:
        """The study's layer as figures name it."""
        return "the last conv layer" if self.layer_is_last else f"layer {self.layer}"

    def sweep_rows(self) -> list[tuple[int, str]]:
        """(k, criterion) of sweep.csv and of the study's band tables, in the writer's order."""
        return [(k, c) for c in self.swept for k in self.ks]

    def sensitivity_rows(self) -> list[tuple[str, str, float]]:
        """(layer, criterion, fraction) of sensitivity.csv, in the writer's order (share 0 first)."""
        shares = (0.0, *self.fractions)
        return [(name, c, f) for name in self.layers for c in self.sensitivity_criteria for f in shares]

    def budget_rows(self) -> list[tuple[float, str, str]]:
        """(budget, strategy, criterion) of budget.csv: the unpruned model first."""
        pruned = [(b, s, c) for b in self.budgets for s in self.strategies for c in self.budget_criteria]
        return [(1.0, "unpruned", "none"), *pruned]

    def ranking_rows(self) -> list[tuple[str, int]]:
        return [(c, rank) for c in self.ranked for rank in range(self.channels)]

    def finetune_rows(self) -> list[tuple[str, str, int]]:
        return list(self.finetuned)

    def train_rows(self) -> list[tuple[int]]:
        """Epochs 1..train.epochs; with model.weights, the one row of epoch 0 (the loaded weights)."""
        return [(0,)] if self.loaded else [(epoch,) for epoch in range(1, self.epochs + 1)]

    def study_finetune_rows(self) -> list[tuple[str, str, int, int]]:
        """(criterion, point, k, seed) of metrics/study/finetune.csv: seed by seed, as aggregate stacks them."""
        return [(c, point, k, seed) for seed in self.seeds for c, point, k in self.finetuned]


def finetune_point(spec: str | int) -> str:
    """The `point` a finetune.ks entry is written as (stages/finetune.py): its name, or k<K>."""
    return spec if isinstance(spec, str) else f"k{spec}"


def traced_groups(params: Params) -> tuple[ChannelGroup, ...]:
    """The channel groups of model.arch as the train stage of the first seed traced them."""
    from prunelab.errors import UserError
    from prunelab.paths import groups_path
    from prunelab.runtime import read_json

    path = groups_path(params.seeds[0])
    try:
        return groups_from_document(read_json(path, "channel groups", "train"))
    except ValueError as err:
        raise UserError(f"{path}: {err}; rerun the train stage (dvc repro)") from None


def implied(params: Params, groups: Sequence[ChannelGroup] | None = None) -> Implied:
    """What params.yaml implies. For an architecture whose groups are known only after tracing,
    `groups` are the traced model's (None: read from the first seed's groups.json)."""
    prune, finetune = params.prune, params.finetune
    arch = arch_of(params.model.arch)
    assert arch is not None  # params validation checked model.arch
    if arch.traced:
        traced = tuple(groups) if groups is not None else traced_groups(params)
        arch = Arch("traced", tuple((g.name, g.channels) for g in traced), all(g.norms for g in traced), "traced")
    p = arch.channels_of(prune.layer)
    headline = prune.criteria[0]
    swept = list(prune.criteria)
    if prune.compare_zero_weights and prune.mode == "remove":
        swept.append(f"{headline}_zero_weights")
    tuned = finetune_criteria(finetune.criteria, prune.criteria) if finetune.ks else []
    finetuned = tuple((c, finetune_point(spec), named_k(spec, p)) for c in tuned for spec in finetune.ks)
    pairs = params.data.task == "pairs"
    return Implied(
        seeds=tuple(params.seeds),
        channels=p,
        n_classes=2 if pairs else (SOURCES[params.data.source].n_classes or None),
        ks=tuple(resolve_ks(prune.ks, prune.k_step, p)),
        ranked=tuple(prune.criteria),
        swept=tuple(swept),
        finetuned=finetuned,
        epochs=params.train.epochs,
        loaded=params.model.weights != "none",
        ranking_split_is_test=params.activations.split == "test",
        max_calibration=params.recalibrate.max_samples,
        margins=tuple(params.study.margins.model_dump().items()),
        export_criterion=params.export.criterion,
        export_k=params.export.k,
        export_budget=params.export.budget,
        export_strategy=params.export.strategy,
        layer=arch.layer_name(prune.layer),
        layer_is_last=arch.layer_name(prune.layer) == arch.last_layer,
        layers=tuple(name for name, _ in arch.layers),
        sensitivity_criteria=tuple(params.sensitivity.criteria),
        fractions=tuple(round(f, 6) for f in params.sensitivity.fractions),
        budgets=tuple(round(b, 6) for b in params.budget.flops),
        strategies=tuple(params.budget.strategies),
        budget_criteria=tuple(params.budget.criteria),
        round_to=params.budget.round_to,
        target=params.budget.target,
    )
