"""tools/time_pipeline.py: the README's first command, timed stage by stage, and the docs block made from it."""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

import pytest

from tests.helpers import ROOT, tool_module
from tests.test_layout import render_docs_tool


def time_pipeline_tool() -> ModuleType:
    return tool_module("time_pipeline")


def test_the_timed_command_is_the_readmes_first() -> None:
    command = time_pipeline_tool().readme_first_command()
    assert command.startswith("python3 -m venv .venv") and command.endswith("dvc repro")
    assert command in (ROOT / "README.md").read_text()


def test_the_timed_tests_are_the_readmes_second_command() -> None:
    """`--tests` runs the README's two commands in order in one clone: the test command is the second."""
    tool = time_pipeline_tool()
    commands = tool.readme_commands()
    assert tool.readme_test_command() == commands[1] and commands[1].endswith("python -m pytest")


def test_pytests_closing_line_is_kept(tmp_path: Path) -> None:
    script = "echo '=== 3 passed, 1 skipped, 2 warnings in 12.34s ==='"
    assert time_pipeline_tool().timed(script, tmp_path)["pytest"] == "3 passed, 1 skipped, 2 warnings"
    assert "pytest" not in time_pipeline_tool().timed("echo no tests here", tmp_path)


def test_each_stage_is_timed_from_its_running_line_to_the_next(tmp_path: Path) -> None:
    """A command that prints DVC's lines with pauses between them: each stage gets its own pause."""
    script = (
        "sleep 0.3; echo \"Running stage 'a@0':\"; sleep 0.6; echo 'a line of its output'; "
        "echo \"Running stage 'b':\"; sleep 0.2"
    )
    run = time_pipeline_tool().timed(script, tmp_path)
    assert list(run["stages"]) == ["a@0", "b"]
    assert run["before_stages"] == pytest.approx(0.3, abs=0.15)
    assert run["stages"]["a@0"] == pytest.approx(0.6, abs=0.15)
    assert run["stages"]["b"] == pytest.approx(0.2, abs=0.15)
    assert run["seconds"] == pytest.approx(run["before_stages"] + sum(run["stages"].values()), abs=0.15)


def test_a_failing_command_is_refused_with_its_output(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=re.escape("failed (1):\nbroken")):
        time_pipeline_tool().timed("echo broken; exit 1", tmp_path)


def test_the_pipeline_time_block_sums_each_stage_over_its_seeds() -> None:
    tool = render_docs_tool()
    timings = {
        "date": "2026-12-05 07:00 UTC", "revision": "abc1234", "cpu": "Some CPU", "cores": 2, "load_before": 0.1,
        "first_command": {"command": "pip install && dvc repro", "seconds": 300.0, "before_stages": 120.0,
                          "stages": {"train@0": 50.0, "train@1": 70.0, "export": 60.0}},
        "repro_force": {"command": "dvc repro --force", "seconds": 200.0, "before_stages": 2.0,
                        "stages": {"prepare_data@0": 1.0, "train@0": 40.0, "train@1": 41.0, "export": 30.0}},
    }  # fmt: skip
    text = tool.render("pipeline-time", tool.Files.from_mapping({tool.PIPELINE_TIME: timings}))
    assert "**5 min 0 s**, of which 2 min 0 s before the first stage (the install) and 3 min 0 s of stages" in text
    assert "`dvc repro --force` in that clone took **3 min 20 s**" in text
    assert "| `train` | 120.0 (2) | 81.0 (2) |" in text
    assert "| `prepare_data` | — | 1.0 (1) |" in text
    assert "test command" not in text
    tested = {**timings, "tests": {"command": "pytest", "seconds": 540.0, "pytest": "9 passed, 1 skipped"}}
    text = tool.render("pipeline-time", tool.Files.from_mapping({tool.PIPELINE_TIME: tested}))
    assert "Then the README's test command (`pytest`), in that clone, took **9 min 0 s**: 9 passed, 1 skipped." in text
    rows = [line.split("`")[1] for line in text.splitlines() if line.startswith("| `")]
    assert rows == ["prepare_data", "train", "export"]  # the --force run's order: every stage, as dvc.yaml has them
    with pytest.raises(tool.RenderError, match="no key first_command"):
        tool.render("pipeline-time", tool.Files.from_mapping({tool.PIPELINE_TIME: {"date": "x"}}))
