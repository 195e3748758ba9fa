"""Stage headline: the study's and the shipped model's key numbers in one small file.

Reads metrics/metrics.json (aggregate) and metrics/efficiency.json (export); writes
metrics/headline.json, the file `dvc exp show` and `dvc metrics diff` compare by default. No torch.
"""

from __future__ import annotations

import json
from pathlib import Path

from prunelab.errors import UserError
from prunelab.params import load_params
from prunelab.paths import EFFICIENCY, HEADLINE, STUDY_METRICS
from prunelab.runtime import log, stage_main, write_json
from prunelab.study.headline import headline_metrics


def read_json(path: Path, stage: str) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: not found; run the {stage} stage (dvc repro)") from None
    except ValueError as err:
        raise UserError(f"{path}: unreadable ({type(err).__name__}); rerun the {stage} stage") from None


def main() -> None:
    load_params()  # nothing here reads a param, but a bad params.yaml is refused by every stage
    metrics, efficiency = read_json(STUDY_METRICS, "aggregate"), read_json(EFFICIENCY, "export")
    write_json(HEADLINE, headline_metrics(metrics, efficiency))
    log(f"wrote {HEADLINE}")


if __name__ == "__main__":
    stage_main(main)
