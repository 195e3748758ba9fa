"""Never a slower model, silently: the export stage passes over a configuration that measures no faster
than the unpruned model for the next one the rule keeps, and ships the unpruned model when none is
faster, saying which in efficiency.json. Run in-process on a copy of the tiny study, with the rule
keeping every configuration and the timing check (`quick_speedup`, the paired timing every export run
makes) replaced by a script of measured speed-ups."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from prunelab.network import choice
from prunelab.runtime import stage_main
from tests.helpers import copy_repo

pytestmark = pytest.mark.integration


def run_export(repo: Path, speedups: Iterator[float], monkeypatch: pytest.MonkeyPatch) -> dict:
    """The export stage in `repo`, every configuration kept by the rule, each timed as `speedups` says."""
    from stages import export

    monkeypatch.chdir(repo)
    monkeypatch.setattr(sys, "argv", ["export"])
    monkeypatch.setattr(choice, "kept", lambda entry: True)  # every configuration within the rule
    monkeypatch.setattr(export, "quick_speedup", lambda reference, candidate, images: next(speedups))
    stage_main(export.main)
    return json.loads((repo / "metrics/efficiency.json").read_text())


def test_a_slower_configuration_is_passed_over_for_the_next_faster_one(
    tiny_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    repo = copy_repo(tiny_repo, tmp_path / "repo")
    efficiency = run_export(repo, iter([0.9, 1.6]), monkeypatch)
    assert (efficiency["slower_skipped"], efficiency["shipped_unpruned"]) == (1, 0)
    assert efficiency["ratio"]["flops"] > 1.5  # a pruned model ships
    assert "measures no faster than the unpruned model here (0.90×)" in capsys.readouterr().err


def test_the_unpruned_model_ships_when_no_configuration_is_faster(
    tiny_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    repo = copy_repo(tiny_repo, tmp_path / "repo")
    efficiency = run_export(repo, iter([0.8] * 10), monkeypatch)
    assert efficiency["shipped_unpruned"] == 1 and efficiency["slower_skipped"] >= 2
    assert efficiency["ratio"]["flops"] == 1.0 and efficiency["ratio"]["params"] == 1.0
    assert "no configuration the rule allows runs faster here than the unpruned model" in capsys.readouterr().err
