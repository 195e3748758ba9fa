"""Run the fuzzer (tests/test_fuzz.py) with a given budget and write its tally to metrics/fuzz.json.

    python tools/fuzz.py                 # 600 cases
    python tools/fuzz.py --cases 5000    # a longer run (about half a minute per hundred cases on 2 cores)

The fuzzer runs in pytest, on the tiny study the session fixture builds with one `dvc repro`
(a minute or two first); the tally is written even when cases fail, and the exit status is
pytest's. docs/reliability.md quotes the file (tools/render_docs.py, block `fuzz`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGET_ENV = "PRUNE_LAB_FUZZ_EXAMPLES"  # as tests/test_fuzz.py reads them
TALLY_ENV = "PRUNE_LAB_FUZZ_TALLY"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=600, help="examples in all (default 600)")
    parser.add_argument("--out", type=Path, default=ROOT / "metrics" / "fuzz.json", help="where the tally goes")
    args = parser.parse_args(argv)
    if args.cases < 1:
        parser.error("--cases must be at least 1")
    with tempfile.TemporaryDirectory() as tmp:
        tally_path = Path(tmp) / "tally.json"
        env = {**os.environ, BUDGET_ENV: str(args.cases), TALLY_ENV: str(tally_path)}
        test = "tests/test_fuzz.py::test_every_damaged_input_is_refused_in_one_line_or_changes_nothing"
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test]
        status = subprocess.run(command, cwd=ROOT, env=env, check=False).returncode
        if not tally_path.exists():
            print("error: the fuzzer wrote no tally (see pytest's output above)", file=sys.stderr)
            return status or 1
        tally = json.loads(tally_path.read_text())
    tally = {"budget": args.cases, **tally}  # cases: the budget's generated examples plus the fixed ones
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(tally, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {args.out}: {tally['cases']} cases, {tally['tracebacks']} tracebacks, "
          f"{tally['silent_differences']} silent differences")  # fmt: skip
    return status


if __name__ == "__main__":
    sys.exit(main())
