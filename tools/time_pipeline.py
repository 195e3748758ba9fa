"""Time the README's first command on a fresh clone, stage by stage, and write metrics/pipeline_time.json.

    python tools/time_pipeline.py            # the README's first command in a fresh clone of HEAD
    python tools/time_pipeline.py --tests    # then the README's test command in that clone, timed too
    python tools/time_pipeline.py --force    # then `dvc repro --force` in that clone, timed too

What a new user waits for: `git clone`, then the README's first command as the README prints it
(the install and `dvc repro`), in a temporary folder. Each stage's time is read from the moment DVC
prints "Running stage '<name>'" to the next such line (the last stage's to the end of the command), so
it includes DVC's own work per stage (hashing, the lock) and the stage's interpreter start-up.
`--tests` then runs the README's second command, the tests, as the README prints it, in the same clone:
the README's two commands in order, as a new user runs them (pytest's closing line is kept). `--force`
runs `dvc repro --force` last in the same clone (every stage from scratch, the install not counted).
Run it on an idle machine: other work stretches wall-clock time. docs/performance.md quotes the file
(tools/render_docs.py, block `pipeline-time`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python tools/time_pipeline.py` from a checkout
    sys.path.insert(0, str(ROOT))

from tools.machine import cpu_model  # noqa: E402 - after the project root is on the path

OUT = ROOT / "metrics" / "pipeline_time.json"
RUNNING = re.compile(r"Running stage '([^']+)'")
PYTEST_CLOSING = re.compile(r"^=+ (\d+ (?:passed|failed).*) in [\d.]+s")


def readme_commands(readme: Path = ROOT / "README.md") -> list[str]:
    """The commands of the README's first bash block: the lab end to end, then the tests."""
    block = re.search(r"```bash\n(.*?)```", readme.read_text(), re.DOTALL)
    commands = [line for line in (block.group(1) if block else "").splitlines() if line and not line.startswith("#")]
    if not commands:
        raise SystemExit("error: README.md has no bash block with a command")
    return commands


def readme_first_command(readme: Path = ROOT / "README.md") -> str:
    """The first command of the README's first bash block (the lab, end to end)."""
    return readme_commands(readme)[0]


def readme_test_command(readme: Path = ROOT / "README.md") -> str:
    """The README's test command: the first of its first bash block that runs pytest."""
    found = [command for command in readme_commands(readme) if "pytest" in command]
    if not found:
        raise SystemExit("error: README.md's first bash block has no pytest command")
    return found[0]


def timed(command: str, cwd: Path) -> dict:
    """Run `command` in bash; its wall-clock seconds, and each stage's from DVC's "Running stage" lines.
    The time before the first stage (an install, DVC's start-up) is `before_stages`."""
    env = {**os.environ, "CI": "true", "DVC_NO_ANALYTICS": "1"}  # CI: progress bars quiet, as in a log
    start = time.monotonic()
    marks: list[tuple[str, float]] = []
    proc = subprocess.Popen(["bash", "-c", command], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip
    tail: list[str] = []
    closing = None
    for line in proc.stdout:  # type: ignore[union-attr]
        tail = [*tail[-40:], line]
        if match := RUNNING.match(line):
            marks.append((match.group(1), time.monotonic() - start))
        if match := PYTEST_CLOSING.match(line):
            closing = match.group(1)
    if proc.wait() != 0:
        raise SystemExit(f"error: `{command}` failed ({proc.returncode}):\n{''.join(tail)}")
    total = time.monotonic() - start
    ends = [at for _, at in marks[1:]] + [total] if marks else []  # a command with no stage (the tests)
    record = {
        "command": command,
        "seconds": round(total, 1),
        "before_stages": round(marks[0][1] if marks else total, 1),
        "stages": {name: round(end - at, 1) for (name, at), end in zip(marks, ends, strict=True)},
    }
    if closing:
        record["pytest"] = closing  # e.g. "815 passed, 1 skipped, 13 warnings"
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", action="store_true", help="then time the README's test command in the clone")
    parser.add_argument("--force", action="store_true", help="also time `dvc repro --force` in the clone")
    parser.add_argument("--out", type=Path, default=OUT, help=f"where the timings go (default {OUT.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    command = readme_first_command()
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        load_before = os.getloadavg()[0]
        print(f"timing in a fresh clone: {command}", file=sys.stderr)
        runs = {"first_command": timed(command, clone)}
        if args.tests:
            tests = readme_test_command()
            print(f"timing in the same clone: {tests}", file=sys.stderr)
            runs["tests"] = timed(tests, clone)
        if args.force:
            print("timing: dvc repro --force", file=sys.stderr)
            runs["repro_force"] = timed(". .venv/bin/activate && dvc repro --force", clone)
        revision = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=clone, capture_output=True,
                                  text=True, check=True).stdout.strip()  # fmt: skip
    record = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "revision": revision,
        "cpu": cpu_model() or platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "load_before": round(load_before, 2),
        **runs,
    }
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    for name, run in runs.items():
        print(f"{name}: {run['seconds']:.0f} s ({run['command']})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
