"""The fuzzer: random params and random damage to every kind of intermediate file, fed to the
stages that read them; every run either writes the undamaged run's bytes or is refused in one
line with every output as it was (tests/fuzzing.py says what each outcome means).

A fixed, derandomized budget runs in the normal suite (`PRUNE_LAB_FUZZ_EXAMPLES`, default
below, raises it: `tools/fuzz.py` runs it with a budget and writes the tally to
metrics/fuzz.json). The cheap stages take most examples (aggregate, headline, plot, finetune
with `finetune.ks: []`); the torch stages a few, on damaged splits, statistics, checkpoints.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.fuzzing import (
    FAILURES,
    Change,
    Damage,
    Fuzzer,
    applied,
    bytes_damage,
    csv_damage,
    json_damage,
    numbers_only,
    params_changes,
    params_text,
    split_damage,
    stats_damage,
)
from tests.helpers import copy_repo

BUDGET_ENV = "PRUNE_LAB_FUZZ_EXAMPLES"
TALLY_ENV = "PRUNE_LAB_FUZZ_TALLY"  # a path: write the tally there as JSON (tools/fuzz.py)
DEFAULT_EXAMPLES = 300


@dataclass(frozen=True)
class FileTarget:
    """Damage to `path` ({seed}: 0 or 1, drawn) fed to `stage`."""

    stage: str
    path: str
    damage: Callable[[bytes], st.SearchStrategy[Damage]]
    weight: float
    rerun: bool = True  # compare a success with an in-process rerun (False: dvc repro's bytes; torch stages)

    @property
    def name(self) -> str:
        return f"{self.path.replace('{seed}', '<s>')} → {self.stage}"


@dataclass(frozen=True)
class ParamsTarget:
    stage: str
    weight: float
    overrides: tuple[tuple[str, str, object], ...] = ()  # (section, key, value): the base params of its cases
    examples: tuple[tuple[Change, ...], ...] = ()  # run first, every time: what the fuzzer once found

    @property
    def name(self) -> str:
        return f"params.yaml → {self.stage}"


def two_class_split(data: bytes) -> st.SearchStrategy[Damage]:
    return split_damage(data, n_classes=2)


FILE_TARGETS = [
    FileTarget("aggregate", "metrics/seeds/{seed}/sweep.csv", csv_damage, 8),
    FileTarget("aggregate", "metrics/seeds/{seed}/summary.json", json_damage, 6),
    FileTarget("aggregate", "metrics/seeds/{seed}/train_curve.csv", csv_damage, 2),
    FileTarget("aggregate", "metrics/seeds/{seed}/finetune.csv", csv_damage, 2.5),
    FileTarget("aggregate", "metrics/seeds/{seed}/sensitivity.csv", csv_damage, 1.5),
    FileTarget("aggregate", "metrics/seeds/{seed}/budget.csv", csv_damage, 1.5),
    FileTarget("headline", "metrics/metrics.json", json_damage, 5),
    FileTarget("headline", "metrics/efficiency.json", json_damage, 3),
    FileTarget("plot", "metrics/seeds/0/ranking.csv", csv_damage, 1.2),
    FileTarget("plot", "metrics/study/recal_bacc.csv", csv_damage, 1),
    FileTarget("plot", "metrics/study/finetune.csv", csv_damage, 0.6),
    FileTarget("plot", "data/seeds/0/activations.npz", stats_damage, 1.2),
    FileTarget("plot", "metrics/metrics.json", json_damage, 0.5),
    FileTarget("plot", "metrics/seeds/{seed}/sweep.csv", csv_damage, 0.5),
    FileTarget("sweep_prune", "data/seeds/0/prepared/test.npz", two_class_split, 0.5, rerun=False),
    FileTarget("sweep_prune", "data/seeds/0/activations.npz", stats_damage, 0.4, rerun=False),
    FileTarget("collect_activations", "data/seeds/0/model.pt", bytes_damage, 0.5, rerun=False),
    FileTarget("collect_activations", "data/seeds/0/prepared/info.json", json_damage, 0.4, rerun=False),
    FileTarget("train", "data/seeds/0/prepared/train.npz", two_class_split, 0.3, rerun=False),
    FileTarget("finetune", "metrics/seeds/0/ranking.csv", csv_damage, 0.3, rerun=False),
]
PARAMS_TARGETS = [
    # aggregate's report names the calibration data: recalibrate was read without being a param in dvc.yaml.
    ParamsTarget("aggregate", 5, examples=((Change("recalibrate.max_samples", 500, True),),)),
    ParamsTarget("headline", 5),
    # With fine-tuning off the stage trains nothing: cheap, and still validates every key.
    ParamsTarget("finetune", 4, (("finetune", "ks", []),)),
    ParamsTarget("plot", 0.6),
]


def plan(budget: int) -> list[tuple[FileTarget | ParamsTarget, int]]:
    """The budget split over the targets by weight (largest remainders), every target at least
    once (so at least one example per target even for a budget below the number of targets)."""
    targets: list[FileTarget | ParamsTarget] = [*FILE_TARGETS, *PARAMS_TARGETS]
    total = sum(t.weight for t in targets)
    shares = [budget * t.weight / total for t in targets]
    counts = [max(1, int(s)) for s in shares]
    by_remainder = sorted(range(len(targets)), key=lambda i: int(shares[i]) - shares[i])
    for step in range(max(0, budget - sum(counts))):
        counts[by_remainder[step % len(targets)]] += 1
    while sum(counts) > budget and max(counts) > 1:
        counts[counts.index(max(counts))] -= 1
    return list(zip(targets, counts, strict=True))


def budget() -> int:
    raw = os.environ.get(BUDGET_ENV, "")
    return int(raw) if raw.strip() else DEFAULT_EXAMPLES


def fuzz_settings(n: int) -> settings:
    return settings(
        max_examples=n,
        derandomize=True,
        deadline=None,
        database=None,
        phases=(Phase.explicit, Phase.generate),  # every outcome is tallied, nothing raised: nothing to shrink
        suppress_health_check=list(HealthCheck),
    )


def run_file_target(fuzzer: Fuzzer, target: FileTarget, n: int) -> None:
    reference = fuzzer.reference(target.stage, rerun=target.rerun)

    @fuzz_settings(n)
    @given(st.data())
    def example(data: st.DataObject) -> None:
        path = target.path.format(seed=data.draw(st.sampled_from([0, 1]), label="seed"))
        original = fuzzer.pristine[path]
        what, damaged = data.draw(target.damage(original), label="damage")
        text = path.endswith((".csv", ".json"))
        plausible = text and numbers_only(original, damaged)
        fuzzer.case(target.name, target.stage, f"{path}: {what}", {path: damaged}, reference, plausible=plausible)

    example()


def run_params_target(fuzzer: Fuzzer, target: ParamsTarget, n: int) -> None:
    base = json.loads(json.dumps(fuzzer.base_params))
    for section, key, value in target.overrides:
        base[section][key] = value
    text = params_text(base) if target.overrides else None
    reference = fuzzer.reference(target.stage, text)

    def expensive(change: Change) -> bool:
        """Valid fine-tuning points would train: the finetune target keeps fine-tuning off."""
        return target.stage == "finetune" and change.key == "finetune.ks" and change.valid and change.value != []

    def one(changes: list[Change]) -> None:
        what = "; ".join(f"{c.key}={c.value!r} ({'valid' if c.valid else 'invalid'})" for c in changes)
        damaged = {"params.yaml": params_text(applied(base, changes)).encode()}
        fuzzer.case(target.name, target.stage, what, damaged, reference, params=changes)

    for changes in target.examples:
        one(list(changes))
    fuzz_settings(n)(given(params_changes(base, exclude=expensive))(one))()


@pytest.fixture
def _quiet_and_restored(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No progress bars; and torch's global switches (stages seed and pick deterministic kernels) put back."""
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("TQDM_DISABLE", "1")
    deterministic = torch.are_deterministic_algorithms_enabled()
    cublas = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    threads = torch.get_num_threads()
    yield
    torch.use_deterministic_algorithms(deterministic)
    torch.set_num_threads(threads)
    if cublas is None:
        os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)


@pytest.mark.integration
@pytest.mark.usefixtures("_quiet_and_restored")
def test_every_damaged_input_is_refused_in_one_line_or_changes_nothing(
    tiny_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    started = time.monotonic()
    repo = copy_repo(tiny_repo, tmp_path / "repo")
    monkeypatch.chdir(repo)
    fuzzer = Fuzzer(repo, lambda argv: monkeypatch.setattr(sys, "argv", argv))
    for target, n in plan(budget()):
        if isinstance(target, FileTarget):
            run_file_target(fuzzer, target, n)
        else:
            run_params_target(fuzzer, target, n)
    summary = fuzzer.tally.summary(time.monotonic() - started)
    if os.environ.get(TALLY_ENV):
        Path(os.environ[TALLY_ENV]).write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    with capsys.disabled():
        counts = ", ".join(f"{k} {v}" for k, v in summary.items() if k != "targets")
        print(f"\nfuzz: {counts}")
    assert not fuzzer.tally.failures, "\n\n".join(fuzzer.tally.failures[:8])
    assert sum(summary[f] for f in FAILURES) == 0


def test_the_budget_reaches_every_target() -> None:
    for n in (25, 300, 5000):
        counts = [c for _, c in plan(n)]
        assert sum(counts) == n and min(counts) >= 1


def test_the_fuzz_block_renders_from_the_tally() -> None:
    from tests.test_layout import render_docs_tool

    tool = render_docs_tool()
    tally = {
        "budget": 10, "cases": 11, "params_cases": 4, "file_cases": 7, "refused": 9, "same_bytes": 1,
        "valid_params_runs": 1, "plausible_numbers": 0, "tracebacks": 0, "messy_refusals": 0, "partial_outputs": 0,
        "silent_differences": 0, "seconds": 3,
        "targets": {"a.csv → b": {"cases": 11, "refused": 9, "same_bytes": 1, "valid_params_runs": 1}},
    }  # fmt: skip
    text = tool.render("fuzz", tool.Files.from_mapping({"metrics/fuzz.json": tally}))
    assert "(`tools/fuzz.py --cases 10`): **11 cases** in 3 s" in text
    assert "| `a.csv → b` | 11 | 9 | 1 | valid params runs 1 |" in text
    del tally["tracebacks"]
    with pytest.raises(tool.RenderError, match=r"metrics/fuzz\.json: no key tracebacks"):
        tool.render("fuzz", tool.Files.from_mapping({"metrics/fuzz.json": tally}))
